"""The learned mask's forearm cut (segment/refine.cut_arm): at close range the forearm reaches towards the
camera inside the peak's depth band, the detector's mask covers it, and the centre falls on the arm. Checked
on drawn hands (a palm, fingers and a forearm at chosen angles) and on a generated desk frame with the real
detector engine."""

from __future__ import annotations

import numpy as np
import pytest

from stream.frames import KNOWN_CAMERAS
from stream.preprocess import HandSegmenter, SegmenterConfig
from stream.preprocess.segment.refine import cut_arm
from stream.synth import HandSynthesizer, SceneConfig

INTR = KNOWN_CAMERAS["d435_320x240"]
PALM = np.array([0.0, 0.0, 400.0])


def _draw(points: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Depth (z-buffered, mm; 0 = nothing) and owner (1 = hand, 2 = arm) of 3-D point clouds drawn into
    one frame; points outside the picture are dropped (the forearm leaves it at the bottom)."""
    layers = []
    for p in points:
        u = np.round(INTR.fx * p[:, 0] / p[:, 2] + INTR.cx).astype(int)
        v = np.round(INTR.fy * p[:, 1] / p[:, 2] + INTR.cy).astype(int)
        inside = (u >= 0) & (u < INTR.width) & (v >= 0) & (v < INTR.height)
        z = np.full(INTR.shape, np.inf)
        np.minimum.at(z, (v[inside], u[inside]), p[inside, 2])
        layers.append(z)
    stack = np.stack(layers)
    near = stack.min(axis=0)
    owner = np.where(np.isfinite(near), stack.argmin(axis=0) + 1, 0).astype(np.uint8)
    return np.where(np.isfinite(near), near, 0.0).astype(np.float32), owner


def _hand() -> np.ndarray:
    """A flat open hand facing the camera at PALM: a 45 mm palm disc and four 80 mm fingers upwards."""
    g = np.arange(-45.0, 45.5, 1.0)
    xx, yy = np.meshgrid(g, g)
    palm = np.stack([xx.ravel(), yy.ravel()], 1)
    palm = palm[np.hypot(palm[:, 0], palm[:, 1]) <= 45.0]
    fingers = [
        np.stack(np.meshgrid(np.arange(x - 8.0, x + 8.5, 1.0), np.arange(-125.0, -40.0, 1.0)), -1).reshape(
            -1, 2
        )
        for x in (-30.0, -10.0, 10.0, 30.0)
    ]
    xy = np.concatenate([palm, *fingers])
    return np.column_stack([xy, np.full(len(xy), PALM[2])]) + [PALM[0], PALM[1], 0.0]


def _forearm(rise_deg: float, length_mm: float = 250.0) -> np.ndarray:
    """A 60 mm wide forearm from the bottom of the palm, downwards in the image, turned `rise_deg` towards
    the camera (negative: away from it)."""
    s, w = np.meshgrid(np.arange(0.0, length_mm, 1.0), np.arange(-30.0, 30.5, 1.0))
    a = np.radians(rise_deg)
    return np.stack([w.ravel(), 40.0 + s.ravel() * np.cos(a), PALM[2] - s.ravel() * np.sin(a)], 1)


def _centre(mask: np.ndarray, depth: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    z = depth[ys, xs].astype(np.float64)
    return np.array([((xs - INTR.cx) * z / INTR.fx).mean(), ((ys - INTR.cy) * z / INTR.fy).mean(), z.mean()])


def _cut(depth: np.ndarray, cfg: SegmenterConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    m8 = np.where(depth > 0, np.uint8(255), np.uint8(0))
    anchor = (INTR.fx * PALM[0] / PALM[2] + INTR.cx, INTR.fy * PALM[1] / PALM[2] + INTR.cy, PALM[2])
    return m8, cut_arm(m8, depth, anchor, 0, 0, INTR, cfg or SegmenterConfig())


def test_a_forearm_reaching_towards_the_camera_is_cut_at_the_wrist():
    depth, owner = _draw([_hand(), _forearm(40.0)])
    m8, out = _cut(depth)
    assert out is not m8 and m8.sum() == np.where(depth > 0, 255, 0).sum()  # a new mask; the input untouched
    kept = out > 0
    assert kept[owner == 1].mean() > 0.97  # the hand stays (palm and fingers)
    arm = owner == 2
    assert kept[arm].mean() < 0.25  # most of the forearm goes
    hand_c = _centre(owner == 1, depth)
    assert np.linalg.norm(_centre(m8 > 0, depth) - hand_c) > 40.0  # the case: the arm pulls the centre away
    assert np.linalg.norm(_centre(kept, depth) - hand_c) < 12.0
    # what is kept of the arm lies within about a wrist of the palm
    ys, xs = np.nonzero(kept & arm)
    z = depth[ys, xs]
    pts = np.stack([(xs - INTR.cx) * z / INTR.fx, (ys - INTR.cy) * z / INTR.fy, z], 1)
    assert np.linalg.norm(pts - PALM, axis=1).max() < 100.0


@pytest.mark.parametrize("rise_deg", [0.0, -35.0])
def test_a_forearm_level_with_the_palm_or_going_away_is_left(rise_deg):
    """A frontal user's forearm hangs at the hand's depth or behind it: the pose engine was trained on
    centres with such forearm pixels, so the cut must not act there."""
    depth, _ = _draw([_hand(), _forearm(rise_deg)])
    m8, out = _cut(depth)
    assert out is m8


def test_a_hand_alone_is_left_and_the_rule_can_be_switched_off():
    depth, _ = _draw([_hand()])
    m8, out = _cut(depth)
    assert out is m8  # fingertips reach ~125 mm from the palm, but as a small share of the mask
    depth, _ = _draw([_hand(), _forearm(40.0)])
    m8, out = _cut(depth, SegmenterConfig(arm_reach_mm=300.0))
    assert out is m8


def _hand_centre(sample) -> np.ndarray:
    """The centre the segmenter aims at: the hand's own visible pixels' mean point, pushed 10 mm back."""
    d = sample.frame.depth_mm.astype(np.float64)
    intr = sample.frame.intrinsics
    ys, xs = np.nonzero((sample.material == 1) & (d > 0))
    z = d[ys, xs]
    c = np.array([((xs - intr.cx) * z / intr.fx).mean(), ((ys - intr.cy) * z / intr.fy).mean(), z.mean()])
    return c * (c[2] + 10.0) / c[2]


def test_desk_frame_centre_comes_off_the_forearm_with_the_real_detector():
    """A generated desk frame (tuning seed 9200, frame 49): the detector's peak is on the hand and its mask
    runs onto the forearm, which reaches towards the camera; the cut takes the centre back to the hand.
    Another frame of the same seed without an arm in the mask (frame 0) is left as it was."""
    syn = HandSynthesizer(SceneConfig(scene_kind="desk", color=False), 9200)
    on = HandSegmenter(SegmenterConfig(method="learned", max_hands=1))
    off = HandSegmenter(SegmenterConfig(method="learned", max_hands=1, arm_min_share=1.0))
    s = syn.sample_at(49)
    intr = s.frame.intrinsics
    a, b = on.segment(s.frame.depth_mm, intr).best, off.segment(s.frame.depth_mm, intr).best
    target = _hand_centre(s)
    arm_share = lambda h: float(np.isin(s.material[h.mask], (2, 4)).mean())  # noqa: E731
    assert arm_share(b) > 0.3 and np.linalg.norm(b.com_xyz_mm - target) > 40.0  # the case
    assert arm_share(a) < 0.1 and np.linalg.norm(a.com_xyz_mm - target) < 25.0
    s0 = syn.sample_at(0)
    a0, b0 = on.segment(s0.frame.depth_mm, intr).best, off.segment(s0.frame.depth_mm, intr).best
    assert np.array_equal(a0.mask, b0.mask) and np.array_equal(a0.com_xyz_mm, b0.com_xyz_mm)


def test_frontal_frames_are_left_as_they_were():
    """The pose engine was trained on the centres of frontal frames as they were: none of these moves."""
    syn = HandSynthesizer(SceneConfig(color=False), 9200)
    on = HandSegmenter(SegmenterConfig(method="learned"))
    off = HandSegmenter(SegmenterConfig(method="learned", arm_min_share=1.0))
    found = 0
    for k in range(8):
        f = syn.sample_at(k).frame
        a, b = on.segment(f.depth_mm, f.intrinsics), off.segment(f.depth_mm, f.intrinsics)
        assert len(a.hands) == len(b.hands)
        for ha, hb in zip(a.hands, b.hands):
            assert np.array_equal(ha.com_xyz_mm, hb.com_xyz_mm)
        found += len(a.hands)
    assert found >= 6


def test_the_compiled_test_gives_the_numpy_reference_on_real_masks(monkeypatch):
    """`arm_kernels.far_side_kernel` against `far_side_numpy`, and the cut either way, on the masks and
    depth windows the learned path passes on generated desk and frontal frames (uint16 views of the frame
    and float32 copies), one of them a mask that runs onto the forearm."""
    from stream.preprocess.segment import refine

    assert refine.compile_arm_kernels()
    calls = []
    real = refine.cut_arm

    def recording(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(refine, "cut_arm", recording)
    for kind in ("desk", "frontal"):
        syn = HandSynthesizer(SceneConfig(scene_kind=kind, color=False), 9200)
        seg = HandSegmenter(SegmenterConfig(method="learned"))
        for k in (49, 1, 2):
            f = syn.sample_at(k).frame
            seg.segment(f.depth_mm, f.intrinsics)
            seg.segment(f.depth_mm.astype(np.float32), f.intrinsics)
    assert len(calls) >= 8 and {c[1].dtype for c in calls} == {np.dtype(np.uint16), np.dtype(np.float32)}
    acted = 0
    for m8, depth, anchor, x0, y0, intr, cfg in calls:
        au, av, az = anchor
        args = (
            max(max(m8.shape) // 40, 1),
            float(x0 - intr.cx),
            float(y0 - intr.cy),
            float(intr.fx),
            float(intr.fy),
            (au + x0 - intr.cx) * az / intr.fx,
            (av + y0 - intr.cy) * az / intr.fy,
            float(az),
            float(cfg.arm_reach_mm) ** 2,
            float(cfg.arm_long_mm) ** 2,
        )
        ref = refine.far_side_numpy(m8, depth, *args)
        got = refine._arm_kernels.far_side_kernel(m8, depth, *args)
        assert ref[:3] == got[:3] and ref[0] > 0
        np.testing.assert_allclose(got[3:], ref[3:], rtol=1e-9, atol=1e-6)
        fast, slow = (
            real(m8, depth, anchor, x0, y0, intr, cfg),
            real(m8, depth, anchor, x0, y0, intr, cfg, False),
        )
        np.testing.assert_array_equal(fast, slow)
        acted += fast is not m8
    assert acted >= 1  # the desk frame's forearm: the comparison covers a cut, not only the test
