"""Hand size: the seed's metrics on hand-computed cases, subject-grouped folds, the calibrator, the user file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.errors import InputError
from stream.size import (
    SizeCalibrator,
    calibrated_errors,
    grouped_folds,
    load_user,
    mae,
    mape,
    save_user,
    sequence_spread,
)


def test_mae_and_mape_by_hand():
    true = np.array([[200.0, 80.0], [180.0, 90.0]])
    pred = np.array([[190.0, 84.0], [189.0, 90.0]])
    assert mae(pred, true) == pytest.approx([9.5, 2.0])
    # |10|/200 = 5 %, |9|/180 = 5 %; |4|/80 = 5 %, 0 %
    assert mape(pred, true) == pytest.approx([5.0, 2.5])


def test_sequence_spread_is_the_mean_within_sequence_variance():
    pred = np.array([[1.0, 0.0], [3.0, 0.0], [10.0, 2.0], [10.0, 4.0], [50.0, 50.0]])
    seq = np.array([0, 0, 1, 1, 2])  # sequence 2 has one frame: no variance, left out
    r = sequence_spread(pred, seq)
    assert r["variance_mm2"] == pytest.approx([(2.0 + 0.0) / 2, (0.0 + 2.0) / 2])
    assert r["sd_mm"] == pytest.approx([np.sqrt(2.0) / 2, np.sqrt(2.0) / 2])


def test_grouped_folds_never_split_a_subject():
    rng = np.random.default_rng(0)
    subjects = rng.integers(0, 37, 500)
    folds = grouped_folds(subjects, 5, seed=1)
    assert len(folds) == 5
    seen = np.zeros(len(subjects), int)
    for tr, te in folds:
        assert not set(subjects[tr]) & set(subjects[te])
        assert len(tr) + len(te) == len(subjects)
        seen[te] += 1
    assert (seen == 1).all()  # every frame is tested exactly once
    with pytest.raises(ValueError):
        grouped_folds(np.array([1, 1, 2]), 5)


def test_calibrator_median_shrugs_off_outliers():
    cal = SizeCalibrator(window=60)
    rng = np.random.default_rng(0)
    for i in range(60):
        v = np.array([185.0, 82.0]) + rng.normal(0, 2.0, 2)
        if i % 5 == 0:  # a fifth of the frames far off (a wrong segment), still plausible sizes
            v = np.array([240.0, 120.0])
        cal.add(v)
    cal.add([np.nan, 80.0])  # ignored
    cal.add([900.0, 80.0])  # implausible: ignored
    est, conf = cal.estimate()
    assert len(cal) == 60
    assert abs(est[0] - 185.0) < 2.0 and abs(est[1] - 82.0) < 2.0
    assert 0.5 < conf <= 1.0
    # a mean would have moved by (240 - 185) / 5 = 11 mm
    assert abs(np.mean([185.0] * 48 + [240.0] * 12) - 185.0) > 10.0


def test_calibrator_confidence_grows_with_frames_and_agreement_and_reset_starts_over():
    rng = np.random.default_rng(1)
    tight, loose = SizeCalibrator(), SizeCalibrator()
    confs = []
    for _ in range(40):
        tight.add(np.array([190.0, 85.0]) + rng.normal(0, 1.0, 2))
        loose.add(np.array([190.0, 85.0]) + rng.normal(0, 12.0, 2))
        confs.append(tight.estimate()[1])
    assert confs[-1] > confs[2]
    assert tight.estimate()[1] > loose.estimate()[1]
    before = tight._hist
    tight.reset()
    assert tight.estimate() == (None, 0.0)
    assert len(before) == 40  # rebound, not cleared in place: a forked copy keeps its own window


def test_calibrated_errors_uses_the_first_frames_of_each_sequence():
    true = np.array([[180.0, 80.0]] * 6 + [[200.0, 90.0]] * 6)
    pred = true.copy()
    pred[:3] += 4.0  # the first three frames of sequence 0 are 4 mm off, the rest exact
    seq = np.array([0] * 6 + [1] * 6)
    err = calibrated_errors(pred, true, seq, frames=3)
    assert err == pytest.approx(np.array([[4.0, 4.0], [0.0, 0.0]]))
    assert calibrated_errors(pred, true, seq, frames=6)[0] == pytest.approx(
        [2.0, 2.0]
    )  # median of 4,4,4,0,0,0


def test_user_file_round_trip_and_bad_files(tmp_path):
    p = save_user(tmp_path / "user.json", [187.25, 83.5], 0.93, 90, "synthetic:1")
    assert json.loads(p.read_text())["hand_size_mm"] == [187.25, 83.5]
    assert load_user(p) == pytest.approx([187.25, 83.5])
    bad = tmp_path / "bad.json"
    for text in ("{", '{"hand_size_mm": [187]}', '{"hand_size_mm": [600, 80]}', '{"size": 1}'):
        bad.write_text(text)
        with pytest.raises(InputError):
            load_user(bad)
    with pytest.raises(InputError):
        load_user(tmp_path / "missing.json")
