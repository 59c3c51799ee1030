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


def bone_distance(points: np.ndarray, joints: np.ndarray, compiled: bool = True) -> np.ndarray:
    """(N,) distance (mm, float32) of each point (N, 3) to the nearest bone (segment) of a (21, 3) skeleton:
    the compiled kernel where numba is there (`compiled`), else `bone_distance_numpy`; the two agree bit for
    bit (tests/test_fit_flip.py). The kernel is the one used: at a hand's few thousand pixels the reference's
    per-bone numpy calls cost 2-6 ms a recut on the 2-core VM, the kernel 0.1-0.5 ms."""
    from .fit import fit_kernels

    kernels = fit_kernels() if compiled else None
    if kernels is None:
        return bone_distance_numpy(points, joints)
    p = np.ascontiguousarray(points, dtype=np.float32)
    j = np.asarray(joints, dtype=np.float32)
    a = np.ascontiguousarray(j[_PARENT])
    ab = np.ascontiguousarray(j[_CHILD] - a)
    # the reference's divisor: the float32 squared length as a Python float, floored, back to float32
    length2 = np.array([max(float(ab[k] @ ab[k]), 1e-9) for k in range(len(ab))], dtype=np.float32)
    return kernels.bone_distance_kernel(p, a, ab, length2)


def bone_distance_numpy(points: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """The reference of `bone_distance`: one numpy pass per bone. The dot products are written out, x then y
    then z, as the kernel sums them: a matrix product or einsum sums in an order (and with fused
    multiply-adds) that depends on the CPU, and on a 2-core Intel Xeon instance the two then differed in the
    last bit of 8 % of the distances."""
    p = np.asarray(points, dtype=np.float32)
    j = np.asarray(joints, dtype=np.float32)
    a, b = j[_PARENT], j[_CHILD]
    ab = b - a
    best = np.full(len(p), np.inf, dtype=np.float32)
    for k in range(len(ab)):
        ap = p - a[k]
        along = ap[:, 0] * ab[k, 0] + ap[:, 1] * ab[k, 1] + ap[:, 2] * ab[k, 2]
        t = np.clip(along / max(float(ab[k] @ ab[k]), 1e-9), 0.0, 1.0)
        d = ap - t[:, None] * ab[k]
        np.minimum(best, d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2], out=best)
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
    compiled: bool = True,
):
    """The CubeCrop around the pixels of `mask` within `reach_mm` of the skeleton's bones (their 3-D mean as
    the centre, them alone as the mask), or None when fewer than `min_px` are. On frames wider than 320
    pixels every second pixel is measured and the kept ones stand for their 2 x 2 block, so the cost does
    not grow with the resolution. `compiled`: the distances by the compiled kernel (see `bone_distance`)."""
    from ..preprocess import crop_cube

    step = max(1, int(round(intr.width / 320)))
    d = np.asarray(depth_mm)
    h, w = mask.shape
    # only pixels whose 3-D point can lie within reach of a bone are measured: those inside the image box
    # of the joints' 3-D box grown by the reach (a superset, so the same pixels are kept as over the whole
    # frame, in the same order)
    v0, v1, u0, u1 = _reach_box(joints_mm, reach_mm, intr, -(-h // step), -(-w // step), step)
    sub = mask[v0 * step : v1 * step : step, u0 * step : u1 * step : step] & (
        d[v0 * step : v1 * step : step, u0 * step : u1 * step : step] > 0
    )
    vs, us = np.nonzero(sub)
    if len(vs) < min_px:
        return None
    vs, us = vs + v0, us + u0
    z = d[vs * step, us * step].astype(np.float32)
    pts = np.stack(
        [
            (us * step - np.float32(intr.cx)) * z / np.float32(intr.fx),
            (vs * step - np.float32(intr.cy)) * z / np.float32(intr.fy),
            z,
        ],
        axis=-1,
    ).astype(np.float32)
    keep = bone_distance(pts, joints_mm, compiled) < reach_mm
    if int(keep.sum()) < min_px:
        return None
    # each kept sample stands for its step x step block
    low = np.zeros(mask.shape, dtype=bool)
    rows, cols = vs[keep] * step, us[keep] * step
    for a in range(step):
        for b in range(step):
            inside = (rows + a < h) & (cols + b < w)
            low[rows[inside] + a, cols[inside] + b] = True
    centre = pts[keep].mean(axis=0).astype(np.float64)
    return crop_cube(d, intr, centre, cube_mm, size, mask & low)


def _reach_box(
    joints_mm: np.ndarray, reach_mm: float, intr: CameraIntrinsics, rows: int, cols: int, step: int
) -> tuple[int, int, int, int]:
    """(v0, v1, u0, u1): the rows and columns of the every-`step`-th-pixel grid (`rows` x `cols`) that can
    hold a point within `reach_mm` of the joints' bones: the projection of the joints' axis-aligned 3-D box
    grown by the reach (over a box in front of the camera, x/z and y/z are extreme at its corners), two
    samples wider for rounding. The whole grid when the box reaches the camera plane or a joint is not
    finite."""
    j = np.asarray(joints_mm, dtype=np.float64)
    whole = (0, rows, 0, cols)
    if not np.all(np.isfinite(j)):
        return whole
    lo, hi = j.min(axis=0) - reach_mm, j.max(axis=0) + reach_mm
    if lo[2] <= 1.0:
        return whole
    xs, ys, zs = (lo[0], hi[0]), (lo[1], hi[1]), (lo[2], hi[2])
    u = [x * intr.fx / z + intr.cx for x in xs for z in zs]
    v = [y * intr.fy / z + intr.cy for y in ys for z in zs]
    u0 = min(max(int(np.floor(min(u) / step)) - 2, 0), cols)
    u1 = min(max(int(np.ceil(max(u) / step)) + 3, 0), cols)
    v0 = min(max(int(np.floor(min(v) / step)) - 2, 0), rows)
    v1 = min(max(int(np.ceil(max(v) / step)) + 3, 0), rows)
    return v0, v1, u0, u1
