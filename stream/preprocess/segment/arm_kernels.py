"""Compiled kernel of the forearm cut's test (refine.cut_arm): one pass over every f-th mask pixel.

`refine.far_side_numpy` is the reference and the fallback; this computes the same sums with one scalar
loop, because at its size (~1600 samples) the twenty-odd numpy calls of the reference, not the
arithmetic, were its whole cost (~50-80 us a hand on the shared VM, on every learned hand of every frame).
"""

from __future__ import annotations

import math

import numba
import numpy as np

# numpy's float semantics (a division by zero gives inf or NaN as in the reference, no exception)
_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")


@numba.njit(**_JIT)
def far_side_kernel(
    m8: np.ndarray,
    depth: np.ndarray,
    f: int,
    u0: float,
    v0: float,
    fx: float,
    fy: float,
    ax: float,
    ay: float,
    az: float,
    reach2: float,
    long2: float,
) -> tuple[int, int, int, float, float, float, float]:
    """(mask samples, samples beyond the reach, samples beyond sqrt(long2), sums of the former's unit vectors
    x, y, z from the anchor, sum of their depth offsets), over pixels (i, j) with i, j multiples of f; see
    refine.far_side_numpy."""
    h, w = m8.shape
    n = 0
    n_far = 0
    n_long = 0
    sx = 0.0
    sy = 0.0
    sz = 0.0
    sdz = 0.0
    for i in range(0, h, f):
        yv = (i + v0) / fy
        for j in range(0, w, f):
            if m8[i, j] == 0:
                continue
            d = float(depth[i, j])
            n += 1
            px = d * ((j + u0) / fx) - ax
            py = d * yv - ay
            pz = d - az
            r2 = px * px + py * py + pz * pz
            if r2 > reach2:
                r = math.sqrt(r2)
                n_far += 1
                sx += px / r
                sy += py / r
                sz += pz / r
                sdz += pz
                if r2 > long2:
                    n_long += 1
    return n, n_far, n_long, sx, sy, sz, sdz
