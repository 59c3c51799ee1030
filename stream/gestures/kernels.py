"""The static gesture stage's per-frame work as one compiled call (numba), beside its numpy reference.

Why: the work per frame is small (0.1 M multiply-adds), but the numpy path (`canonical_hand`, the dense
network of engines/backends/dense.py, the nearest gallery example, the vote) is a few dozen numpy calls, and
inside a running pipeline each meets caches the pose engine has just emptied: 150-190 us a frame against a
0.1 ms budget. Here one call does it all: canonical frame, the dense layers, L2 normalisation, the nearest
enrolled example and its distance, and the vote over the last frames.

Layout (built once by `pack`, shared by every hand's copy of the stage): one contiguous float32 block holds
each layer's weight as (in, out) rows -- so a layer is a sum of weight rows scaled by its inputs, and a ReLU
input of zero (about half of them) skips its row, which is not read at all -- then the biases, then the
gallery's embeddings transposed (dim, N) and their squared norms. Integer offsets and sizes go in `meta`.
Every inner loop runs over independent outputs, so it vectorises without reassociating any sum
(fastmath stays off). The numbers agree with the numpy path to ~1e-6 (tested on the shipped engine).

Without numba the recogniser keeps its numpy path (`HAVE_NUMBA` is False and `pack` is never called).
"""

from __future__ import annotations

import math

import numpy as np

try:
    import numba
except ImportError:  # the numpy path runs instead
    numba = None

HAVE_NUMBA = numba is not None


def njit(fn):
    """numba's compiled function, or the plain Python one when numba is missing (then never called on the
    per-frame path: the recogniser checks HAVE_NUMBA)."""
    if numba is None:
        return fn
    return numba.njit(cache=True, nogil=True, fastmath=False)(fn)


# meta: [n_in, n_layers, l2, dim, n_gallery, gal_off, sq_off, eps_off, take[0..n_in), then per layer
# (n_in, n_out, relu, w_off, b_off), then the class of each gallery row]
_HEAD = 8


def pack(net, gallery_emb: np.ndarray, class_of_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(params float32, meta int64) for the kernels, from a compiled dense net (engines.backends.dense.DenseNet),
    the gallery's embeddings (N, dim) and each row's class index."""
    n_in = int(net.layers[0].weight.shape[1])
    take = np.arange(n_in) if net.take is None else np.asarray(net.take, np.int64)
    if len(take) != n_in or take.max() >= 63:
        raise ValueError("the dense net does not read the 63 canonical joint coordinates")
    g = np.asarray(gallery_emb, np.float32)
    blocks: list[np.ndarray] = []
    off = 0

    def put(a: np.ndarray) -> int:
        nonlocal off
        blocks.append(np.ascontiguousarray(a, np.float32).reshape(-1))
        start, off = off, off + blocks[-1].size
        return start

    layer_meta = []
    for layer in net.layers:
        w_off = put(layer.weight.T)  # (in, out)
        b_off = put(layer.bias)
        layer_meta += [layer.weight.shape[1], layer.weight.shape[0], int(layer.relu), w_off, b_off]
    dim = int(net.layers[-1].weight.shape[0])
    if g.ndim != 2 or g.shape[1] != dim:
        raise ValueError(f"gallery embeddings {g.shape} do not match the net's output ({dim})")
    gal_off = put(g.T)
    sq_off = put((g.astype(np.float64) ** 2).sum(1))
    eps_off = put(np.array([net.eps if net.l2_normalize else 0.0]))
    head = [n_in, len(net.layers), int(net.l2_normalize), dim, len(g), gal_off, sq_off, eps_off]
    meta = np.array(head + list(take) + layer_meta + list(np.asarray(class_of_row, np.int64)), np.int64)
    return np.concatenate(blocks), meta


def new_votes(window: int) -> np.ndarray:
    """A hand's vote state for `gesture_step`: the last `window` votes, then how many there are and where the
    next goes."""
    return np.zeros(int(window) + 2, np.int64)


@njit
def _canonical(j, out):
    """(21, 3) float64 joints -> `out` (63,) float32 as stream.gestures.canonical.canonical_hand computes
    them; False when a coordinate is not finite."""
    for k in range(21):
        for c in range(3):
            if not math.isfinite(j[k, c]):
                return False
    w0, w1, w2 = j[0, 0], j[0, 1], j[0, 2]
    a0, a1, a2 = j[5, 0] - w0, j[5, 1] - w1, j[5, 2] - w2
    b0, b1, b2 = j[9, 0] - w0, j[9, 1] - w1, j[9, 2] - w2
    c0, c1, c2 = j[13, 0] - w0, j[13, 1] - w1, j[13, 2] - w2
    d0, d1, d2 = j[17, 0] - w0, j[17, 1] - w1, j[17, 2] - w2
    y0, y1, y2 = a0 + b0 + c0 + d0, a1 + b1 + c1 + d1, a2 + b2 + c2 + d2
    n = max(math.sqrt(y0 * y0 + y1 * y1 + y2 * y2), 1e-12)
    y0, y1, y2 = y0 / n, y1 / n, y2 / n
    x0, x1, x2 = a0 - d0, a1 - d1, a2 - d2
    d = x0 * y0 + x1 * y1 + x2 * y2
    x0, x1, x2 = x0 - d * y0, x1 - d * y1, x2 - d * y2
    n = max(math.sqrt(x0 * x0 + x1 * x1 + x2 * x2), 1e-12)
    x0, x1, x2 = x0 / n, x1 / n, x2 / n
    z0, z1, z2 = x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0
    scale = (
        math.sqrt(a0 * a0 + a1 * a1 + a2 * a2)
        + math.sqrt(b0 * b0 + b1 * b1 + b2 * b2)
        + math.sqrt(c0 * c0 + c1 * c1 + c2 * c2)
        + math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    ) / 4.0
    s = max(scale, 1e-12)
    x0, x1, x2, y0, y1, y2, z0, z1, z2 = (
        x0 / s,
        x1 / s,
        x2 / s,
        y0 / s,
        y1 / s,
        y2 / s,
        z0 / s,
        z1 / s,
        z2 / s,
    )
    for k in range(21):
        r0, r1, r2 = j[k, 0] - w0, j[k, 1] - w1, j[k, 2] - w2
        out[3 * k] = r0 * x0 + r1 * x1 + r2 * x2
        out[3 * k + 1] = r0 * y0 + r1 * y1 + r2 * y2
        out[3 * k + 2] = r0 * z0 + r1 * z1 + r2 * z2
    return True


@njit
def _embed(x, params, meta, emb):
    """The dense layers and L2 normalisation on canonical coordinates `x` (63,) float32 -> `emb` (dim,)."""
    n_in, n_layers, l2 = meta[0], meta[1], meta[2]
    width = n_in
    for k in range(n_layers):
        width = max(width, meta[_HEAD + n_in + 5 * k + 1])
    h = np.empty(width, np.float32)
    nxt = np.empty(width, np.float32)
    for i in range(n_in):
        h[i] = x[meta[_HEAD + i]]
    for k in range(n_layers):
        m = _HEAD + n_in + 5 * k
        ni, no, relu, w_off, b_off = meta[m], meta[m + 1], meta[m + 2], meta[m + 3], meta[m + 4]
        # 2-D views, not params[offset + o]: numba's checks for negative indices stop vectorisation
        w = params[w_off : w_off + ni * no].reshape((ni, no))
        b = params[b_off : b_off + no]
        for o in range(no):
            nxt[o] = b[o]
        for i in range(ni):
            xi = h[i]
            if xi == 0.0:  # a ReLU's zero: its weight row adds nothing and is not read
                continue
            wi = w[i]
            for o in range(no):
                nxt[o] += wi[o] * xi
        if relu:
            for o in range(no):
                if nxt[o] < 0.0:
                    nxt[o] = 0.0
        h, nxt = nxt, h
    dim = meta[3]
    if l2:
        ss = 0.0
        for o in range(dim):
            ss += float(h[o]) * float(h[o])
        norm = np.float32(max(math.sqrt(ss), float(params[meta[7]])))
        for o in range(dim):
            emb[o] = h[o] / norm
    else:
        for o in range(dim):
            emb[o] = h[o]


@njit
def embed_canonical(c, params, meta, emb):
    """(21, 3) float32 canonical joints -> `emb` (dim,) float32: the gallery's and the parity check's entry."""
    x = np.empty(63, np.float32)
    for k in range(21):
        for d in range(3):
            x[3 * k + d] = c[k, d]
    _embed(x, params, meta, emb)


@njit
def _nearest(emb, params, meta):
    """(row, squared distance) of the gallery example nearest to `emb`; the first of equals, as argmin."""
    dim, n, gal, sq = meta[3], meta[4], meta[5], meta[6]
    g = params[gal : gal + dim * n].reshape((dim, n))
    g_sq = params[sq : sq + n]
    dots = np.zeros(n, np.float32)
    for d in range(dim):
        e = emb[d]
        gd = g[d]
        for k in range(n):
            dots[k] += gd[k] * e
    best, best_d2 = 0, np.inf
    for k in range(n):
        d2 = g_sq[k] - 2.0 * dots[k]
        if d2 < best_d2:
            best, best_d2 = k, d2
    ee = 0.0
    for d in range(dim):
        ee += float(emb[d]) * float(emb[d])
    return best, best_d2 + ee


@njit
def _vote(votes, cls):
    """Add `cls` (-1 = unknown) to the last-`window` votes; the majority (the first seen of equals, as a dict
    counts them), -2 when it is unknown or holds under half of the votes."""
    w = votes.shape[0] - 2
    n, nxt = votes[w], votes[w + 1]
    votes[nxt] = cls
    nxt = (nxt + 1) % w
    if n < w:
        n += 1
    votes[w], votes[w + 1] = n, nxt
    start = (nxt - n + w) % w
    best, best_n = -2, 0
    for t in range(n):
        v = votes[(start + t) % w]
        c = 0
        for u in range(n):
            if votes[(start + u) % w] == v:
                c += 1
        if c > best_n:
            best, best_n = v, c
    if best == -1 or 2 * best_n < n:
        return -2
    return best


@njit
def gesture_step(joints, params, meta, votes, reject_distance):
    """One frame: (21, 3) float64 joints in any unit -> (nearest gallery row, its distance, voted class).
    Row -1 when a joint is not finite (nothing voted); voted class -2 when no gesture holds the vote."""
    x = np.empty(63, np.float32)
    if not _canonical(joints, x):
        return -1, np.nan, -2
    emb = np.empty(meta[3], np.float32)
    _embed(x, params, meta, emb)
    row, d2 = _nearest(emb, params, meta)
    dist = math.sqrt(max(d2, 0.0))
    cls = -1 if dist > reject_distance else meta[_HEAD + meta[0] + 5 * meta[1] + row]
    return row, dist, _vote(votes, cls)
