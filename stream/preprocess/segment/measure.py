"""Small measurements both segmentation paths share: order statistics without np.percentile's overhead,
3-D points and principal axes of a pixel set, the centre of mass from image moments (the centre the pose
model is trained on), the palm centre, bounding boxes, and the pixel window a metric box around a 3-D point
covers. Pure functions of their arguments, numpy + OpenCV.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...frames import CameraIntrinsics

__all__ = [
    "com_from_moments",
    "mask_bbox",
    "merge_windows",
    "palm_centre",
    "pixel_points",
    "principal_axes",
    "quantile",
    "robust_range",
    "view_window",
]


def com_from_moments(
    mom: dict, n_px: int, x0: int, y0: int, intr: CameraIntrinsics, push_back_mm: float
) -> np.ndarray | None:
    """The hand centre both paths share (the pose model is trained on it): the mean camera-frame point of the
    mask's n_px pixels, from the image moments (sums of d, u*d, v*d) of the masked depth of a window whose
    top-left pixel is (x0, y0), pushed `push_back_mm` back along its viewing ray (the camera sees the front
    surface; the centre lies behind it). None when the masked depth sums to no positive finite depth (a
    mask over pixels that hold no measurement): there is no centre, and dividing by it gave NaN."""
    sd = mom["m00"]
    if not (n_px > 0 and sd > 0 and np.isfinite(sd)):
        return None
    com = np.array(
        [
            (mom["m10"] + x0 * sd - intr.cx * sd) / (n_px * intr.fx),
            (mom["m01"] + y0 * sd - intr.cy * sd) / (n_px * intr.fy),
            sd / n_px,
        ]
    )
    if push_back_mm:
        com *= (com[2] + push_back_mm) / com[2]
    return com


def quantile(a: np.ndarray, q: float) -> float:
    """np.percentile(a, 100 q) (linear interpolation) of a 1-D array via np.partition: the same value
    without np.percentile's per-call overhead (tens of microseconds on small arrays)."""
    n = len(a)
    pos = q * (n - 1)
    k = int(pos)
    if k + 1 >= n:
        return float(np.partition(a, k)[k])
    p = np.partition(a, (k, k + 1))
    lo, hi = float(p[k]), float(p[k + 1])
    return lo + (hi - lo) * (pos - k)


def robust_range(a: np.ndarray, frac: float) -> tuple[float, float]:
    """(low, high) order statistics at `frac` and 1 - `frac` (np.partition: cheaper than np.percentile)."""
    n = len(a)
    k = int(frac * (n - 1))
    p = np.partition(a, (k, n - 1 - k))
    return float(p[k]), float(p[n - 1 - k])


def pixel_points(xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """(N, 3) camera-frame points (mm, float64) of pixels (xs, ys) at depths zs: sizes are judged in mm."""
    zz = zs.astype(np.float64)
    return np.stack(
        [(xs - intr.cx) * zz / intr.fx, (ys - intr.cy) * zz / intr.fy, zz],
        axis=1,
    )


def principal_axes(centered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Major axis and the second axis of a centred (N, 3) point set (eigenvectors of its covariance)."""
    cov = centered.T @ centered / max(len(centered), 1)
    _, vecs = np.linalg.eigh(cov)
    return vecs[:, 2], vecs[:, 1]


def palm_centre(m: np.ndarray, roi: np.ndarray, x0: int, y0: int, offset_mm: float) -> np.ndarray | None:
    """(u, v, d) of the point deepest inside the mask; d = median depth of the disc around it + offset."""
    if not m.any():
        return None
    f = 2 if min(m.shape) > 64 else 1  # a near hand at 640x480: every other pixel is plenty (~2x faster)
    dt = cv2.distanceTransform(np.ascontiguousarray(m[::f, ::f]).view(np.uint8), cv2.DIST_L2, 3)
    _, r, _, (pu, pv) = cv2.minMaxLoc(dt)
    r, pu, pv = r * f, pu * f, pv * f
    k = max(int(r * 0.5), 1)
    sub_m = m[max(pv - k, 0) : pv + k + 1, max(pu - k, 0) : pu + k + 1]
    sub_d = roi[max(pv - k, 0) : pv + k + 1, max(pu - k, 0) : pu + k + 1]
    d = float(np.median(sub_d[sub_m])) + offset_mm
    return np.array([pu + x0, pv + y0, d], dtype=np.float64)


def mask_bbox(mask: np.ndarray, roi: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the mask's pixels, searched inside roi = (x0, y0, x1, y1) only."""
    x0, y0, x1, y1 = roi
    sub = mask[y0:y1, x0:x1]
    if not sub.any():
        return (0, 0, 0, 0)
    x, y, w, h = cv2.boundingRect(sub.view(np.uint8))
    return (int(x + x0), int(y + y0), int(w), int(h))


def view_window(
    com_xyz: np.ndarray, sintr: CameraIntrinsics, half_mm: float
) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the low-res view covering +- half_mm around a 3-D point (None: off the view)."""
    x, y, zc = (float(v) for v in com_xyz)
    if zc <= 0:
        return None
    x0 = max(int(sintr.fx * (x - half_mm) / zc + sintr.cx), 0)
    x1 = min(int(sintr.fx * (x + half_mm) / zc + sintr.cx) + 2, sintr.width)
    y0 = max(int(sintr.fy * (y - half_mm) / zc + sintr.cy), 0)
    y1 = min(int(sintr.fy * (y + half_mm) / zc + sintr.cy) + 2, sintr.height)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return y0, y1, x0, x1


def merge_windows(wins: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Overlapping (y0, y1, x0, x1) windows become their bounding window (a piece is judged once)."""
    out: list[tuple[int, int, int, int]] = []
    for w in wins:
        for i, o in enumerate(out):
            if w[0] < o[1] and o[0] < w[1] and w[2] < o[3] and o[2] < w[3]:
                out[i] = (min(w[0], o[0]), max(w[1], o[1]), min(w[2], o[2]), max(w[3], o[3]))
                break
        else:
            out.append(w)
    return out
