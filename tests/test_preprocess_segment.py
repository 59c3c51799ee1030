"""Segmentation on scenes drawn here (metric sizes at a given depth) and on the real NYU frame.

The scenes are deliberately simple (palm ellipse, finger bars, a forearm bar, a body, closer distractors)
so each test controls exactly one difficulty of the *classic* method (method="classic": the drawn cartoon
hands are not what the learned detector was trained on; tests/test_detector.py covers it on generator
frames); `handstream eval segmentation` measures both methods on the full synthetic generator statistically.
The real NYU frame is checked with both methods and with the default ("auto").
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from stream.errors import InputError
from stream.frames import KNOWN_CAMERAS, CameraIntrinsics
from stream.geometry import uvd_to_xyz
from stream.preprocess import HandSegmenter, Segmentation, SegmenterConfig, crop_cube, normalize_joints

INTR = KNOWN_CAMERAS["d435_640x480"]


class Scene:
    """A depth image built with a z-buffer from flat shapes drawn at metric size, plus ground truth."""

    def __init__(self, intr: CameraIntrinsics = INTR):
        self.intr = intr
        self.depth = np.zeros(intr.shape, np.float32)
        self.owner = np.zeros(intr.shape, np.int16)  # 0 = nothing, k = k-th hand, -1 = other
        self.palms: list[np.ndarray] = []  # ground-truth palm centres (x, y, z mm)

    def _put(self, layer: np.ndarray, z: np.ndarray | float, owner: int) -> None:
        zz = np.broadcast_to(np.asarray(z, np.float32), layer.shape)
        win = (layer > 0) & ((self.depth == 0) | (zz < self.depth))
        self.depth[win] = zz[win]
        self.owner[win] = owner

    def px(self, xyz) -> tuple[float, float]:
        x, y, z = xyz
        return (self.intr.fx * x / z + self.intr.cx, self.intr.fy * y / z + self.intr.cy)

    def plane(self, z_mm: float) -> Scene:
        self._put(np.ones(self.intr.shape, np.uint8), z_mm, -1)
        return self

    def body(self, center_xyz, w_mm=380.0, h_mm=900.0) -> Scene:
        layer = np.zeros(self.intr.shape, np.uint8)
        f = self.intr.fx / center_xyz[2]
        c = tuple(int(round(p)) for p in self.px(center_xyz))
        cv2.ellipse(layer, c, (int(w_mm / 2 * f), int(h_mm / 2 * f)), 0, 0, 360, 1, -1)
        cv2.circle(layer, (c[0], int(c[1] - h_mm / 2 * f)), int(90 * f), 1, -1)  # head
        self._put(layer, center_xyz[2], -1)
        return self

    def box(self, center_xyz, w_mm: float, h_mm: float) -> Scene:
        layer = np.zeros(self.intr.shape, np.uint8)
        f = self.intr.fx / center_xyz[2]
        u, v = self.px(center_xyz)
        cv2.rectangle(
            layer,
            (int(u - w_mm / 2 * f), int(v - h_mm / 2 * f)),
            (int(u + w_mm / 2 * f), int(v + h_mm / 2 * f)),
            1,
            -1,
        )
        self._put(layer, center_xyz[2], -1)
        return self

    def bar(self, p0_xyz, p1_xyz, width_mm: float) -> Scene:
        """A long cylinder-like bar (an arm, a desk edge, a broom) between two 3-D points."""
        layer = np.zeros(self.intr.shape, np.uint8)
        z = 0.5 * (p0_xyz[2] + p1_xyz[2])
        a = tuple(int(round(p)) for p in self.px(p0_xyz))
        b = tuple(int(round(p)) for p in self.px(p1_xyz))
        cv2.line(layer, a, b, 1, max(1, int(width_mm * self.intr.fx / z)))
        self._put(layer, z, -1)
        return self

    def hand(self, palm_xyz, angle_deg: float = 0.0, forearm: bool = True, spread: bool = True) -> Scene:
        """A right hand facing the camera, fingers pointing at `angle_deg` (0 = up, 90 = right)."""
        palm = np.asarray(palm_xyz, np.float64)
        z = palm[2]
        f = self.intr.fx / z
        a = math.radians(angle_deg)
        up = np.array([math.sin(a), -math.cos(a)])  # image direction of the fingers
        side = np.array([-up[1], up[0]])
        c = np.array(self.px(palm))
        layer = np.zeros(self.intr.shape, np.uint8)

        def pt(p):
            return (int(round(p[0])), int(round(p[1])))

        cv2.ellipse(layer, pt(c), (int(43 * f), int(50 * f)), angle_deg, 0, 360, 1, -1)
        for i, (off, length) in enumerate(((-30, 65), (-10, 80), (10, 75), (30, 60))):
            tilt = (i - 1.5) * (0.18 if spread else 0.0)
            d = up * math.cos(tilt) + side * math.sin(tilt)
            base = c + (side * off + up * 40) * f
            cv2.line(layer, pt(base), pt(base + d * length * f), 1, max(1, int(16 * f)))
        thumb_base = c + (-side * 35 + up * -10) * f
        cv2.line(
            layer, pt(thumb_base), pt(thumb_base + (-side * 0.8 + up * 0.6) * 55 * f), 1, max(1, int(20 * f))
        )
        k = len(self.palms) + 1
        # the hand bulges 10 mm towards the camera at the palm (so it is not a perfect plane)
        vv, uu = np.mgrid[0 : self.intr.height, 0 : self.intr.width]
        r = np.hypot(uu - c[0], vv - c[1]) / f
        zmap = z - 10.0 * np.exp(-((r / 60.0) ** 2))
        self._put(layer, zmap, k)
        self.palms.append(palm + np.array([0.0, 0.0, 12.0]))  # the palm centre lies inside the hand
        if forearm:
            wrist = c - up * 55 * f
            elbow = c - up * 330 * f
            arm = np.zeros(self.intr.shape, np.uint8)
            cv2.line(arm, pt(wrist), pt(elbow), 1, max(1, int(60 * f)))
            cv2.ellipse(arm, pt(wrist), (int(30 * f), int(30 * f)), 0, 0, 360, 1, -1)
            # the forearm slopes away from the camera by 20 mm per 100 mm
            along = ((uu - c[0]) * -up[0] + (vv - c[1]) * -up[1]) / f
            self._put(arm, z + 8.0 + 0.2 * np.clip(along - 55.0, 0, None), -1)
        return self

    def hand_mask(self, k: int = 1) -> np.ndarray:
        return self.owner == k


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def match(seg: Segmentation, scene: Scene, k: int = 1):
    """The detection nearest to hand k's palm, with its CoM error in mm and mask IoU."""
    gt = scene.palms[k - 1]
    best = min(seg.hands, key=lambda h: np.linalg.norm(h.com_xyz_mm - gt))
    return best, float(np.linalg.norm(best.com_xyz_mm - gt)), iou(best.mask, scene.hand_mask(k))


CLASSIC = SegmenterConfig(method="classic")


@pytest.fixture(scope="module")
def segmenter() -> HandSegmenter:
    return HandSegmenter(CLASSIC)


BODY = (0.0, 150.0, 1100.0)


@pytest.mark.parametrize("angle", [0, 90, -100, 180, 45])
def test_hand_with_forearm_from_any_side_in_front_of_body(segmenter, angle):
    scene = Scene().body(BODY).hand((30.0, 0.0, 550.0), angle_deg=angle)
    seg = segmenter.segment(scene.depth, INTR)
    assert seg.found and seg.reason == ""
    assert len(seg.hands) == 1, "the body and the forearm must not become a second hand"
    det, err, iou_ = match(seg, scene)
    assert det.forearm_cut
    assert iou_ > 0.85
    assert err < 45.0  # CoM lies between palm and fingers; the palm estimate is much closer:
    assert np.linalg.norm(det.palm_xyz_mm - scene.palms[0]) < 25.0
    assert 0.0 <= det.confidence <= 1.0
    x, y, w, h = det.bbox_xywh
    ys, xs = np.nonzero(det.mask)
    assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())


def test_closer_desk_edge_and_box_are_not_the_hand(segmenter):
    scene = (
        Scene()
        .body(BODY)
        .hand((50.0, -30.0, 600.0))
        .bar((-700.0, 130.0, 450.0), (700.0, 130.0, 450.0), 80.0)  # desk edge across the picture
        .box((-220.0, 60.0, 420.0), 150.0, 120.0)  # a closer box
    )
    seg = segmenter.segment(scene.depth, INTR)
    assert len(seg.hands) == 1
    _, err, iou_ = match(seg, scene)
    assert iou_ > 0.8 and err < 45.0


def test_hand_behind_a_closer_arm(segmenter):
    scene = (
        Scene().body(BODY).hand((50.0, 0.0, 600.0)).bar((-600.0, 200.0, 450.0), (300.0, -300.0, 450.0), 70.0)
    )
    seg = segmenter.segment(scene.depth, INTR)
    assert seg.found
    _, err, iou_ = match(seg, scene)
    assert iou_ > 0.8 and err < 45.0


def test_two_hands(segmenter):
    scene = (
        Scene().body(BODY).hand((-130.0, 0.0, 550.0), angle_deg=-20).hand((160.0, 0.0, 600.0), angle_deg=25)
    )
    seg = segmenter.segment(scene.depth, INTR)
    assert len(seg.hands) == 2
    for k in (1, 2):
        _, err, iou_ = match(seg, scene, k)
        assert iou_ > 0.85 and err < 45.0
    assert not (seg.hands[0].mask & seg.hands[1].mask).any()
    one = HandSegmenter(SegmenterConfig(method="classic", max_hands=1)).segment(scene.depth, INTR)
    assert len(one.hands) == 1


def test_tracking_prefers_the_previous_hand():
    """Two equally good hands: the one near last frame's hand wins."""
    scene = Scene().hand((-150.0, 0.0, 550.0), forearm=False).hand((150.0, 0.0, 550.0), forearm=False)
    seg1 = HandSegmenter(SegmenterConfig(method="classic", max_hands=1))
    for k in (1, 2):
        # the "previous" result: hand k, located with the known-centre mode
        c = scene.palms[k - 1]
        prev = seg1.segment(scene.depth, INTR, known_com_uvd=np.array([*scene.px(c), c[2] - 12.0]))
        now = seg1.segment(scene.depth, INTR, prev=prev)
        assert np.linalg.norm(now.hands[0].com_xyz_mm - c) < 50.0


def test_known_centre_mode(segmenter):
    scene = Scene().body(BODY).hand((30.0, 0.0, 550.0))
    c = scene.palms[0]
    uvd = np.array([*scene.px(c), 550.0])
    seg = segmenter.segment(scene.depth, INTR, known_com_uvd=uvd)
    assert seg.found and seg.hands[0].confidence == 1.0
    np.testing.assert_allclose(seg.hands[0].com_uvd, uvd)
    np.testing.assert_allclose(seg.hands[0].com_xyz_mm, uvd_to_xyz(uvd, INTR))
    assert iou(seg.hands[0].mask, scene.hand_mask()) > 0.6  # the cube also holds some forearm
    assert not (seg.hands[0].mask & (scene.depth > 900)).any(), "the body lies outside the cube"
    with pytest.raises(InputError):
        segmenter.segment(scene.depth, INTR, known_com_uvd=np.array([1.0, 2.0, -3.0]))


def test_no_hand_reasons(segmenter):
    zeros = np.zeros(INTR.shape, np.uint16)
    assert segmenter.segment(zeros, INTR).reason == "all depth missing"
    assert not segmenter.segment(zeros, INTR).found
    assert segmenter.segment(None, INTR).reason == "empty frame"
    assert segmenter.segment(np.zeros((0, 0), np.uint16), INTR).reason == "empty frame"
    far = Scene().plane(3000.0).hand((0.0, 0.0, 2500.0))  # a whole hand, but beyond max_depth_mm
    assert segmenter.segment(far.depth, INTR).reason == "nothing in range"
    tiny = Scene().plane(2000.0).box((0.0, 0.0, 500.0), 20.0, 20.0)
    assert segmenter.segment(tiny.depth, INTR).reason == "too small"
    wall = Scene().plane(800.0)
    assert not segmenter.segment(wall.depth, INTR).found
    ball = Scene().plane(2000.0).box((0.0, 0.0, 500.0), 400.0, 400.0)  # far too big for a hand
    assert segmenter.segment(ball.depth, INTR).reason == "no hand shape"


def test_bad_depth_values_are_missing_pixels(segmenter):
    scene = Scene().body(BODY).hand((30.0, 0.0, 550.0))
    d = scene.depth.copy()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, d.size, size=(3, 4000))
    d.flat[idx[0]] = np.nan
    d.flat[idx[1]] = -50.0
    d.flat[idx[2]] = 1e9
    d[:5] = np.inf
    seg = segmenter.segment(d, INTR)
    _, err, iou_ = match(seg, scene)
    assert iou_ > 0.8 and err < 45.0
    assert not np.isnan(seg.hands[0].mask).any()
    nan = np.full(INTR.shape, np.nan, np.float32)
    assert segmenter.segment(nan, INTR).reason == "all depth missing"
    neg = np.full(INTR.shape, -5.0, np.float64)
    assert segmenter.segment(neg, INTR).reason == "all depth missing"
    absurd = np.full(INTR.shape, 1e12, np.float64)
    assert segmenter.segment(absurd, INTR).reason == "all depth missing"


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(INTR.shape, np.int8),
        np.zeros(INTR.shape, bool),
        np.zeros(INTR.shape + (3,), np.uint16),
        np.zeros((240, 320), np.uint16),
        [[1, 2], [3, 4]],
    ],
)
def test_wrong_container_is_an_input_error(segmenter, bad):
    with pytest.raises(InputError):
        segmenter.segment(bad, INTR)


def test_uint16_float32_float64_agree(segmenter):
    scene = Scene().body(BODY).hand((30.0, 0.0, 550.0))
    d16 = np.rint(scene.depth).astype(np.uint16)
    outs = [segmenter.segment(d16.astype(t), INTR).hands[0] for t in (np.uint16, np.float32, np.float64)]
    for o in outs[1:]:
        np.testing.assert_array_equal(o.mask, outs[0].mask)
        np.testing.assert_allclose(o.com_xyz_mm, outs[0].com_xyz_mm, atol=1e-6)


def test_config_is_validated():
    with pytest.raises(InputError):
        SegmenterConfig(min_depth_mm=900.0, max_depth_mm=800.0)
    with pytest.raises(InputError):
        SegmenterConfig(max_hands=0)


@pytest.mark.parametrize("method", ["auto", "learned", "classic"])
def test_real_nyu_frame(nyu_dir, method):
    from stream.depth_io import read_depth

    intr = KNOWN_CAMERAS["nyu"]
    depth = read_depth(nyu_dir / "depth_1_0000001.png", "nyu")
    gt_uvd = np.loadtxt(nyu_dir / "nyu_test_groundtruth_label.txt", max_rows=1).reshape(14, 3)
    # our camera frame keeps y down (DEVELOPERS.md), so the (u, v, d) labels convert without NYU's flip
    gt_xyz = uvd_to_xyz(gt_uvd, intr)
    segmenter = HandSegmenter(SegmenterConfig(method=method))
    assert segmenter.method == ("classic" if method == "classic" else "learned")
    seg = segmenter.segment(depth, intr)
    assert seg.found
    hand = seg.hands[0]
    assert np.linalg.norm(hand.com_xyz_mm - gt_xyz[13]) < 30.0, "centre within 30 mm of the palm joint"
    crop = crop_cube(depth, intr, hand.com_xyz_mm, cube_mm=250.0, mask=hand.mask)
    assert np.abs(normalize_joints(gt_xyz, crop)).max() < 1.0, "all 14 joints inside the cube"
    cols = crop.uvd_to_crop(gt_uvd)[:, :2]
    assert cols.min() >= 0 and cols.max() <= crop.size - 1


def test_eval_tool_breaks_down_by_visibility():
    """`handstream eval segmentation` on a few real generator frames: visibility from the hand rendered alone."""
    from train.eval_segmentation import evaluate, synthetic_frames

    frames = list(synthetic_frames(4, 3, "d435_320x240", True, True, True, False))
    for f in frames:
        assert len(f.hands) == 2
        for h in f.hands:
            assert 0.0 <= h.measured <= h.visibility <= 1.0 and 0.0 <= h.in_image <= 1.0
            assert h.visibility <= h.in_image + 1e-9  # what is outside the picture cannot be visible
    res = evaluate(iter(frames), HandSegmenter(CLASSIC))
    assert res["frames"] == 4 and res["gt_hands"] == 8
    assert sum(v["n"] for v in res["by_visibility"].values()) == 8
    assert 0.0 <= res["detected_rate_all"] <= 1.0


def test_tracking_window_keeps_the_hand_and_falls_back():
    """With prev, the window around the previous hand is searched first; a stale prev falls back."""
    scene = Scene().body(BODY).hand((30.0, 0.0, 550.0))
    seg = HandSegmenter(CLASSIC)
    first = seg.segment(scene.depth, INTR)
    again = seg.segment(scene.depth, INTR, prev=first)
    assert again.found
    np.testing.assert_allclose(again.hands[0].com_xyz_mm, first.hands[0].com_xyz_mm, atol=5.0)
    moved = Scene().body(BODY).hand((-250.0, 0.0, 550.0))  # the hand left the old window
    later = seg.segment(moved.depth, INTR, prev=first)
    _, err, iou_ = match(later, moved)
    assert iou_ > 0.8 and err < 45.0
