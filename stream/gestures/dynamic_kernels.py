"""The dynamic gesture stage's numpy work per evaluation as compiled calls (numba), beside its numpy reference
in stream/gestures/dynamic.py and dynamic_stage.py.

Why: an evaluation (every third frame once the hand has settled) cost ~0.9 ms, of which the network on ONNX
Runtime is 0.3 ms; the rest was some hundred numpy calls on 32 x 21 x 3 numbers: resampling the track,
the motion test, the window's features (with an SVD for the mean hand frame), the settle test and the
nearest enrolled example. Here those are three calls; the network stays on ONNX Runtime (1-D
convolutions, not the plain dense graph the static stage's kernel runs).

The mean hand frame (the rotation nearest the mean of the window's hand axes, `u @ vt` of its SVD in the
numpy code) is its polar factor here, found by Newton's iteration X <- (X + X^-T) / 2, which converges to the
same matrix; where it does not converge (a mean frame near singular: the hand turned half a turn within
the window) the kernel says so and the caller takes the numpy path for that window. The numbers agree with
the numpy path to ~1e-6 (tested on the shipped engine's gallery and on motion tracks).
"""

from __future__ import annotations

import math

import numpy as np

from .kernels import HAVE_NUMBA, njit

__all__ = ["HAVE_NUMBA", "nearest_row", "settled", "window_features_into"]

_TIPS = (0, 4, 8, 12, 16, 20)  # the wrist and the five fingertips: what motion_extent and settling follow
_MCPS = (5, 9, 13, 17)


@njit
def _resample(t, j, end_ms, window_ms, out):
    """stream.gestures.dynamic.resample_track into `out` (frames, 21, 3) float64."""
    frames, n = out.shape[0], t.shape[0]
    start = end_ms - window_ms
    step = (end_ms - start) / (frames - 1) if frames > 1 else 0.0
    k = 0
    for i in range(frames):
        q = end_ms if i == frames - 1 else i * step + start
        if n == 1:
            for p in range(21):
                for c in range(3):
                    out[i, p, c] = j[0, p, c]
            continue
        while k + 1 < n and t[k + 1] <= q:  # k = (samples <= q) - 1, clipped to [0, n - 2]
            k += 1
        kk = min(k, n - 2)
        a = (q - t[kk]) / max(t[kk + 1] - t[kk], 1e-9)
        a = min(max(a, 0.0), 1.0)
        for p in range(21):
            for c in range(3):
                out[i, p, c] = (1.0 - a) * j[kk, p, c] + a * j[kk + 1, p, c]


@njit
def _motion_extent(w):
    """stream.gestures.dynamic.motion_extent of a (T, 21, 3) window."""
    T = w.shape[0]
    palm = 0.0
    for i in range(T):
        for m in _MCPS:
            d0, d1, d2 = w[i, m, 0] - w[i, 0, 0], w[i, m, 1] - w[i, 0, 1], w[i, m, 2] - w[i, 0, 2]
            palm += math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    palm /= 4.0 * T
    total = 0.0
    for p in _TIPS:
        ss = 0.0
        for c in range(3):
            lo, hi = w[0, p, c], w[0, p, c]
            for i in range(1, T):
                lo, hi = min(lo, w[i, p, c]), max(hi, w[i, p, c])
            ss += (hi - lo) * (hi - lo)
        total += math.sqrt(ss)
    return total / len(_TIPS) / max(palm, 1e-12)


@njit
def _polar(m, out):
    """The orthogonal polar factor of 3x3 `m` (`u @ vt` of its SVD) into `out`; False where Newton's
    iteration does not converge (a near-singular `m`)."""
    for a in range(3):
        for b in range(3):
            out[a, b] = m[a, b]
    change = np.inf
    for _ in range(60):
        x = out
        c00 = x[1, 1] * x[2, 2] - x[1, 2] * x[2, 1]
        c01 = x[1, 2] * x[2, 0] - x[1, 0] * x[2, 2]
        c02 = x[1, 0] * x[2, 1] - x[1, 1] * x[2, 0]
        c10 = x[0, 2] * x[2, 1] - x[0, 1] * x[2, 2]
        c11 = x[0, 0] * x[2, 2] - x[0, 2] * x[2, 0]
        c12 = x[0, 1] * x[2, 0] - x[0, 0] * x[2, 1]
        c20 = x[0, 1] * x[1, 2] - x[0, 2] * x[1, 1]
        c21 = x[0, 2] * x[1, 0] - x[0, 0] * x[1, 2]
        c22 = x[0, 0] * x[1, 1] - x[0, 1] * x[1, 0]
        det = x[0, 0] * c00 + x[0, 1] * c01 + x[0, 2] * c02
        if not abs(det) > 1e-9:
            return False
        inv_t = ((c00, c01, c02), (c10, c11, c12), (c20, c21, c22))  # X^-T = cofactors / det
        change = 0.0
        for a in range(3):
            for b in range(3):
                v = 0.5 * (x[a, b] + inv_t[a][b] / det)
                change = max(change, abs(v - x[a, b]))
                out[a, b] = v
        if change < 1e-15:
            return True
    return change < 1e-12


@njit
def window_features_into(times, joints, end_ms, window_ms, min_motion, feats):
    """The window of the track (times (N,), joints (N, 21, 3) float64) ending at `end_ms`, resampled to
    feats.shape[0] samples: (motion extent, ok). When the extent reaches `min_motion`, `feats` (T, 69)
    float32 holds stream.gestures.dynamic.window_features of the window; ok is False when the mean hand frame
    could not be found here (then `feats` is not written and the numpy path should run)."""
    T = feats.shape[0]
    w = np.empty((T, 21, 3))
    _resample(times, joints, end_ms, window_ms, w)
    extent = _motion_extent(w)
    if extent < min_motion:
        return extent, True
    rot = np.empty((T, 3, 3))
    scale = np.empty(T)
    mean = np.zeros((3, 3))
    for i in range(T):
        w0, w1, w2 = w[i, 0, 0], w[i, 0, 1], w[i, 0, 2]
        y0 = y1 = y2 = 0.0
        s = 0.0
        for m in _MCPS:
            d0, d1, d2 = w[i, m, 0] - w0, w[i, m, 1] - w1, w[i, m, 2] - w2
            y0, y1, y2 = y0 + d0, y1 + d1, y2 + d2
            s += math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        y0, y1, y2 = y0 / 4.0, y1 / 4.0, y2 / 4.0
        scale[i] = s / 4.0
        n = max(math.sqrt(y0 * y0 + y1 * y1 + y2 * y2), 1e-12)
        y0, y1, y2 = y0 / n, y1 / n, y2 / n
        x0, x1, x2 = w[i, 5, 0] - w[i, 17, 0], w[i, 5, 1] - w[i, 17, 1], w[i, 5, 2] - w[i, 17, 2]
        d = x0 * y0 + x1 * y1 + x2 * y2
        x0, x1, x2 = x0 - d * y0, x1 - d * y1, x2 - d * y2
        n = max(math.sqrt(x0 * x0 + x1 * x1 + x2 * x2), 1e-12)
        x0, x1, x2 = x0 / n, x1 / n, x2 / n
        rot[i, 0, 0], rot[i, 0, 1], rot[i, 0, 2] = x0, x1, x2
        rot[i, 1, 0], rot[i, 1, 1], rot[i, 1, 2] = y0, y1, y2
        rot[i, 2, 0], rot[i, 2, 1], rot[i, 2, 2] = x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0
        for a in range(3):
            for b in range(3):
                mean[a, b] += rot[i, a, b]
    for a in range(3):
        for b in range(3):
            mean[a, b] /= T
    mean_rot = np.empty((3, 3))
    if not _polar(mean, mean_rot):
        return extent, False
    palm = 0.0
    wrist_mean = np.zeros(3)
    for i in range(T):
        palm += scale[i]
        for c in range(3):
            wrist_mean[c] += w[i, 0, c]
    palm = max(palm / T, 1e-12)
    for c in range(3):
        wrist_mean[c] /= T
    for i in range(T):
        unit = max(scale[i], 1e-12)
        for p in range(1, 21):
            r0, r1, r2 = w[i, p, 0] - w[i, 0, 0], w[i, p, 1] - w[i, 0, 1], w[i, p, 2] - w[i, 0, 2]
            for a in range(3):
                feats[i, 3 * (p - 1) + a] = (r0 * rot[i, a, 0] + r1 * rot[i, a, 1] + r2 * rot[i, a, 2]) / unit
        for c in range(3):
            feats[i, 60 + c] = (w[i, 0, c] - wrist_mean[c]) / palm
        for r in range(2):
            for a in range(3):
                feats[i, 63 + 3 * r + a] = (
                    rot[i, 1 + r, 0] * mean_rot[a, 0]
                    + rot[i, 1 + r, 1] * mean_rot[a, 1]
                    + rot[i, 1 + r, 2] * mean_rot[a, 2]
                )
    return extent, True


@njit
def settled(times, joints, t, settle_ms, settle_motion):
    """DynamicGestureStage._settled on the track's arrays: whether the mean wrist and fingertip positions of
    the last `settle_ms` and of the `settle_ms` before lie less than `settle_motion` palm lengths apart."""
    n = times.shape[0]
    recent = np.zeros((6, 3))
    before = np.zeros((6, 3))
    nr = nb = 0
    for i in range(n):
        is_recent = times[i] > t - settle_ms
        is_before = times[i] > t - 2 * settle_ms and times[i] <= t - settle_ms
        if not (is_recent or is_before):
            continue
        acc = recent if is_recent else before
        for q in range(6):
            for c in range(3):
                acc[q, c] += joints[i, _TIPS[q], c]
        if is_recent:
            nr += 1
        else:
            nb += 1
    if nr == 0 or nb == 0:
        return True
    moved = 0.0
    for q in range(6):
        ss = 0.0
        for c in range(3):
            d = recent[q, c] / nr - before[q, c] / nb
            ss += d * d
        moved += math.sqrt(ss)
    moved /= 6.0
    palm = 0.0
    for m in _MCPS:
        ss = 0.0
        for c in range(3):
            d = joints[n - 1, m, c] - joints[n - 1, 0, c]
            ss += d * d
        palm += math.sqrt(ss)
    palm /= 4.0
    return moved < settle_motion * max(palm, 1e-9)


@njit
def nearest_row(emb, gallery_t, gallery_sq):
    """(row, distance) of the enrolled embedding nearest to `emb` (d,), the gallery given transposed (d, N)
    in float64 with its squared norms: stream.gestures.gallery.nearest for one query."""
    d, n = gallery_t.shape
    dots = np.zeros(n)
    ee = 0.0
    for k in range(d):
        e = float(emb[k])
        ee += e * e
        g = gallery_t[k]
        for i in range(n):
            dots[i] += g[i] * e
    best, best_d2 = 0, np.inf
    for i in range(n):
        d2 = gallery_sq[i] - 2.0 * dots[i] + ee
        if d2 < best_d2:
            best, best_d2 = i, d2
    return best, math.sqrt(max(best_d2, 0.0))
