"""A contact sheet of synthetic samples: depth colour-mapped, colour, mask and the 2-D skeleton."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..outputs import write_png
from .hand import BONES, GESTURES_FINE
from .scene import SynthSample

FINGER_BGR = ((255, 255, 255), (0, 0, 255), (0, 200, 0), (255, 128, 0), (0, 215, 255), (255, 0, 255))


def depth_to_bgr(depth_mm: np.ndarray, near_mm: float = 200.0, far_mm: float = 1500.0) -> np.ndarray:
    """Depth colour-mapped (near = red, far = blue), missing pixels black."""
    d = depth_mm.astype(np.float32)
    t = np.clip((d - near_mm) / (far_mm - near_mm), 0, 1)
    img = cv2.applyColorMap((255 * (1 - t)).astype(np.uint8), cv2.COLORMAP_JET)
    img[d == 0] = 0
    return img


def draw_skeleton(img: np.ndarray, uvd: np.ndarray) -> np.ndarray:
    out = img.copy()
    s = max(1, img.shape[1] // 320)
    for p, c in BONES:
        finger = 0 if c == 0 else (c - 1) // 4 + 1
        a, b = uvd[p, :2], uvd[c, :2]
        if np.all(np.isfinite([a, b])):
            cv2.line(
                out, tuple(int(x) for x in a), tuple(int(x) for x in b), FINGER_BGR[finger], s, cv2.LINE_AA
            )
    for j, q in enumerate(uvd):
        if np.all(np.isfinite(q[:2])):
            finger = 0 if j == 0 else (j - 1) // 4 + 1
            cv2.circle(out, (int(q[0]), int(q[1])), s + 1, FINGER_BGR[finger], -1, cv2.LINE_AA)
    return out


def sample_tiles(s: SynthSample) -> np.ndarray:
    """One row: depth, colour, mask over depth, skeleton over colour-mapped depth."""
    depth = depth_to_bgr(s.frame.depth_mm)
    color = s.frame.color_bgr if s.frame.color_bgr is not None else np.zeros_like(depth)
    m = depth.copy()
    m[s.mask] = (0.4 * m[s.mask] + 0.6 * np.array([255, 255, 255])).astype(np.uint8)
    for o in s.other_hands:
        m[o.mask] = (0.4 * m[o.mask] + 0.6 * np.array([255, 0, 255])).astype(np.uint8)
    skel = draw_skeleton(color, s.joints_uvd)
    row = np.concatenate([depth, color, m, skel], axis=1)
    label = (
        f"{GESTURES_FINE[s.gesture_fine]} subj {s.subject} "
        f"az {s.orientation_deg[0]:.0f} el {s.orientation_deg[1]:.0f} z {s.joints_xyz_mm[9, 2]:.0f}mm"
    )
    cv2.putText(row, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return row


def contact_sheet(samples: list[SynthSample], path: str | Path) -> Path:
    """Write the contact sheet PNG (two samples per row of 4 tiles each)."""
    if not samples:
        raise InputError("no samples to draw")
    rows = [sample_tiles(s) for s in samples]
    if len(rows) % 2:
        rows.append(np.zeros_like(rows[0]))
    pairs = [np.concatenate([rows[i], rows[i + 1]], axis=1) for i in range(0, len(rows), 2)]
    sheet = np.concatenate(pairs, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_png(path, sheet)
