"""Hand mask from a (predicted) depth map, seed 000 §4: resize, median pool with kernel 7, threshold 0.5.

Used by the monocular RGB path, whose depth decoder predicts a depth map in [0, 1] (EgoGesture convention:
0 = background, larger = hand). We threshold *before* the median filter: for an odd window, median(x) > t
exactly when more than half of the window is > t, i.e. when the median of the binary image (x > t) is 1.
The two orders give identical masks, and OpenCV's median filter only takes kernels above 5 on uint8 images.
Borders replicate the edge pixel (OpenCV's medianBlur), the seed does not say how it pads.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError

__all__ = ["mask_from_depth"]


def mask_from_depth(
    depth_pred: np.ndarray,
    size: int | tuple[int, int],
    kernel: int = 7,
    threshold: float = 0.5,
) -> np.ndarray:
    """(H, W) depth map in [0, 1] (uint8 is read as /255) -> (size, size) or (height, width) bool mask."""
    d = np.asarray(depth_pred)
    if d.ndim != 2 or d.size == 0:
        raise InputError(f"depth map must be a non-empty 2-D array, got shape {d.shape}")
    if kernel < 1 or kernel % 2 == 0:
        raise InputError(f"median kernel must be an odd positive integer, got {kernel}")
    out_h, out_w = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if out_h < 1 or out_w < 1:
        raise InputError(f"mask size must be positive, got {size!r}")
    if d.dtype == np.uint8:
        d = d.astype(np.float32) / 255.0
    else:
        d = np.nan_to_num(d.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    if d.shape != (out_h, out_w):
        d = cv2.resize(d, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    binary = (d > threshold).astype(np.uint8) * 255
    if kernel > 1:
        binary = cv2.medianBlur(binary, kernel)
    return binary > 0
