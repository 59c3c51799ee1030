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


def moment_basis(size: int, like: torch.Tensor) -> torch.Tensor:
    """(S * S, 10) monomials of the pixel centres, x and y along the crop's columns and rows:
    1, x, y, xx, xy, yy, xxx, xxy, xyy, yyy. A silhouette's raw moments up to the third are then one matrix
    product (`principal_angle`)."""
    g = pixel_grid(size, like)
    x = g.view(1, size).expand(size, size).reshape(-1)
    y = g.view(size, 1).expand(size, size).reshape(-1)
    return torch.stack(
        [torch.ones_like(x), x, y, x * x, x * y, y * y, x * x * x, x * x * y, x * y * y, y * y * y], 1
    )


def principal_angle(depth: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) normalized crops -> (B,) angle (rad) of the foreground's major axis from +x, pointing
    towards the side with the positive third moment along it. A crop with no foreground gives 0.

    The central moments mu20, mu11, mu02 and the third moment along the axis are expanded from the raw
    moments of `moment_basis`, taken in one matrix product: the same quantities as summing the centred
    powers pixel by pixel (`principal_angle_reference`), in a dozen operations on (B, 10) instead of three
    dozen on (B, S, S). In the exported engine that is most of the cost of the canonicalization (0.24 of
    0.70 ms of the shipped pose engine on this CPU before; BENCHMARKS.md, "The pose engine's canonicalization
    on the CPU")."""
    b, _, s, _ = depth.shape
    m = (depth[:, 0] < 1).to(depth.dtype).reshape(b, s * s)
    sums = torch.matmul(m, moment_basis(s, depth))
    n0, sx, sy, sxx, sxy, syy, sxxx, sxxy, sxyy, syyy = sums.unbind(1)
    n = n0.clamp_min(1.0)
    mx, my = sx / n, sy / n
    mu20 = sxx - mx * sx
    mu02 = syy - my * sy
    mu11 = sxy - mx * sy
    theta = 0.5 * torch.atan2(2 * mu11, mu20 - mu02)
    c, sn = torch.cos(theta), torch.sin(theta)
    k = -(c * mx + sn * my)  # along = c x + sn y + k: the centred coordinate along the axis
    cc, ss = c * c, sn * sn
    skew = (
        c * cc * sxxx
        + 3 * cc * sn * sxxy
        + 3 * c * ss * sxyy
        + sn * ss * syyy
        + 3 * k * (cc * sxx + 2 * c * sn * sxy + ss * syy)
        + 3 * k * k * (c * sx + sn * sy)
        + k * k * k * n0
    )
    return torch.where(skew < 0, theta + math.pi, theta)


def principal_angle_reference(depth: torch.Tensor) -> torch.Tensor:
    """`principal_angle` summed pixel by pixel over the centred powers: the definition, kept for tests."""
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


def rotation_grid_basis(size: int, like: torch.Tensor) -> torch.Tensor:
    """(4, S * S * 2): a flattened (B, 2, 2) rotation times this is the (B, S, S, 2) sampling grid of
    `rotate_crops`, flattened -- the pixel centres q turned by rot (row-vector form q rot). One plain matrix
    product: a batched (1, S*S, 2) x (B, 2, 2) one runs several times slower in ONNX Runtime."""
    g = pixel_grid(size, like)
    q = torch.stack([g.view(1, size).expand(size, size), g.view(size, 1).expand(size, size)], -1).reshape(
        -1, 2
    )
    eye = torch.eye(2, dtype=like.dtype, device=like.device)
    # basis[k, j, i, j'] = q[i, k] * (j == j')
    return (q.t().reshape(2, 1, -1, 1) * eye.reshape(1, 2, 1, 2)).reshape(4, -1)


def rotate_crops(depth: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate crops about their centre by `rot` (B, 2, 2): output pixel q shows input p = rot^T q.
    Nearest-neighbour (no depth blended across a silhouette); outside reads as background (1). The sampling
    grid is built by hand (not affine_grid) so the ONNX export needs only GridSample."""
    b, _, s, _ = depth.shape
    grid = torch.matmul(rot.reshape(b, 4), rotation_grid_basis(s, depth)).reshape(b, s, s, 2)
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
        views, rot = self.canonical_views(x)
        y = self.net(views).view(views.shape[0], -1, 3)
        return self.from_views(y, rot, x.shape[-1])

    def view_shifts(self) -> tuple[tuple[int, int], ...]:
        """The shifted views predicted from: `test_shifts_px` in eval mode, none (the crop itself) in training."""
        return () if self.training else self.test_shifts_px

    def canonical_views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, S, S) crops -> the canonical crops of their views, view-major (K * B, 1, S, S) with K the
        number of views, and the (K * B, 2, 2) rotation each was turned by."""
        shifts = self.view_shifts()
        views = torch.cat([shift_crops(x, dx, dy) for dx, dy in shifts], 0) if shifts else x
        rot = rotation_matrices(math.pi / 2 - principal_angle(views))
        return rotate_crops(views, rot), rot

    def from_views(self, y: torch.Tensor, rot: torch.Tensor, size: int) -> torch.Tensor:
        """The net's (K * B, J, 3) canonical joints -> (B, 3J): (x, y) rotated back (rot^T), each view moved
        back by its shift (one pixel = 2 / `size`), the views averaged (`unshift_mean`)."""
        xy = torch.matmul(y[..., :2], rot)  # rot^T applied to each joint's (x, y)
        out = torch.cat([xy, y[..., 2:]], -1)
        shifts = self.view_shifts()
        if not shifts:
            return out.reshape(out.shape[0], -1)
        return unshift_mean(out.view(len(shifts), -1, out.shape[1], 3), shifts, size)


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
    b, k = x.shape[0], len(shifts)
    y = predict(torch.cat([shift_crops(x, dx, dy) for dx, dy in shifts], 0)).view(k, b, -1, 3)
    return unshift_mean(y, shifts, x.shape[-1])


def unshift_mean(y: torch.Tensor, shifts: tuple[tuple[int, int], ...], size: int) -> torch.Tensor:
    """(K, B, J, 3) normalized joints predicted from K views shifted by `shifts` -> (B, 3J): each moved back
    by its shift (one pixel = 2 / `size`), the views averaged."""
    k = len(shifts)
    off = torch.tensor([[dx, dy, 0.0] for dx, dy in shifts], dtype=y.dtype, device=y.device) * (2.0 / size)
    return (y - off.view(k, 1, 1, 3)).mean(0).reshape(y.shape[1], -1)
