"""Compiled kernel of the held-object rule (pieces.drop_object_pieces): the mask's pieces between depth steps,
found and judged in one pass.

`pieces.object_pieces_numpy` is the reference and the fallback; this finds the same pieces with a scalar
flood fill, because at their size (a few thousand pixels) the dozen OpenCV and numpy calls of the reference,
not the pixels, were its whole cost: per hand (p50, `drop_object_pieces` on the learned hands of 150
generated frames at 320x240, the shared VM) 0.082 / 0.129 ms frontal / desk with the reference, 0.046 / 0.058
ms with this.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")


@numba.njit(inline="always", **_JIT)
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
    free = np.zeros((h, w), np.uint8)  # the mask's pixels not cut and not yet in a piece
    for i in range(h):
        for j in range(w):
            if m8[i, j] != 0:
                e = _spans(depth, i, j, jump_mm)
                edge[i, j] = e
                free[i, j] = 0 if e else 1
    # 4-connected pieces of the mask's pixels that are not cut, labelled 1.. in raster order
    labels = np.zeros((h, w), np.int32)
    count = np.zeros(h * w + 1, np.int32)
    low = np.zeros(h * w + 1, np.int32)
    stack_i = np.empty(h * w, np.int32)  # rows and columns apart: no division per pixel
    stack_j = np.empty(h * w, np.int32)
    n = 0
    for i in range(h):
        for j in range(w):
            if free[i, j] == 0:
                continue
            n += 1
            free[i, j] = 0
            stack_i[0] = i
            stack_j[0] = j
            top = 1
            while top > 0:
                top -= 1
                a = stack_i[top]
                b = stack_j[top]
                labels[a, b] = n
                count[n] += 1
                if logits[a, b] < max_logit:
                    low[n] += 1
                if a > 0 and free[a - 1, b] != 0:
                    free[a - 1, b] = 0
                    stack_i[top] = a - 1
                    stack_j[top] = b
                    top += 1
                if a < h - 1 and free[a + 1, b] != 0:
                    free[a + 1, b] = 0
                    stack_i[top] = a + 1
                    stack_j[top] = b
                    top += 1
                if b > 0 and free[a, b - 1] != 0:
                    free[a, b - 1] = 0
                    stack_i[top] = a
                    stack_j[top] = b - 1
                    top += 1
                if b < w - 1 and free[a, b + 1] != 0:
                    free[a, b + 1] = 0
                    stack_i[top] = a
                    stack_j[top] = b + 1
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
