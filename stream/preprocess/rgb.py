"""The RGB crop of seed 003 §4.3.1 (eqs. 4.10-4.13): the depth cube's window cut out of the colour image,
multiplied by the hand mask, then normalized per channel with the training set's mean and std.

Channel order of the result is R, G, B (the thesis' equations); the input is OpenCV's BGR. Following the
thesis the mask is applied *before* normalization, so masked-out pixels read (0 - mean) / std.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError
from .cube import CubeCrop

__all__ = ["crop_rgb", "RGB_MEAN", "RGB_STD"]

# Placeholders in 0-255 units, R, G, B (ImageNet statistics): pass the statistics of your training set.
RGB_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
RGB_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)


def crop_rgb(
    color_bgr: np.ndarray,
    crop: CubeCrop,
    mask: np.ndarray | None = None,
    mean: tuple[float, float, float] = RGB_MEAN,
    std: tuple[float, float, float] = RGB_STD,
) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (3, size, size) float32 RGB, same window as `crop`, masked and normalized.

    `mask`: (H, W) bool hand mask in image space; None uses the depth crop itself (pixels with a depth
    inside the cube, crop.depth < 1) -- the thesis' "binary image from the segmented depth image".
    Parts of the window outside the image are black before normalization (padding, as for depth).
    """
    img = np.asarray(color_bgr)
    intr = crop.intrinsics
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[:2] != (intr.height, intr.width):
        raise InputError(f"colour image must be (H, W, 3) = {(intr.height, intr.width, 3)}, got {img.shape}")
    std_arr = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    if np.any(std_arr <= 0):
        raise InputError(f"per-channel std must be positive, got {std}")
    mean_arr = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    size = crop.size
    patch = cv2.warpAffine(
        img, crop.image_to_crop, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    if mask is None:
        keep = crop.depth < 1.0
    else:
        mk = np.asarray(mask)
        if mk.shape != img.shape[:2]:
            raise InputError(f"mask shape {mk.shape} does not match the colour image {img.shape[:2]}")
        keep = (
            cv2.warpAffine(
                mk.astype(np.uint8, copy=False), crop.image_to_crop, (size, size), flags=cv2.INTER_NEAREST
            )
            > 0
        )
    rgb = patch[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
    rgb *= keep[None]
    return (rgb - mean_arr) / std_arr
