"""`handstream eval synthetic --scenes` (train/eval_synthetic.py) on a tiny set, its scoring rules on real
generated frames, and fine-tuning the shipped detector from its ONNX export (load_folded_onnx)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.geometry import uvd_to_xyz
from stream.pipeline import FrameResult
from stream.synth import HandSynthesizer, SceneConfig
from train.eval_segmentation import _Alone
from train.eval_synthetic import KindScore, on_hand, truth_hands, what_is_at

KIND_KEYS = {
    "frames",
    "frames_visible",
    "found_on_hand",
    "found_on_hand_rate",
    "wrong_object",
    "wrong_object_rate",
    "wrong_on",
    "missed_rate",
    "false_on_empty",
    "pose_mean_mm",
    "success_20mm",
    "both_hands_found_rate",
    "handedness_accuracy",
    "id_swaps",
    "seconds",
}


def test_eval_synthetic_scenes_json_on_a_tiny_set(capsys):
    from stream.cli import main

    argv = ["eval", "synthetic", "--scenes", "egocentric,frontal", "--frames", "4", "--sequence-length", "2"]
    assert main(argv + ["--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (
        res["seed"] == 9100 and res["frames_per_kind"] == 4 and set(res["kinds"]) == {"egocentric", "frontal"}
    )
    for r in res["kinds"].values():
        assert set(r) == KIND_KEYS
        assert r["frames"] == 4 and 0 <= r["frames_visible"] <= 4
        assert r["found_on_hand"] + r["wrong_object"] <= r["frames_visible"]
        assert 0.0 <= r["found_on_hand_rate"] <= 1.0 and 0.0 <= r["wrong_object_rate"] <= 1.0
        # the standard pipeline reports one hand: the several-hands keys stay empty rather than invented
        assert r["both_hands_found_rate"] is None and r["handedness_accuracy"] is None


def test_eval_synthetic_with_the_hands_out_of_view_counts_every_hand_as_false(capsys):
    from stream.cli import main

    argv = ["eval", "synthetic", "--scenes", "desk", "--frames", "4", "--sequence-length", "2", "--no-hands"]
    assert main(argv + ["--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    r = res["kinds"]["desk"]
    assert res["hands_visible"] is False and r["frames"] == 4 and r["frames_visible"] == 0
    assert r["found_on_hand"] == 0 and r["false_on_empty"] is not None and 0.0 <= r["false_on_empty"] <= 1.0
    assert main(argv) == 0
    assert "no hand in view in 4 frames" in capsys.readouterr().out


def test_eval_synthetic_scenes_user_errors(capsys):
    from stream.cli import main

    assert main(["eval", "synthetic", "--scenes", "kitchen"]) == 2
    assert "unknown kind kitchen" in capsys.readouterr().err
    assert main(["eval", "synthetic", "--scenes", "desk", "--data", "somewhere"]) == 2
    assert main(["eval", "synthetic"]) == 2
    assert "--data" in capsys.readouterr().err


def _result(com_xyz, joints=None) -> FrameResult:
    return FrameResult(
        index=0,
        timestamp_ms=0.0,
        hand_found=com_xyz is not None,
        joints_xyz_mm=joints,
        joints_uvd=None,
        stage_ms={},
        latency_ms=0.0,
        com_xyz_mm=None if com_xyz is None else np.asarray(com_xyz, np.float64),
    )


def test_scoring_tells_the_hand_from_an_object_and_a_miss():
    syn = HandSynthesizer(SceneConfig(scene_kind="egocentric", color=False), 31)
    alone = _Alone(syn.config.camera)
    s = next(
        s
        for s in (syn.sample_at(k) for k in range(40))
        if truth_hands(s, alone)[0].visible and ((s.material >= 7) & (s.frame.meta["z_clean_mm"] > 700)).any()
    )
    intr = s.frame.intrinsics
    t = truth_hands(s, alone)[0]
    assert on_hand(t.palm_xyz_mm, t, intr) or on_hand(
        uvd_to_xyz(np.array([*np.argwhere(t.mask)[0][::-1], t.palm_xyz_mm[2]], np.float64), intr), t, intr
    )
    # a centre on a clutter object far behind the hand
    z = s.frame.meta["z_clean_mm"]
    v, u = np.argwhere((s.material >= 7) & (z > 700))[0]
    obj_xyz = uvd_to_xyz(np.array([u, v, z[v, u]], np.float64), intr)
    assert not on_hand(obj_xyz, t, intr)
    assert what_is_at(s, obj_xyz) in ("object", "held object")

    score = KindScore()
    score.add(s, _result(t.palm_xyz_mm, t.joints_xyz_mm + 5.0), [t])  # on the hand, joints 8.7 mm off
    score.add(s, _result(obj_xyz), [t])  # on the object
    score.add(s, _result(None), [t])  # missed
    r = score.report()
    assert r["frames_visible"] == 3 and r["found_on_hand"] == 1 and r["wrong_object"] == 1
    assert r["missed_rate"] == pytest.approx(1 / 3)
    assert r["pose_mean_mm"] == pytest.approx(5.0 * np.sqrt(3), rel=1e-4)
    assert r["success_20mm"] == pytest.approx(1 / 3)
    assert sum(r["wrong_on"].values()) == 1


def test_detector_fine_tuning_starts_from_the_shipped_engine(tmp_path, one_torch_thread):
    """--init ENGINE.onnx with no training time exports the same function (folded BatchNorm loaded back)."""
    from stream.preprocess.detect import HandDetector
    from train.recipes.detector import DATA_VERSION
    from train.recipes.detector import main as train_detector

    data, runs, out = tmp_path / "data", tmp_path / "runs", tmp_path / "eng"
    argv = ["--frames", "4", "--val-frames", "4", "--batch", "2", "--minutes", "0", "--threads", "1"]
    argv += ["--data-dir", str(data), "--runs", str(runs), "--out", str(out), "--close-share", "0.5"]
    from pathlib import Path

    import engines

    argv += ["--init", str(Path(engines.__file__).parent / "default" / "detector.onnx")]
    assert train_detector(argv) == 0
    assert [p.name for p in sorted(data.glob("*.npz"))] == [
        f"train-v{DATA_VERSION}-4-1000-close0.5.npz",
        f"val-v{DATA_VERSION}-4-500-close0.5.npz",
    ]
    manifest = json.loads((out / "detector.json").read_text())
    assert manifest["training"]["close_share"] == 0.5 and manifest["training"]["batchnorm_frozen"]
    frame = HandSynthesizer(SceneConfig(scene_kind="desk", color=False), 2).sample_at(0).frame
    a, b = (
        HandDetector("detector").run(frame.depth_mm),
        HandDetector(out / "detector.onnx").run(frame.depth_mm),
    )
    assert np.abs(a.heatmap - b.heatmap).max() < 1e-4 and np.abs(a.hand_depth_m - b.hand_depth_m).max() < 1e-4
