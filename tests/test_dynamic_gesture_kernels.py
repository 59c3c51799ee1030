"""The dynamic gesture stage's compiled kernels (stream/gestures/dynamic_kernels.py) against their numpy
reference: the same window features, motion extent, settle test and nearest example on the shipped gallery
and on continuous motion tracks, the same reports and distances from the stage, the numpy path where the
mean hand frame is near singular, and the numpy path without numba."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import engines
from stream.frames import RGBDFrame, camera
from stream.gestures import dynamic_kernels as dk
from stream.gestures.dynamic import (
    FEATURES,
    FRAMES,
    WINDOW_MS,
    motion_extent,
    resample_track,
    window_features,
)
from stream.gestures.dynamic_stage import DynamicGestureStage
from stream.gestures.gallery import nearest
from stream.stages import FrameState
from stream.synth import motions

needs_numba = pytest.mark.skipif(not dk.HAVE_NUMBA, reason="numba is not installed: no kernel to compare")
CAM = camera("d435_320x240")


@pytest.fixture(scope="module")
def engine():
    with engines.load_engine("dynamic_gesture", backend="onnxruntime", threads=1) as eng:
        yield eng


def _run(stage: DynamicGestureStage, i: int, t: float, j: np.ndarray) -> tuple:
    st = FrameState(RGBDFrame(i, float(t), np.zeros(CAM.shape, np.uint16), CAM))
    st.joints_mm = j.astype(np.float64)
    stage.run(st)
    return st.fields["dynamic_gesture"], st.fields["dynamic_gesture_distance"]


@needs_numba
def test_the_kernels_give_the_numpy_features_settling_and_nearest_on_motion_tracks(engine):
    stage = DynamicGestureStage(engine)
    assert stage.matcher.runs_kernel
    rng = np.random.default_rng(21)
    times, joints, _ = motions.performance(list(motions.FINE[:5]), rng, noise_mm=3.0)
    feats = np.empty((FRAMES, FEATURES), np.float32)
    checked = moving = settles = 0
    for end in range(12, len(times), 4):
        keep = (times[:end] > times[end - 1] - WINDOW_MS) | (np.arange(end) >= end - 2)
        t, j = times[:end][keep].astype(np.float64), joints[:end][keep].astype(np.float64)
        extent, ok = dk.window_features_into(t, j, float(t[-1]), WINDOW_MS, -1.0, feats)
        w = resample_track(t, j, float(t[-1]))
        assert ok and abs(extent - motion_extent(w)) < 1e-9
        np.testing.assert_allclose(feats, window_features(w), atol=1e-5, rtol=0)
        for settle_ms in (100.0, 150.0, 300.0):
            stage.settle_ms = settle_ms
            settles += stage._settled_numpy(t[-1], t, j)
            assert dk.settled(t, j, float(t[-1]), settle_ms, stage.settle_motion) == stage._settled_numpy(
                t[-1], t, j
            )
        moving += extent > 0.3
        e = stage.matcher.embed(feats)[0]
        row, dist = dk.nearest_row(e, stage.matcher._gallery_t, stage.matcher.sq)
        idx, d = nearest(stage.matcher.embeddings, stage.matcher.sq, e.astype(np.float64)[None])
        assert row == int(idx[0]) and abs(dist - float(d[0])) < 1e-6
        checked += 1
    assert checked > 50 and moving > 10  # windows of motion, not only of a resting hand
    assert 0 < settles < 3 * checked  # settled and moving hands both compared


@needs_numba
def test_the_stage_reports_the_same_on_both_paths(engine):
    fast = DynamicGestureStage(engine)
    ref = DynamicGestureStage(engine)
    ref.matcher = copy.copy(ref.matcher)
    ref.matcher.runs_kernel = False
    rng = np.random.default_rng(5)
    reports = evaluations = 0
    for _ in range(3):
        names = [str(n) for n in rng.choice(motions.FINE, size=4)]
        times, joints, _ = motions.performance(names, rng, noise_mm=2.0)
        fast.reset()
        ref.reset()
        for i, (t, j) in enumerate(zip(times, joints)):
            a, b = _run(fast, i, t, j), _run(ref, i, t, j)
            assert a[0] == b[0] and (a[1] is None) == (b[1] is None)
            if a[1] is not None:
                assert abs(a[1] - b[1]) < 1e-5
                evaluations += 1
            reports += a[0] is not None
    assert reports >= 6 and evaluations >= 30


@needs_numba
def test_a_window_turning_a_whole_turn_takes_the_numpy_path(engine):
    """Spun a full turn about the camera axis within the window, the hand's mean frame is near singular:
    the kernel says so and the matcher answers with the numpy path's numbers."""
    stage = DynamicGestureStage(engine)
    rng = np.random.default_rng(2)
    base = motions.motion_windows(("swipe_left",), 1, 3)["windows_xyz_mm"][0][0].astype(np.float64)
    centre = base[0]
    times = np.linspace(0.0, WINDOW_MS, FRAMES)  # the window's own sample times: no interpolation
    track = []
    for a in np.arange(FRAMES) * 2 * np.pi / FRAMES:
        c, s = np.cos(a), np.sin(a)
        r = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        track.append((base - centre) @ r.T + centre + rng.normal(0, 0.5, 3))
    joints = np.array(track)
    feats = np.empty((FRAMES, FEATURES), np.float32)
    extent, ok = dk.window_features_into(times, joints, WINDOW_MS, WINDOW_MS, -1.0, feats)
    assert not ok and extent > 0.3
    got = stage.matcher(times, joints, WINDOW_MS, 0.3)
    want = stage.matcher.numpy_call(times, joints, WINDOW_MS, 0.3)
    assert got[0] == want[0] and abs(got[1] - want[1]) < 1e-12


def test_without_numba_the_stage_runs_numpy(engine, monkeypatch):
    monkeypatch.setattr(dk, "HAVE_NUMBA", False)
    stage = DynamicGestureStage(engine)
    assert not stage.matcher.runs_kernel
    rng = np.random.default_rng(8)
    times, joints, _ = motions.performance(["swipe_left", "tap"], rng, noise_mm=1.0)
    out = [_run(stage, i, t, j) for i, (t, j) in enumerate(zip(times, joints))]
    assert any(d is not None for _, d in out)  # windows were embedded, through the numpy path
