"""Compiled kernel of the held-object rule (pieces.drop_object_pieces): the mask's pieces between depth steps,
found and judged in one pass.

`pieces.object_pieces_numpy` is the reference and the fallback; this finds the same pieces with a scalar
flood fill, because at their size (a few thousand sampled pixels) the dozen OpenCV and numpy calls of the
reference, not the pixels, were its whole cost (~0.1 ms a hand on the shared VM, on most learned hands).
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")


@numba.njit(**_JIT)
def _spans(depth: np.ndarray, i: int, j: int, jump_mm: float) -> bool:
    """Whether pixel (i, j)'s 4-neighbourhood inside the window spans more than jump_mm of depth."""
    h, w = depth.shape
    d = float(depth[i, j])
    lo = d
    hi = d
    if i > 0:
        v = float(depth[i - 1, j])
        lo = min(lo, v)
        hi = max(hi, v)
    if i < h - 1:
        v = float(depth[i + 1, j])
        lo = min(lo, v)
        hi = max(hi, v)
    if j > 0:
        v = float(depth[i, j - 1])
        lo = min(lo, v)
        hi = max(hi, v)
    if j < w - 1:
        v = float(depth[i, j + 1])
        lo = min(lo, v)
        hi = max(hi, v)
    return hi - lo > jump_mm


@numba.njit(**_JIT)
def object_pieces_kernel(
    m8: np.ndarray,
    depth: np.ndarray,
    logits: np.ndarray,
    jump_mm: float,
    max_logit: float,
    min_px: int,
    gone: np.ndarray,
) -> int:
    """Marks in `gone` (uint8, zeros, the shape of `m8`) the pixels to leave out and returns how many pieces
    go (0: none, `gone` untouched); see pieces.object_pieces_numpy."""
    h, w = m8.shape
    n_low = 0
    for i in range(h):
        for j in range(w):
            if m8[i, j] != 0 and logits[i, j] < max_logit:
                n_low += 1
    if 2 * n_low < min_px:
        return 0
    # a pixel is cut when its 4-neighbourhood (inside the window) spans more than jump_mm of depth
    edge = np.zeros((h, w), np.bool_)  # on the mask's pixels here; others where it matters, below
    for i in range(h):
        for j in range(w):
            if m8[i, j] != 0:
                edge[i, j] = _spans(depth, i, j, jump_mm)
    # 4-connected pieces of the mask's pixels that are not cut, labelled 1.. in raster order
    labels = np.zeros((h, w), np.int32)
    count = np.zeros(h * w + 1, np.int64)
    low = np.zeros(h * w + 1, np.int64)
    stack = np.empty(h * w, np.int64)
    n = 0
    for i in range(h):
        for j in range(w):
            if m8[i, j] == 0 or edge[i, j] or labels[i, j] != 0:
                continue
            n += 1
            labels[i, j] = n
            top = 0
            stack[top] = i * w + j
            top += 1
            while top > 0:
                top -= 1
                p = stack[top]
                a = p // w
                b = p - a * w
                count[n] += 1
                if logits[a, b] < max_logit:
                    low[n] += 1
                if a > 0 and m8[a - 1, b] != 0 and not edge[a - 1, b] and labels[a - 1, b] == 0:
                    labels[a - 1, b] = n
                    stack[top] = p - w
                    top += 1
                if a < h - 1 and m8[a + 1, b] != 0 and not edge[a + 1, b] and labels[a + 1, b] == 0:
                    labels[a + 1, b] = n
                    stack[top] = p + w
                    top += 1
                if b > 0 and m8[a, b - 1] != 0 and not edge[a, b - 1] and labels[a, b - 1] == 0:
                    labels[a, b - 1] = n
                    stack[top] = p - 1
                    top += 1
                if b < w - 1 and m8[a, b + 1] != 0 and not edge[a, b + 1] and labels[a, b + 1] == 0:
                    labels[a, b + 1] = n
                    stack[top] = p + 1
                    top += 1
    if n <= 1:
        return 0
    kept = 0
    n_drop = 0
    drop = np.zeros(n + 1, np.bool_)
    for k in range(1, n + 1):
        if count[k] >= min_px and 2 * low[k] > count[k]:
            drop[k] = True
            n_drop += 1
        else:
            kept += count[k]
    if n_drop == 0 or kept < min_px:
        return 0
    for i in range(h):
        for j in range(w):
            if drop[labels[i, j]]:  # (drop[0], the cut pixels and the background, stays False)
                gone[i, j] = 1
            elif (
                (i > 0 and drop[labels[i - 1, j]])
                or (i < h - 1 and drop[labels[i + 1, j]])
                or (j > 0 and drop[labels[i, j - 1]])
                or (j < w - 1 and drop[labels[i, j + 1]])
            ) and (edge[i, j] if m8[i, j] != 0 else _spans(depth, i, j, jump_mm)):
                gone[i, j] = 1  # a cut pixel along a dropped piece's border goes with it (with step > 1
                # the pixels it stands for may be the mask's, so not only the mask's own cut pixels)
    return n_drop
