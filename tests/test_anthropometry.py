"""ANSUR II hand sizes for synthetic subjects: the stored fit, the sampler, and the untouched default."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from stream.errors import InputError
from stream.synth import SceneConfig
from stream.synth.anthropometry import ANSUR_FEMALE, ANSUR_MALE, ansur_hand_size, fit_sex_stats
from stream.synth.hand import hand_shape

ANSUR_CSV = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "anthropometry" / "ansur2_hands.csv"
)


def test_stored_fit_matches_the_survey_file():
    if not ANSUR_CSV.is_file():
        pytest.skip(f"the ANSUR II file {ANSUR_CSV} is not on this machine (../shared/data/anthropometry)")
    with ANSUR_CSV.open() as f:
        rows = list(csv.DictReader(f))
    for sex, stored in (("male", ANSUR_MALE), ("female", ANSUR_FEMALE)):
        length = [float(r["hand_length_mm"]) for r in rows if r["sex"] == sex]
        breadth = [float(r["hand_breadth_mm"]) for r in rows if r["sex"] == sex]
        fit = fit_sex_stats(np.array(length), np.array(breadth))
        assert fit.n == stored.n
        assert fit.length_mean_mm == pytest.approx(stored.length_mean_mm, abs=0.01)
        assert fit.breadth_mean_mm == pytest.approx(stored.breadth_mean_mm, abs=0.01)
        assert fit.length_sd_mm == pytest.approx(stored.length_sd_mm, abs=0.01)
        assert fit.breadth_sd_mm == pytest.approx(stored.breadth_sd_mm, abs=0.01)
        assert fit.correlation == pytest.approx(stored.correlation, abs=0.001)


def test_sampler_reproduces_the_survey_statistics():
    draws = [ansur_hand_size(s) for s in range(6000)]
    length, breadth, male = (np.array(x) for x in zip(*draws))
    assert 0.47 < male.mean() < 0.53
    for sel, st in ((male, ANSUR_MALE), (~male, ANSUR_FEMALE)):
        assert length[sel].mean() == pytest.approx(st.length_mean_mm, abs=0.6)
        assert breadth[sel].mean() == pytest.approx(st.breadth_mean_mm, abs=0.3)
        assert length[sel].std() == pytest.approx(st.length_sd_mm, rel=0.06)
        assert breadth[sel].std() == pytest.approx(st.breadth_sd_mm, rel=0.06)
        assert np.corrcoef(length[sel], breadth[sel])[0, 1] == pytest.approx(st.correlation, abs=0.05)
    assert ansur_hand_size(11) == ansur_hand_size(11)  # a subject id is one hand


def test_uniform_default_is_unchanged_and_ansur_only_changes_the_size():
    # hand_shape's values before the anthropometry option existed (every dataset and benchmark uses them)
    before = {0: (159.60842624014535, 71.64829649902573), 3: (188.35087400745502, 86.14406688400166),
              17: (154.62330497761567, 73.12442632358248)}  # fmt: skip
    for s, (length, width) in before.items():
        h = hand_shape(s)
        assert (h.length_mm, h.width_mm) == (length, width)
        a = hand_shape(s, anthropometry="ansur")
        assert (a.length_mm, a.width_mm) != (length, width)
        assert (a.finger_ratio, a.thickness_scale, a.skin_bgr) == (
            h.finger_ratio,
            h.thickness_scale,
            h.skin_bgr,
        )
        assert (a.length_mm, a.width_mm) == ansur_hand_size(s)[:2]
    with pytest.raises(ValueError):
        hand_shape(1, anthropometry="tall")


def test_scene_config_carries_the_option_and_reads_old_files():
    cfg = SceneConfig(anthropometry="ansur")
    d = cfg.to_dict()
    assert d["anthropometry"] == "ansur"
    assert SceneConfig.from_dict(d).anthropometry == "ansur"
    del d["anthropometry"]  # a dataset written before the option: the old default
    assert SceneConfig.from_dict(d).anthropometry == "uniform"
    with pytest.raises(InputError):
        SceneConfig(anthropometry="tall")


def test_generator_labels_carry_the_ansur_size():
    from stream.synth import HandSynthesizer

    s = HandSynthesizer(SceneConfig(anthropometry="ansur", n_subjects=5), 3).sample()
    assert np.allclose(s.hand_size_mm, ansur_hand_size(s.subject)[:2])
