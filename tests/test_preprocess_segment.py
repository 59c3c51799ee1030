"""Segmentation on scenes drawn here (metric sizes at a given depth) and on the real NYU frame.

The scenes are deliberately simple (palm ellipse, finger bars, a forearm bar, a body, closer distractors)
so each test controls exactly one difficulty; tools/eval_segmentation.py measures the full synthetic
generator statistically.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from stream.errors import InputError
from stream.frames import KNOWN_CAMERAS, CameraIntrinsics
from stream.geometry import uvd_to_xyz
from stream.preprocess import HandSegmenter, SegmenterConfig, Segmentation, crop_cube, normalize_joints

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
        cv2.line(layer, pt(thumb_base), pt(thumb_base + (-side * 0.8 + up * 0.6) * 55 * f), 1, max(1, int(20 * f)))
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


@pytest.fixture(scope="module")
def segmenter() -> HandSegmenter:
    return HandSegmenter(SegmenterConfig())
