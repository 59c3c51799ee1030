"""Vectorized pinhole geometry (seed 003, eqs. 4.3-4.5): pixel+depth <-> camera-frame millimetres.

    u = fx * x / z + cx,   v = fy * y / z + cy,   d = z

Everything takes arrays of any leading shape with a last axis of 3 and returns float64 arrays of
the same shape, so one call converts a joint, a skeleton or a batch of skeletons.
"""

from __future__ import annotations

import numpy as np

from .frames import CameraIntrinsics


def uvd_to_xyz(uvd: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """(..., 3) pixels (u, v) + depth d in mm -> (..., 3) camera coordinates (x, y, z) in mm."""
    uvd = np.asarray(uvd, dtype=np.float64)
    d = uvd[..., 2]
    out = np.empty_like(uvd)
    out[..., 0] = (uvd[..., 0] - intr.cx) * d / intr.fx
    out[..., 1] = (uvd[..., 1] - intr.cy) * d / intr.fy
    out[..., 2] = d
    return out


def xyz_to_uvd(xyz: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """(..., 3) camera coordinates in mm -> (..., 3) pixels + depth. Points at z <= 0 give NaN pixels."""
    xyz = np.asarray(xyz, dtype=np.float64)
    z = xyz[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(z > 0, z, np.nan)
        out = np.empty_like(xyz)
        out[..., 0] = intr.fx * xyz[..., 0] / safe + intr.cx
        out[..., 1] = intr.fy * xyz[..., 1] / safe + intr.cy
    out[..., 2] = z
    return out


def pixel_grid(intr: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) pixel coordinate images of shape (H, W), float32."""
    u = np.arange(intr.width, dtype=np.float32)[None, :].repeat(intr.height, 0)
    v = np.arange(intr.height, dtype=np.float32)[:, None].repeat(intr.width, 1)
    return u, v


def depth_to_xyz_image(depth_mm: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """(H, W) depth in mm -> (H, W, 3) float32 camera coordinates; missing depth (0) gives (0, 0, 0)."""
    d = np.asarray(depth_mm, dtype=np.float32)
    u, v = pixel_grid(intr)
    x = (u - np.float32(intr.cx)) * d / np.float32(intr.fx)
    y = (v - np.float32(intr.cy)) * d / np.float32(intr.fy)
    return np.stack([x, y, d], axis=-1)


def depth_to_points(
    depth_mm: np.ndarray, intr: CameraIntrinsics, mask: np.ndarray | None = None
) -> np.ndarray:
    """Point cloud: (N, 3) float32 camera coordinates in mm of the valid (d > 0) pixels, within `mask`."""
    d = np.asarray(depth_mm)
    valid = d > 0
    if mask is not None:
        valid &= mask.astype(bool)
    vs, us = np.nonzero(valid)
    dv = d[vs, us].astype(np.float32)
    x = (us.astype(np.float32) - np.float32(intr.cx)) * dv / np.float32(intr.fx)
    y = (vs.astype(np.float32) - np.float32(intr.cy)) * dv / np.float32(intr.fy)
    return np.stack([x, y, dv], axis=-1)


def points_to_depth(points_mm: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """Render a point cloud back to an (H, W) float32 depth image (nearest point wins, 0 = empty)."""
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    pts = pts[pts[:, 2] > 0]
    uvd = xyz_to_uvd(pts, intr)
    u = np.rint(uvd[:, 0]).astype(np.int64)
    v = np.rint(uvd[:, 1]).astype(np.int64)
    keep = (u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)
    u, v, z = u[keep], v[keep], uvd[keep, 2]
    depth = np.full(intr.width * intr.height, np.inf)
    np.minimum.at(depth, v * intr.width + u, z)
    depth[~np.isfinite(depth)] = 0
    return depth.reshape(intr.height, intr.width).astype(np.float32)
