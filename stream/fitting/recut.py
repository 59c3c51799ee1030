"""The crop cut again around the pixels a fitted hand explains.

The segmenter's mask can hold more than the hand -- a forearm, a held object, the edge of a jar -- and its
centre of mass then sits off the hand's; the pose engine was trained on crops around the hand's own pixels
and reads such a crop worse. Once the model is fitted, the pixels within `reach_mm` of its bones are the
hand's, so a crop around them alone is closer to what the engine knows. The fit stage runs the engine on
it once more and fits from those joints too (stage.py).
"""

from __future__ import annotations

import numpy as np

from ..frames import CameraIntrinsics
from ..synth.hand import BONES

_PARENT, _CHILD = (np.array(v) for v in zip(*BONES, strict=True))


def bone_distance(points: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(N,) distance (mm) of each point (N, 3) to the nearest bone (segment) of a (21, 3) skeleton."""
    p = np.asarray(points, dtype=np.float32)
    j = np.asarray(joints, dtype=np.float32)
    a, b = j[_PARENT], j[_CHILD]
    ab = b - a
    best = np.full(len(p), np.inf, dtype=np.float32)
    for k in range(len(ab)):
        ap = p - a[k]
        t = np.clip(ap @ ab[k] / max(float(ab[k] @ ab[k]), 1e-9), 0.0, 1.0)
        d = ap - t[:, None] * ab[k]
        np.minimum(best, np.einsum("ij,ij->i", d, d), out=best)
    return np.sqrt(best)


def recut(
    depth_mm: np.ndarray,
    intr: CameraIntrinsics,
    mask: np.ndarray,
    joints_mm: np.ndarray,
    cube_mm: float,
    size: int,
    reach_mm: float = 25.0,
    min_px: int = 50,
):
    """The CubeCrop around the pixels of `mask` within `reach_mm` of the skeleton's bones (their 3-D mean as
    the centre, them alone as the mask), or None when fewer than `min_px` are. On frames wider than 320
    pixels every second pixel is measured and the kept ones stand for their 2 x 2 block, so the cost does
    not grow with the resolution."""
    from ..preprocess import crop_cube

    step = max(1, int(round(intr.width / 320)))
    d = np.asarray(depth_mm)
    sub = mask[::step, ::step] & (d[::step, ::step] > 0)
    vs, us = np.nonzero(sub)
    if len(vs) < min_px:
        return None
    z = d[vs * step, us * step].astype(np.float32)
    pts = np.stack(
        [
            (us * step - np.float32(intr.cx)) * z / np.float32(intr.fx),
            (vs * step - np.float32(intr.cy)) * z / np.float32(intr.fy),
            z,
        ],
        axis=-1,
    ).astype(np.float32)
    keep = bone_distance(pts, joints_mm) < reach_mm
    if int(keep.sum()) < min_px:
        return None
    low = np.zeros(sub.shape, dtype=bool)
    low[vs[keep], us[keep]] = True
    if step > 1:
        low = np.repeat(np.repeat(low, step, axis=0), step, axis=1)[: mask.shape[0], : mask.shape[1]]
    centre = pts[keep].mean(axis=0).astype(np.float64)
    return crop_cube(d, intr, centre, cube_mm, size, mask & low)
