"""tools/gesture_skeleton_gap.py: its geometry on generated skeletons, and the whole report on a stand-in for
MediaPipe's output (our own joints, turned, in metres) where every gap must vanish."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from stream.gestures.canonical import canonical_joints
from stream.synth import gestures as vocab

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gap():
    spec = importlib.util.spec_from_file_location(
        "gesture_skeleton_gap", ROOT / "tools/gesture_skeleton_gap.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def hands() -> np.ndarray:
    return canonical_joints(vocab.gesture_dataset(vocab.UNSEEN[:3], 4, seed=8)["joints_xyz_mm"])


def test_standard_bones_keep_directions_and_set_lengths(gap, hands):
    lengths = np.linspace(0.2, 1.0, 20).reshape(5, 4)
    out = gap.standard_bones(hands, lengths)
    b_in, b_out = gap.bones(hands), gap.bones(out)
    got = np.linalg.norm(b_out, axis=-1)
    np.testing.assert_allclose(
        got / got[:, :1, :1], np.broadcast_to(lengths / lengths[0, 0], got.shape), rtol=1e-4
    )
    unit = lambda b: b / np.linalg.norm(b, axis=-1, keepdims=True)  # noqa: E731
    # directions agree up to the one rotation that re-canonicalising applies: compare bone-to-bone angles
    cos_in = (unit(b_in)[:, :, 1:] * unit(b_in)[:, :, :-1]).sum(-1)
    cos_out = (unit(b_out)[:, :, 1:] * unit(b_out)[:, :, :-1]).sum(-1)
    np.testing.assert_allclose(cos_out, cos_in, atol=1e-5)


def test_swapping_every_finger_between_equal_skeletons_changes_nothing_and_one_finger_moves_one(gap, hands):
    np.testing.assert_allclose(gap.swap_fingers(hands, hands, range(5)), hands, atol=1e-5)
    other = hands[::-1]
    out = gap.swap_fingers(hands, other, [1])
    moved = np.abs(out - hands).max(-1) > 1e-4
    assert set(np.flatnonzero(moved.any(0))) == {5, 6, 7, 8}  # the index chain alone, its MCP included
    ang_out, _ = gap.bend(out)
    ang_other, _ = gap.bend(other)
    np.testing.assert_allclose(ang_out[:, 1], ang_other[:, 1], atol=1e-3)  # the index bends as the other's


def test_the_image_plane_frame_ignores_where_the_hand_is_and_how_big(gap, hands):
    p = hands[:, :, :2] * 1.0
    theta = 0.7
    r = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    q = 3.5 * p @ r.T + np.array([100.0, -40.0])
    np.testing.assert_allclose(gap.image_plane(q), gap.image_plane(p), atol=1e-6)


def test_the_report_on_our_own_joints_in_another_frame_finds_no_gap(gap, tmp_path):
    d = vocab.gesture_dataset(vocab.UNSEEN, 7, seed=11)
    truth = d["joints_xyz_mm"].astype(np.float64)
    truth[..., 2] += 500.0  # in front of the camera
    rng = np.random.default_rng(0)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rot *= np.sign(np.linalg.det(rot))
    world_m = (truth - truth[:, :1]) @ rot.T / 1000.0  # metres, other axes, centred elsewhere
    image = np.full_like(truth, np.nan)
    image[..., 0] = (383.4 * truth[..., 0] / truth[..., 2] + 319.5) / 640
    image[..., 1] = (383.4 * truth[..., 1] / truth[..., 2] + 239.5) / 480
    image[..., 2] = 0.0
    world_m[0] = np.nan  # a frame with no hand found is left out
    np.savez(tmp_path / "frames.npz", label=d["label"], joints_xyz_mm=truth.astype(np.float32))
    np.savez(tmp_path / "landmarks.npz", world_m=world_m.astype(np.float32), image=image.astype(np.float32))
    out = tmp_path / "report.json"
    assert gap.main(["--mediapipe", str(tmp_path), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["frames"] == len(truth) - 1
    c = r["canonicalisation"]
    assert c["canonical mp_world"] == c["canonical truth"]  # another frame and unit: the same numbers
    e = r["estimate"]
    assert e["signed_bend_error_deg_mean"] < 0.1 and e["finger_joints_bent_the_other_way"] == 0.0
    assert e["image_plane_distance_palm_lengths"]["mean"] < 1e-3
    assert e["r1_mediapipe_lengths_true_directions"] == c["canonical truth"]["engine"][0]
