"""A depth-sensor model for an active stereo camera (RealSense D400-like), applied to noise-free z.

What a real D435 frame shows and this reproduces:
- depth from disparity d = f*B/z, so noise and quantization grow with z^2 (disparity noise in pixels,
  spatially correlated, then rounded to sub-pixel steps);
- the stereo shadow: background just left of a near object is invisible to the right imager -> 0;
- missing pixels at steep (grazing) surfaces and along depth edges, speckle holes, a minimum and a
  maximum range.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..frames import CameraIntrinsics


@dataclass(frozen=True)
class SensorModel:
    """Parameters of the depth sensor model (defaults: a D435 at its default preset)."""

    baseline_mm: float = 50.0
    disparity_noise_px: float = 0.06  # 1-sigma sub-pixel disparity noise (at 640 px width)
    subpixel_step_px: float = 1.0 / 16.0  # disparity quantization (at 640 px width)
    min_range_mm: float = 160.0
    max_range_mm: float = 4000.0
    grazing_cos: float = 0.22  # |cos| between ray and normal below which pixels start to vanish
    edge_drop_prob: float = 0.35
    speckle_prob: float = 0.0015
    enabled: bool = True


def apply_sensor(
    z_mm: np.ndarray,
    cos_incidence: np.ndarray,
    intr: CameraIntrinsics,
    rng: np.random.Generator,
    model: SensorModel = SensorModel(),
) -> np.ndarray:
    """Noise-free z (H, W) float (inf = no surface) and |cos| of the incidence angle -> uint16 depth mm."""
    h, w = z_mm.shape
    valid = np.isfinite(z_mm) & (z_mm >= model.min_range_mm) & (z_mm <= model.max_range_mm)
    if not model.enabled:
        return np.where(valid, np.rint(z_mm), 0).astype(np.uint16)
    # disparity in pixels of THIS resolution; noise and steps are specified at 640 px and scale with it
    scale = w / 640.0
    fb = np.float32(intr.fx * model.baseline_mm)
    disp = np.where(valid, fb / np.where(valid, z_mm, 1.0).astype(np.float32), np.float32(0.0))

    # stereo shadow: pixel u is seen by the right imager at u - d(u); it is hidden when some pixel to
    # its right lands at or left of that spot (a nearer surface)
    u = np.arange(w, dtype=np.float32)[None, :]
    xr = np.where(valid, u - disp, np.inf)
    right_min = np.minimum.accumulate(xr[:, ::-1], axis=1)[:, ::-1]
    shadow = np.zeros_like(valid)
    shadow[:, :-1] = right_min[:, 1:] < xr[:, :-1] - 0.5
    drop = shadow

    # one uniform field serves the three random drop-outs (they use disjoint ranges of it)
    r = rng.random((h, w), dtype=np.float32)
    # grazing surfaces: fade out below grazing_cos
    p_graze = np.clip((model.grazing_cos - cos_incidence) / (0.6 * model.grazing_cos), 0.0, 1.0)
    drop |= r < p_graze

    # depth edges: pixels next to a jump lose their measurement with some probability
    zf = np.where(valid, z_mm, np.float32(0.0)).astype(np.float32)
    k = np.ones((3, 3), np.uint8)
    jump = cv2.dilate(zf, k) - cv2.erode(np.where(valid, zf, 1e6).astype(np.float32), k)
    edge = jump > (8.0 + 0.02 * zf)
    drop |= edge & (r < model.edge_drop_prob)

    # speckle: a few small holes
    seeds = (r > 1.0 - model.speckle_prob).astype(np.uint8)
    drop |= cv2.dilate(seeds, k).astype(bool)

    # correlated disparity noise (coarse field upsampled + white), then sub-pixel quantization
    sig = model.disparity_noise_px * scale
    coarse = rng.standard_normal((max(h // 8, 2), max(w // 8, 2)), dtype=np.float32) * np.float32(sig)
    noise = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    noise += rng.standard_normal((h, w), dtype=np.float32) * np.float32(sig * 0.7)
    step = model.subpixel_step_px * scale
    step = np.float32(step)
    d = np.round((disp + noise) / step) * step
    ok = valid & ~drop & (d > 0)
    z = np.where(ok, fb / np.where(ok, d, np.float32(1.0)), np.float32(0.0))
    return np.clip(np.rint(z), 0, 65535).astype(np.uint16)
