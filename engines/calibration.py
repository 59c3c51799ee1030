"""Synthetic normalized depth crops: parity inputs for export and INT8 calibration batches for TensorRT.

Why synthetic and not random noise: parity and INT8 ranges are only meaningful on inputs that look like
what the engine sees at run time -- a hand-shaped surface near 0 on a background of 1 in a cube
normalized to [-1, 1] (seed 003, eq. 4.6). Uniform noise would exercise activation ranges a real crop
never reaches and hide the ones it does. These crops are cheap stand-ins; when the synthetic hand
generator of `stream.synth` is installed the calibration set can be replaced by its crops
(`calibration_batches(..., crops=...)`).
"""

from __future__ import annotations

import numpy as np


def synthetic_crops(n: int, crop_size: int = 128, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(n, channels, S, S) float32 in [-1, 1]: a palm ellipse with 5 finger capsules at random pose,
    depth near 0 with a smooth surface and sensor-like noise, background = 1 (no measurement / behind cube).
    For channels > 1 the extra channels are a shaded grey "colour" of the same hand, normalized to [-1, 1]."""
    rng = np.random.default_rng(seed)
    s = int(crop_size)
    v, u = np.mgrid[0:s, 0:s].astype(np.float32) / (s - 1) * 2 - 1  # [-1, 1] both axes
    out = np.ones((n, channels, s, s), dtype=np.float32)
    for i in range(n):
        cx, cy = rng.normal(0, 0.08, 2)
        ang = rng.uniform(-np.pi, np.pi)
        scale = rng.uniform(1.3, 1.7)  # the hand fills most of the cube, as in a real crop
        ca, sa = np.cos(ang), np.sin(ang)
        # hand frame coordinates
        x = ((u - cx) * ca + (v - cy) * sa) / scale
        y = (-(u - cx) * sa + (v - cy) * ca) / scale
        palm = (x / 0.32) ** 2 + (y / 0.36) ** 2
        surface = np.full((s, s), np.inf, dtype=np.float32)
        inside = palm <= 1
        surface[inside] = (0.15 * palm[inside]).astype(np.float32)
        for k, fx in enumerate((-0.27, -0.1, 0.06, 0.22)):
            length = rng.uniform(0.25, 0.55) * (0.8 if k in (0, 3) else 1.0)
            bend = rng.uniform(-0.25, 0.4)  # positive = towards the camera
            t = np.clip((-y - 0.3) / length, 0, 1)
            d = np.hypot(
                x - fx, np.where(-y < 0.3, 0.3 + y, np.where(-y > 0.3 + length, -y - 0.3 - length, 0))
            )
            finger = d <= 0.07
            z = (-bend * t + 0.5 * (d / 0.07) ** 2 * 0.05).astype(np.float32)
            surface = np.where(finger, np.minimum(surface, z), surface)
        # thumb: a capsule sideways from the palm
        ta = rng.uniform(0.3, 1.1)
        tx, ty = x + 0.25, y - 0.05
        along = tx * -np.cos(ta) + ty * -np.sin(ta)
        across = -tx * -np.sin(ta) + ty * -np.cos(ta)
        thumb = (along > 0) & (along < 0.35) & (np.abs(across) < 0.075)
        surface = np.where(thumb, np.minimum(surface, -0.1 * along / 0.35), surface)
        hand = np.isfinite(surface)
        depth = np.ones((s, s), dtype=np.float32)
        depth[hand] = surface[hand] + rng.normal(0, 0.01, hand.sum()).astype(np.float32)
        dropout = rng.random((s, s)) < 0.02  # structured-light holes become background
        depth[dropout & hand] = 1.0
        out[i, 0] = np.clip(depth, -1, 1)
        for c in range(1, channels):
            shade = np.where(hand, 0.2 - 0.6 * surface.clip(-1, 1), -0.6) + rng.normal(0, 0.03, (s, s))
            out[i, c] = np.clip(shade * (1 - 0.1 * c), -1, 1)
    return out


def calibration_batches(
    input_shape: tuple[int, ...],
    num_images: int = 64,
    seed: int = 0,
    crops: np.ndarray | None = None,
) -> list[np.ndarray]:
    """INT8 calibration data as a list of contiguous float32 batches of exactly `input_shape` (B, C, S, S).

    `crops` (N, C, S, S) replaces the built-in synthetic crops (e.g. crops from the synthetic generator).
    The last partial batch is dropped: TensorRT's calibrator must hand over full batches.
    """
    if len(input_shape) != 4 or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise ValueError(f"calibration needs a static (B, C, S, S) input shape, got {input_shape}")
    b, c, h, w = input_shape
    if h != w:
        raise ValueError(f"calibration crops are square, got {h}x{w}")
    if crops is None:
        crops = synthetic_crops(num_images, h, c, seed)
    crops = np.asarray(crops, dtype=np.float32)
    if crops.shape[1:] != (c, h, w):
        raise ValueError(f"calibration crops have shape {crops.shape[1:]}, the engine takes {(c, h, w)}")
    n_full = len(crops) // b
    return [np.ascontiguousarray(crops[i * b : (i + 1) * b]) for i in range(n_full)]
