"""Depth augmentation in the normalized cube frame (seed 003 §4.3.1's normalized crops), applied to a batch
with one affine resampling, so the labels move with the image and stay exact in that frame.

The crop is treated as the cube seen head-on: a crop pixel at (col, row) shows normalized (x', y') =
((col + 0.5) / S * 2 - 1, (row + 0.5) / S * 2 - 1) and its value is z'. Every transform is applied to the
image *and* to the joint targets with the same matrix:

- in-plane rotation by theta about the cube centre: (x', y') -> R (x', y'), z' unchanged;
- scale s (a bigger or smaller hand): (x', y', z') -> s (x', y', z'); the background (1) stays 1;
- centre translation (t_x, t_y, t_z) -- mimics the segmenter's centre error: (x', y', z') -> (x', y', z') - t;
- Gaussian noise on foreground depth only (labels unchanged).

Approximation (said so, on purpose): the cube's x/y extent is projected at the centre's depth, so a point
at depth z appears at x' com_z / z in the crop; for a hand +-60 mm deep at 500 mm that parallax is a few
percent, small next to the jitter amplitudes, and it is the standard practice for normalized crops
(DeepPrior / the seed). Where an exact centre jitter matters (the shipped model) the data pipeline re-cuts
crops at jittered centres instead (train/data.py: `jitter_mm`).

Resampling is nearest-neighbour (no depth interpolated across a silhouette); samples falling outside the
crop read as background (1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .canonical import rotation_matrices


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms; zero disables one. Translations are in normalized units
    (1.0 = half the cube, e.g. 125 mm for a 250 mm cube)."""

    rotation_deg: float = 180.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    translate_xy: float = 0.08
    translate_z: float = 0.08
    noise_std: float = 0.01
    probability: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def random_params(batch: int, cfg: AugmentConfig, generator: torch.Generator | None = None) -> dict:
    """Draw per-sample rotation (rad), scale and translation (B, 3); identity where not applied."""

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(batch, generator=generator)

    apply = (torch.rand(batch, generator=generator) < cfg.probability).float()
    theta = u(-1, 1) * math.radians(cfg.rotation_deg) * apply
    lo, hi = cfg.scale_range
    scale = 1 + (torch.exp(u(math.log(lo), math.log(hi))) - 1) * apply
    t = torch.stack([u(-1, 1) * cfg.translate_xy, u(-1, 1) * cfg.translate_xy, u(-1, 1) * cfg.translate_z], 1)
    return {"theta": theta, "scale": scale, "translate": t * apply[:, None]}


def apply_transform(
    depth: torch.Tensor,
    joints: torch.Tensor,
    theta: torch.Tensor,
    scale: torch.Tensor,
    translate: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """depth (B, 1, S, S) in [-1, 1], joints (B, J, 3) normalized -> transformed copies.

    Forward map on a point p = (x', y', z'):  p_new = s * Rz(theta) p - t   (rotation only acts on x, y).
    The image is resampled with the inverse map; depth values go through the same z map."""
    b = depth.shape[0]
    rot = rotation_matrices(theta)  # (B, 2, 2)
    sc = scale.view(b, 1, 1)
    t = translate
    # joints
    xy = torch.einsum("bij,bkj->bki", rot, joints[..., :2]) * sc - t[:, None, :2]
    z = joints[..., 2:] * sc - t[:, None, 2:]
    new_joints = torch.cat([xy, z], -1)
    # image: output pixel q -> input pixel p = R^T (q + t_xy) / s
    inv = rot.transpose(1, 2) / sc
    offset = torch.einsum("bij,bj->bi", inv, t[:, :2])
    theta_mat = torch.cat([inv, offset[:, :, None]], 2)
    grid = F.affine_grid(theta_mat.to(depth.dtype), list(depth.shape), align_corners=False)
    # sample (d - 1) so zero padding reads as background (1) after adding 1 back
    warped = F.grid_sample(depth - 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) + 1
    fg = warped < 1
    new_depth = torch.where(fg, warped * sc.view(b, 1, 1, 1) - t[:, 2].view(b, 1, 1, 1), warped)
    new_depth = torch.where(new_depth > 1, torch.ones_like(new_depth), new_depth.clamp_min(-1))
    return new_depth, new_joints


def augment_batch(
    depth: torch.Tensor, joints: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random transform + foreground noise on a batch; joints (B, J, 3) or flat (B, 3J)."""
    flat = joints.dim() == 2
    j = joints.view(joints.shape[0], -1, 3) if flat else joints
    p = {k: v.to(depth.device) for k, v in random_params(depth.shape[0], cfg, generator).items()}
    d, j = apply_transform(depth, j, p["theta"], p["scale"], p["translate"])
    if cfg.noise_std > 0:
        noise = torch.randn(d.shape, generator=generator) * cfg.noise_std
        d = torch.where(d < 1, (d + noise.to(d.device)).clamp(-1, 1), d)
    return d, (j.reshape(joints.shape[0], -1) if flat else j)
