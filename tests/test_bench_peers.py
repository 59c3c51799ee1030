"""The MediaPipe peer, run for real in its own venv (skipped with the reason when the venv is absent:
CI does not build it, `bash tools/mediapipe_env.sh` does)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stream.bench.peers import CONFIGS, PeerUnavailable, mediapipe_python, run_mediapipe


def test_missing_venv_is_a_reasoned_skip(tmp_path):
    with pytest.raises(PeerUnavailable, match="tools/mediapipe_env.sh"):
        mediapipe_python(tmp_path / "nope")


@pytest.fixture
def peer_python():
    try:
        return mediapipe_python()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


def test_peer_times_all_configs_on_a_real_hand_image(peer_python, nyu_dir):
    img = cv2.imread(str(nyu_dir / "rgb_1_0000001.png"), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (480, 640, 3)
    out = run_mediapipe([img, img], frames=3, warmup=1)
    assert set(out["peers"]) == set(CONFIGS)
    assert out["versions"]["mediapipe"] == "0.10.21"
    for name, p in out["peers"].items():
        assert len(p["ms"]) == p["n"] == 3
        assert 0 < p["min"] <= p["p50"] <= p["p95"] <= p["p99"] <= p["max"]
        assert p["hand_frames"] == 3, f"{name} lost the NYU hand"  # a clear hand: MediaPipe finds it
    assert out["peers"]["mediapipe_detection_c0"]["static_image_mode"] is True


def test_peer_reports_no_hand_honestly(peer_python):
    blank = np.full((120, 160, 3), 127, np.uint8)
    out = run_mediapipe([blank], frames=2, warmup=0, modes=("tracking",), complexities=(0,))
    p = out["peers"]["mediapipe_tracking_c0"]
    assert p["hand_frames"] == 0 and p["detection_rate"] == 0.0 and p["n"] == 2


def test_peer_writes_landmarks_of_a_real_hand_and_nan_for_none(peer_python, nyu_dir, tmp_path):
    """`--landmarks`: what tools/gesture_other_skeletons.py feeds to the gesture evaluation."""
    import subprocess

    from stream.bench.peers import PEER_SCRIPT

    img = cv2.imread(str(nyu_dir / "rgb_1_0000001.png"), cv2.IMREAD_COLOR)
    blank = np.full_like(img, 127)
    np.savez(tmp_path / "f.npz", color_bgr=np.stack([img, blank]))
    out = tmp_path / "lm.npz"
    subprocess.run(
        [str(peer_python), str(PEER_SCRIPT), "--npz", str(tmp_path / "f.npz"), "--landmarks", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    with np.load(out) as d:
        world, image, side = d["world_m"], d["image"], d["handedness"]
    assert world.shape == image.shape == (2, 21, 3)
    assert np.isfinite(world[0]).all() and np.isnan(world[1]).all()
    # metres about the hand's centre: a hand spans about 0.1-0.25 m
    assert 0.08 < float(np.ptp(world[0], axis=0).max()) < 0.3
    assert side[0] in ("Left", "Right") and side[1] == ""
