"""In-plane canonicalization of a normalized depth crop: rotate the hand so its principal axis points the same
way before the network sees it, and rotate the prediction back.

Why: the synthetic (and real) hands come at any in-plane angle -- the forearm enters from any side -- so a
plain CNN must learn every pose at every rotation. Removing the rotation the image itself reveals leaves the
net only the out-of-plane variation. This is the oriented-bounding-box normalization of the depth-hand-pose
literature (Ge et al., CVPR 2016 / Hand PointNet, CVPR 2018) done in 2-D on the crop. It is an addition to
seed 003, whose nets regress from the unrotated crop; on our data it lowers the validation error ~12 % at equal
CPU time (compact_s, 4 min: 29.9 -> 26.4 mm; runs/diag notes in BENCHMARKS.md).

The angle comes from the crop alone (image moments of the foreground, depth < 1): the major axis of the
silhouette, with its 180-degree ambiguity settled by the sign of the third moment along it (the fingers and
the cut wrist are not symmetric). Everything is plain tensor arithmetic + grid_sample, so the wrapper exports
to ONNX (opset >= 16 for GridSample) and the shipped engine carries it: the runtime does not change.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def pixel_grid(size: int, like: torch.Tensor) -> torch.Tensor:
    """Normalized centres of `size` pixels (or cells) along one axis, (-1, 1) like the cube frame
    (augment.py), with `like`'s dtype and device -- a CPU grid beside a CUDA batch would fail on a GPU."""
    return (torch.arange(size, dtype=like.dtype, device=like.device) + 0.5) / size * 2 - 1


def principal_angle(depth: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) normalized crops -> (B,) angle (rad) of the foreground's major axis from +x, pointing
    towards the side with the positive third moment. A crop with no foreground gives 0."""
    b, _, s, _ = depth.shape
    m = (depth[:, 0] < 1).to(depth.dtype)
    g = pixel_grid(s, depth)
    gx, gy = g.view(1, 1, s), g.view(1, s, 1)
    n = m.sum((1, 2)).clamp_min(1.0)
    dx = gx - ((m * gx).sum((1, 2)) / n).view(b, 1, 1)
    dy = gy - ((m * gy).sum((1, 2)) / n).view(b, 1, 1)
    mu20 = (m * dx * dx).sum((1, 2))
    mu02 = (m * dy * dy).sum((1, 2))
    mu11 = (m * dx * dy).sum((1, 2))
    theta = 0.5 * torch.atan2(2 * mu11, mu20 - mu02)
    along = dx * torch.cos(theta).view(b, 1, 1) + dy * torch.sin(theta).view(b, 1, 1)
    skew = (m * along * along * along).sum((1, 2))
    return torch.where(skew < 0, theta + math.pi, theta)


def rotation_matrices(angle: torch.Tensor) -> torch.Tensor:
    """(B,) rad -> (B, 2, 2) counter-clockwise rotations in the (x, y) crop frame."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def rotate_crops(depth: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate crops about their centre by `rot` (B, 2, 2): output pixel q shows input p = rot^T q.
    Nearest-neighbour (no depth blended across a silhouette); outside reads as background (1). The sampling
    grid is built by hand (not affine_grid) so the ONNX export needs only GridSample."""
    b, _, s, _ = depth.shape
    g = pixel_grid(s, depth)
    q = torch.stack([g.view(1, s).expand(s, s), g.view(s, 1).expand(s, s)], -1).reshape(1, s * s, 2)
    p = torch.matmul(q, rot)  # row-vector form of rot^T q
    grid = p.reshape(b, s, s, 2)
    return F.grid_sample(depth - 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) + 1


class InPlaneCanonical(nn.Module):
    """Wrap a pose net (crop -> (B, 3J) normalized joints): canonicalize the crop's in-plane rotation so the
    principal axis points along +y, predict, rotate (x, y) of every joint back. z is untouched.

    `test_shifts_px` (eval mode only): also predict from copies of the crop shifted by these (dx, dy) pixels
    (background shifted in), move each prediction back by its shift and average them. Why: the strided
    body is not shift-invariant at one-pixel scale (aliasing), so a prediction wobbles with where the hand
    falls on the pixel grid; averaging a few shifted views cancels much of that. Measured on the
    validation chunk with pose_dense_v2: two diagonal one-pixel views 12.43 -> 12.11 mm, four 11.97. The
    views run as one batch inside the exported engine, so the runtime does not change; training (train mode) sees single
    crops, as before."""

    def __init__(self, net: nn.Module, test_shifts_px: tuple[tuple[int, int], ...] = ()):
        super().__init__()
        self.net = net
        self.test_shifts_px = tuple((int(dx), int(dy)) for dx, dy in test_shifts_px)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.test_shifts_px:
            return self._predict(x)
        return shift_average(self._predict, x, self.test_shifts_px)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        rot = rotation_matrices(math.pi / 2 - principal_angle(x))
        y = self.net(rotate_crops(x, rot)).view(b, -1, 3)
        xy = torch.matmul(y[..., :2], rot)  # rot^T applied to each joint's (x, y)
        return torch.cat([xy, y[..., 2:]], -1).reshape(b, -1)


def shift_crops(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """(B, 1, S, S) crops moved by (dx, dy) pixels (+x right, +y down), background (1) shifted in."""
    s = x.shape[-1]
    p = max(abs(dx), abs(dy))
    if p == 0:
        return x
    xp = F.pad(x, (p, p, p, p), value=1.0)
    return xp[..., p - dy : p - dy + s, p - dx : p - dx + s]


def shift_average(predict, x: torch.Tensor, shifts: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """Mean of `predict` (crops -> (B, 3J) normalized joints) over shifted copies of `x`, each prediction
    moved back by its shift (one pixel = 2 / S in the normalized frame). All views run as one batch."""
    b, s, k = x.shape[0], x.shape[-1], len(shifts)
    y = predict(torch.cat([shift_crops(x, dx, dy) for dx, dy in shifts], 0)).view(k, b, -1, 3)
    off = torch.tensor([[dx, dy, 0.0] for dx, dy in shifts], dtype=y.dtype, device=y.device) * (2.0 / s)
    return (y - off.view(k, 1, 1, 3)).mean(0).reshape(b, -1)
