"""A held object left out of a learned hand's mask (`SegmenterConfig.object_piece_*`).

A hand gripping a bottle, cup or box lies in the object's depth band, the detector's coarse mask (1/8 of the
frame's width) covers both, and the centre of mass falls on the object: on the close-range tuning sequences
40-50 % of such a mask was the held object, and its pixels' logits sat around -2..1 where the hand's sat at
2..6. The fingers lie on the object's surface, a finger's thickness in front of it, so the mask cut at depth
steps falls into pieces; a large piece the detector mostly calls background goes. The piece under the
detector's peak is not spared: the coarse peak often sits on the object beside the fingers.

Off by default (`SegmenterConfig.object_piece_logit` -1e9): it trusts the detector's logits to tell the hand
from the object, and where the detector is unsure of a close-range hand the hand's piece is the one that
goes (on four close-range sets beyond the tuning ones, 79.1 -> 75.3 % of frames on the hand; BENCHMARKS.md).

`object_pieces_numpy` is the reference; `piece_kernels.object_pieces_kernel` computes the same in one
compiled pass (the reference's dozen OpenCV and numpy calls, not the pixels, made its cost).
"""

from __future__ import annotations

import cv2
import numpy as np

from ...compiled import announce_compile, not_compiled

__all__ = ["compile_piece_kernels", "drop_object_pieces", "object_pieces_numpy"]

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def drop_object_pieces(
    m8: np.ndarray,
    depth: np.ndarray,
    logits: np.ndarray,
    jump_mm: float,
    max_logit: float,
    min_px: int,
    step: int = 1,
    compiled: bool = True,
) -> np.ndarray:
    """`m8` (0/255) without the pieces the detector barely calls hand: pieces are 4-connected after cutting
    the mask where neighbouring depths step by more than `jump_mm`; a piece of at least `min_px` pixels,
    most of them with a logit under `max_logit`, goes, as long as `min_px` pixels stay. `step`: pieces are
    found on every step-th pixel (`min_px` counts those), so that a 640x480 frame costs what a 320x240 one
    does; what goes is then cut from `m8` at full resolution. Returns `m8` itself when nothing is removed."""
    # inside the mask's bounding box + 1 pixel only (the depth band's box around it can be much larger)
    bx, by, bw, bh = cv2.boundingRect(m8)
    x0, y0 = max(bx - 1, 0), max(by - 1, 0)
    x1, y1 = min(bx + bw + 1, m8.shape[1]), min(by + bh + 1, m8.shape[0])
    box8, lg, d = m8[y0:y1:step, x0:x1:step], logits[y0:y1:step, x0:x1:step], depth[y0:y1:step, x0:x1:step]
    if compiled and _kernels is not None:
        gone = np.zeros(box8.shape, np.uint8)
        if not _kernels.object_pieces_kernel(
            box8, d, lg, float(jump_mm), float(max_logit), int(min_px), gone
        ):
            return m8
    else:
        gone = object_pieces_numpy(box8, d, lg, jump_mm, max_logit, min_px)
        if gone is None:
            return m8
    if step > 1:  # each full-resolution pixel goes with the sampled pixel it lies on
        gone = np.repeat(np.repeat(gone, step, axis=0), step, axis=1)[: y1 - y0, : x1 - x0]
    out = m8.copy()
    out[y0:y1, x0:x1][gone > 0] = 0
    return out


def object_pieces_numpy(
    m8: np.ndarray, depth: np.ndarray, logits: np.ndarray, jump_mm: float, max_logit: float, min_px: int
) -> np.ndarray | None:
    """The pixels of the window `m8` (0/255; `depth` uint16 or float32, `logits` the mask logits) to leave
    out (uint8 0/1), or None when no piece goes. The reference of `piece_kernels.object_pieces_kernel`."""
    box8, lg, d = np.ascontiguousarray(m8), np.ascontiguousarray(logits), np.ascontiguousarray(depth)
    low8 = cv2.bitwise_and(box8, cv2.compare(lg, max_logit, cv2.CMP_LT))
    if 2 * cv2.countNonZero(low8) < min_px:
        return None  # no piece can be mostly under the logit: skip the cuts (the same result, less work)
    # a pixel is cut when its 4-neighbourhood (inside the window) spans more than jump_mm of depth
    edge8 = cv2.compare(cv2.subtract(cv2.dilate(d, _CROSS), cv2.erode(d, _CROSS)), jump_mm, cv2.CMP_GT)
    inner = cv2.bitwise_and(box8, cv2.bitwise_not(edge8))
    n, labels = cv2.connectedComponents(inner, connectivity=4)
    if n <= 2:
        return None
    count = np.bincount(labels.ravel(), minlength=n)
    low = np.bincount(labels[low8 > 0], minlength=n)
    drop = (count >= min_px) & (2 * low > count)
    drop[0] = False  # the background and the cut pixels
    if not drop.any() or count[1:].sum() - count[drop].sum() < min_px:
        return None
    gone = drop[labels].view(np.uint8)
    # the cut pixels along a dropped piece's border go with it
    return cv2.bitwise_and(cv2.dilate(gone, _CROSS), edge8 // 255) | gone


def _load_kernels():
    """The compiled kernel, or None where numba does not import (the numpy reference runs)."""
    try:
        from . import piece_kernels
    except ImportError:
        return None
    return piece_kernels


_kernels = _load_kernels()


def compile_piece_kernels() -> bool:
    """Compile the kernel (or load it from numba's cache) for the arrays the learned path passes (strided
    uint16 views of the frame and float32 copies, float32 logits), so that a stream's first frame does not
    pay for it: the segmenter calls this when it is set up. False: numba is missing or cannot compile here,
    and the numpy reference runs (for every hand of this process)."""
    global _kernels
    if _kernels is None:
        return False
    announce_compile(_kernels, "held-object")
    m8 = np.full((10, 10), 255, np.uint8)
    lg = np.zeros((10, 10), np.float32)
    try:
        for depth in (np.full((10, 10), 400, np.uint16), np.full((10, 10), 400.0, np.float32)):
            for k in (1, 2):  # views of the frame (any layout) and contiguous arrays
                v = (m8[::k, ::k], depth[::k, ::k], lg[::k, ::k])
                _kernels.object_pieces_kernel(*v, 8.0, 0.0, 200, np.zeros(v[0].shape, np.uint8))
                c = tuple(np.ascontiguousarray(a) for a in v)
                _kernels.object_pieces_kernel(*c, 8.0, 0.0, 200, np.zeros(v[0].shape, np.uint8))
    except Exception as exc:  # noqa: BLE001 - numba cannot compile here: every hand takes the numpy reference
        not_compiled("held-object", exc)
        _kernels = None
        return False
    return True
