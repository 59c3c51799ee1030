"""The size stage through the real runtime: its record fields in `handstream run`'s JSON lines, its
overlay label, the calibrate -> run --user round trip, `handstream eval size` and hand-loss restarts; all
with the shipped size engine in a real ONNX Runtime session."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import engines
from stream.cli import main as cli
from stream.errors import InputError
from stream.pipeline import build_pipeline
from stream.size import load_user
from stream.sources.synthetic import SyntheticSource
from stream.stages import FrameState


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_records_per_frame_and_calibrated_size(tmp_path):
    out = tmp_path / "r.jsonl"
    assert cli(["run", "--source", "synthetic:4", "--frames", "30", "--models", "pose,size", "--jsonl", str(out),
                "--quiet"]) == 0  # fmt: skip
    recs = _records(out)
    hands = [r for r in recs if "hand_size_mm" in r]
    assert len(recs) == 30 and len(hands) >= 20
    for r in hands:
        length, width = r["hand_size_mm"]
        assert 90 <= length <= 280 and 40 <= width <= 140
        assert 0.0 < r["hand_size_confidence"] <= 1.0
        assert len(r["hand_size_frame_mm"]) == 2
        assert "size" in r["stage_ms"]
    # the calibrated value is the running median of the per-frame values so far
    frames = np.array([r["hand_size_frame_mm"] for r in hands])
    assert hands[-1]["hand_size_mm"] == pytest.approx(np.median(frames, axis=0), abs=0.06)
    assert hands[-1]["hand_size_confidence"] > hands[0]["hand_size_confidence"]


def test_size_label_is_drawn_on_the_overlay():
    frames = list(SyntheticSource(n_frames=4, seed=2))
    with build_pipeline(backend="onnxruntime", models="pose,size", overlay=True) as p:
        labelled = [p.process(f) for f in frames]
    with build_pipeline(backend="onnxruntime", models="pose", overlay=True) as p:
        plain = [p.process(f) for f in frames]
    r = next(r for r in labelled if "hand_size_mm" in r.fields)
    assert not np.array_equal(r.image, plain[r.index].image)


def test_calibrate_then_run_with_the_user_file(tmp_path, capsys):
    user = tmp_path / "user.json"
    assert (
        cli(["calibrate", "--source", "synthetic:5", "--frames", "60", "--seconds", "1", "--out", str(user)])
        == 0
    )
    said = capsys.readouterr().out
    doc = json.loads(user.read_text())
    length, width = doc["hand_size_mm"]
    # printed to 0.1 mm, filed to 0.01 mm: 190.546 prints 190.5 and files 190.55, which rounds to 190.6 again
    printed = re.search(r"hand length ([0-9.]+) mm", said)
    assert printed and abs(float(printed.group(1)) - length) <= 0.0501
    assert doc["frames"] == 30 and 0 < doc["hand_size_confidence"] <= 1
    out = tmp_path / "r.jsonl"
    assert cli(["run", "--source", "synthetic:6", "--frames", "8", "--user", str(user), "--jsonl", str(out),
                "--quiet"]) == 0  # fmt: skip
    hands = [r for r in _records(out) if r["hand_found"]]
    # the record gives the size to 0.1 mm from its float32 copy: 188.15 in the file reads 188.1, not 188.2
    assert hands and all(np.allclose(r["hand_size_mm"], [length, width], atol=0.051) for r in hands)
    assert all(r["hand_size_confidence"] == 1.0 and "hand_size_frame_mm" not in r for r in hands)


def test_calibrate_and_user_refuse_bad_input_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hand_size_mm": [12, 80]}')
    assert cli(["run", "--source", "synthetic:1", "--frames", "2", "--user", str(bad)]) != 0
    err = capsys.readouterr().err
    assert (
        "a hand length of 12 mm is outside" in err and "Traceback" not in err and len(err.splitlines()) == 1
    )
    assert (
        cli(["calibrate", "--source", "synthetic:1", "--models", "pose", "--out", str(tmp_path / "u.json")])
        != 0
    )
    err = capsys.readouterr().err
    assert "--models must be size" in err and len(err.splitlines()) == 1
    with pytest.raises(InputError):
        load_user(bad)


def test_eval_size_prints_one_json_object(tmp_path, capsys):
    data = tmp_path / "d"
    assert cli(["synth", "--out", str(data), "--frames", "40", "--sequences", "--anthropometry", "ansur",
                "--no-color", "--seed", "3"]) == 0  # fmt: skip
    capsys.readouterr()
    assert cli(["eval", "size", "default", "--data", str(data), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    for k in ("length_mae_mm", "width_mae_mm", "length_mape", "width_mape", "calibrated_length_mae_mm"):
        assert np.isfinite(r[k]) and r[k] >= 0, k
    assert r["frames"] == 40 and r["sequences"] == 1
    # MAPE is MAE relative to the truth: for adult hands (~150-230 mm) the two must agree in scale
    assert r["length_mae_mm"] / 230 * 100 <= r["length_mape"] <= r["length_mae_mm"] / 150 * 100


def test_calibration_starts_over_when_the_hand_is_gone():
    from stream.size.stage import SizeStage

    eng = engines.load_engine("size", backend="onnxruntime")
    stage = SizeStage(eng, lost_frames=3)
    frames = list(SyntheticSource(n_frames=6, seed=3))
    with build_pipeline(backend="onnxruntime", models="size", overlay=False, smoothing=False) as p:
        pre = p.stages[0]
        states = []
        for f in frames:
            st = FrameState(f)
            pre.run(st)
            states.append(st)
    with_hand = [st for st in states if st.crop is not None]
    assert len(with_hand) >= 3
    for st in with_hand[:3]:
        stage.run(st)
    assert len(stage.calibrator) == 3
    fork = stage.calibrator
    nothing = FrameState(frames[0])  # no crop: no hand this frame
    for _ in range(2):
        stage.run(nothing)
    assert len(stage.calibrator) == 3  # a short gap keeps the calibration
    stage.run(nothing)
    assert len(stage.calibrator) == 0 and len(fork) == 3  # gone for lost_frames: a new calibrator
    stage.run(with_hand[0])
    assert len(stage.calibrator) == 1
