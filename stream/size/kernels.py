"""The scoring of one fitted candidate size (measure.score_terms) as one compiled call (numba).

Why: the size stage fits 75 candidate models a frame and scores each; the fits run compiled, and the numpy
scoring (posing the model again, 128 points x 84 spheres of distances, the projections of the spheres)
was two thirds of the stage's cost: at this size numpy's per-call cost, not arithmetic, is what it costs.
This kernel computes the same four terms with scalar loops, from what the fit returns: the sphere centres
are the model's point weights applied to the fitted joints (each centre is a fixed blend of joints and
palm anchors, so it follows the fitted joints and the global rotation without posing the model again).
It agrees with the numpy reference to rounding (the sums are accumulated in float64 in another order;
tested on real frames). No `@`, np.dot or np.linalg: the runtime install has no scipy for numba's BLAS.

Without numba the numpy reference runs (`HAVE_NUMBA` is False and the kernel is never called).
"""

from __future__ import annotations

import math

import numpy as np

try:
    import numba
except ImportError:  # the numpy reference runs instead
    numba = None

HAVE_NUMBA = numba is not None


def njit(fn):
    """numba's compiled function, or the plain Python one when numba is missing (then never called: the
    caller checks HAVE_NUMBA)."""
    if numba is None:
        return fn
    return numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")(fn)


@njit
def score_kernel(
    points: np.ndarray,
    radii: np.ndarray,
    point_weights: np.ndarray,
    point_offsets: np.ndarray,
    rot: np.ndarray,
    trans: np.ndarray,
    joints: np.ndarray,
    engine_joints: np.ndarray,
    depth_mm: np.ndarray,
    raw_mm: np.ndarray,
    dist_px: np.ndarray,
    proj: np.ndarray,
    mirror: float,
    mm_per_px: float,
    size: int,
    behind_mm: float,
    huber_mm: float,
    cap_mm: float,
    margin_mm: float,
) -> np.ndarray:
    """(data, silhouette, free space, prior) of measure.score_terms for a fitted model: `joints` (21, 3) are
    the fit's joints in the fit's frame (mirrored when the hand is a left one), `rot`, `trans` its global
    frame, `engine_joints` the engine's in the same frame; `behind_mm` is forearm_frac x the hand length."""
    n_sph = radii.shape[0]
    centres = np.empty((n_sph, 3))
    for k in range(n_sph):
        s = 0.0
        cx, cy, cz = 0.0, 0.0, 0.0
        for j in range(21):
            w = point_weights[k, j]
            if w != 0.0:
                s += w
                cx += w * joints[j, 0]
                cy += w * joints[j, 1]
                cz += w * joints[j, 2]
        ox, oy, oz = point_offsets[k, 0], point_offsets[k, 1], point_offsets[k, 2]
        # a blend of joints moved by the global frame carries (sum of weights) x trans; the anchors' part
        # (the offset) is rotated and carries the rest
        rest = 1.0 - s
        centres[k, 0] = cx + rot[0, 0] * ox + rot[0, 1] * oy + rot[0, 2] * oz + rest * trans[0]
        centres[k, 1] = cy + rot[1, 0] * ox + rot[1, 1] * oy + rot[1, 2] * oz + rest * trans[1]
        centres[k, 2] = cz + rot[2, 0] * ox + rot[2, 1] * oy + rot[2, 2] * oz + rest * trans[2]
    # data: each point's distance to the nearest sphere surface, points behind the wrist left out
    ay0, ay1, ay2 = rot[0, 1], rot[1, 1], rot[2, 1]
    data = 0.0
    for i in range(points.shape[0]):
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        if (px - trans[0]) * ay0 + (py - trans[1]) * ay1 + (pz - trans[2]) * ay2 < -behind_mm:
            continue
        best = np.inf
        for k in range(n_sph):
            dx, dy, dz = px - centres[k, 0], py - centres[k, 1], pz - centres[k, 2]
            d = math.sqrt(dx * dx + dy * dy + dz * dz) - radii[k]
            if d < best:
                best = d
        e = min(abs(best), cap_mm)
        data += e * e if e <= huber_mm else 2.0 * huber_mm * e - huber_mm * huber_mm
    # silhouette and free space at the spheres' pixels
    sil = 0.0
    free = 0.0
    for k in range(n_sph):
        z = max(centres[k, 2], 1.0)
        u = centres[k, 0] * (proj[0] * mirror / z) + proj[1]
        v = centres[k, 1] * (proj[2] / z) + proj[3]
        ci = int(min(max(np.rint(u), 0.0), size - 1.0))
        ri = int(min(max(np.rint(v), 0.0), size - 1.0))
        flat = ri * size + ci
        dt = dist_px[flat]
        if dt > 0 and raw_mm[flat] > z:
            m = dt * mm_per_px
            sil += m * m
        gap = centres[k, 2] - radii[k] - (depth_mm[flat] - margin_mm)
        if gap < 0.0:  # NaN (off the hand) compares False
            free += gap * gap
    prior = 0.0
    for j in range(21):
        for a in range(3):
            d = joints[j, a] - engine_joints[j, a]
            prior += d * d
    out = np.empty(4)
    out[0], out[1], out[2], out[3] = data, sil, free, prior
    return out
