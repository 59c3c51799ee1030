"""Cube normalization (seed 003 §4.3.1, eqs. 4.3-4.9): a fixed metric cube around the hand, cut out of the
depth image, resized to `size` x `size` and normalized to [-1, 1].

Deliberate deviation from the thesis (eqs. 4.6 and 4.9): the thesis subtracts I(cm), the depth *read at* the
centre-of-mass pixel; we centre the cube on the 3-D centre of mass `com_xyz_mm` and use its z for depth and
joints alike:

    x' = (x - com_x) / (cube/2),   y' = (y - com_y) / (cube/2),   z' = (z - com_z) / (cube/2)

Reading a single pixel is fragile (a sensor hole or a finger gap at the centre gives 0 or the background),
and one centre for all three axes makes `denormalize_joints` the exact inverse of `normalize_joints`.

The crop window is the cube's x/y extent at depth com_z projected through the intrinsics (eqs. 4.3-4.4).
Windows that leave the image are padded with "missing" (normalized to 1), never shifted, so the cube stays
centred on the hand and the image <-> crop transform stays a pure scale + offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError
from ..frames import CameraIntrinsics
from ..geometry import uvd_to_xyz, xyz_to_uvd

__all__ = ["CubeCrop", "crop_cube", "normalize_joints", "denormalize_joints", "cube_window"]


@dataclass(frozen=True, eq=False)
class CubeCrop:
    """A normalized depth crop and everything needed to map points between image, crop and camera space.

    `depth`: (size, size) float32 in [-1, 1]; 1 = background, behind the cube, outside the mask or missing.
    `image_to_crop`: 2x3 affine (float64) taking image pixel coordinates (u, v) to crop pixel coordinates
    (OpenCV convention: integer coordinates are pixel centres). It is a pure scale + offset.
    `window_uv`: (u_left, v_top, u_right, v_bottom) the cube's projected window in image pixel-centre
    coordinates (edges of the crop), possibly outside the image.
    """

    depth: np.ndarray
    com_xyz_mm: np.ndarray
    cube_mm: float
    size: int
    intrinsics: CameraIntrinsics
    image_to_crop: np.ndarray
    window_uv: tuple[float, float, float, float]

    @property
    def half_mm(self) -> float:
        return self.cube_mm / 2.0

    @property
    def com_uvd(self) -> np.ndarray:
        """The centre of mass in image pixels + depth mm."""
        return xyz_to_uvd(self.com_xyz_mm, self.intrinsics)

    @property
    def crop_to_image(self) -> np.ndarray:
        """2x3 affine, the inverse of `image_to_crop`."""
        return cv2.invertAffineTransform(self.image_to_crop)

    def uvd_to_crop(self, uvd: np.ndarray) -> np.ndarray:
        """(..., 3) image (u, v, d mm) -> (..., 3) crop (column, row, normalized depth (d - com_z)/(cube/2))."""
        uvd = np.asarray(uvd, dtype=np.float64)
        a = self.image_to_crop
        out = np.empty_like(uvd)
        out[..., 0] = a[0, 0] * uvd[..., 0] + a[0, 2]
        out[..., 1] = a[1, 1] * uvd[..., 1] + a[1, 2]
        out[..., 2] = (uvd[..., 2] - self.com_xyz_mm[2]) / self.half_mm
        return out

    def crop_to_uvd(self, crop_uvd: np.ndarray) -> np.ndarray:
        """Exact inverse of `uvd_to_crop`: (..., 3) crop (column, row, normalized depth) -> image (u, v, d mm)."""
        c = np.asarray(crop_uvd, dtype=np.float64)
        a = self.image_to_crop
        out = np.empty_like(c)
        out[..., 0] = (c[..., 0] - a[0, 2]) / a[0, 0]
        out[..., 1] = (c[..., 1] - a[1, 2]) / a[1, 1]
        out[..., 2] = c[..., 2] * self.half_mm + self.com_xyz_mm[2]
        return out

    def xyz_to_crop(self, xyz_mm: np.ndarray) -> np.ndarray:
        """(..., 3) camera mm -> (..., 3) crop (column, row, normalized depth): to draw joints in the crop."""
        return self.uvd_to_crop(xyz_to_uvd(xyz_mm, self.intrinsics))

    def crop_to_xyz(self, crop_uvd: np.ndarray) -> np.ndarray:
        """(..., 3) crop (column, row, normalized depth) -> (..., 3) camera mm."""
        return uvd_to_xyz(self.crop_to_uvd(crop_uvd), self.intrinsics)


def cube_window(
    com_xyz_mm: np.ndarray, intr: CameraIntrinsics, cube_mm: float
) -> tuple[float, float, float, float]:
    """The cube's x/y extent at depth com_z projected into the image: (u_left, v_top, u_right, v_bottom)."""
    x, y, z = (float(c) for c in com_xyz_mm)
    h = cube_mm / 2.0
    return (
        intr.fx * (x - h) / z + intr.cx,
        intr.fy * (y - h) / z + intr.cy,
        intr.fx * (x + h) / z + intr.cx,
        intr.fy * (y + h) / z + intr.cy,
    )


def _check_com(com_xyz_mm, cube_mm: float, size: int) -> np.ndarray:
    com = np.asarray(com_xyz_mm, dtype=np.float64).reshape(-1)
    if com.shape != (3,) or not np.all(np.isfinite(com)):
        raise InputError(f"centre of mass must be 3 finite numbers (x, y, z mm), got {com_xyz_mm!r}")
    if com[2] <= 0:
        raise InputError(f"centre of mass must lie in front of the camera (z > 0), got z={com[2]:.1f} mm")
    if not (np.isfinite(cube_mm) and cube_mm > 0):
        raise InputError(f"cube size must be a positive number of mm, got {cube_mm!r}")
    if int(size) != size or size < 2:
        raise InputError(f"crop size must be an integer >= 2, got {size!r}")
    return com


def crop_cube(
    depth_mm: np.ndarray,
    intr: CameraIntrinsics,
    com_xyz_mm: np.ndarray,
    cube_mm: float = 250.0,
    size: int = 128,
    mask: np.ndarray | None = None,
) -> CubeCrop:
    """Cut the cube around `com_xyz_mm` out of `depth_mm` and normalize it (see the module docstring).

    Pixels that are missing (0, negative, NaN, inf), outside `mask`, or behind the cube's back face become 1;
    pixels in front of the cube's front face are clamped to -1 (they are still "something close", as in
    DeepPrior). Nearest-neighbour resampling: interpolating depth across a silhouette would invent points.
    """
    com = _check_com(com_xyz_mm, cube_mm, size)
    size = int(size)
    depth = np.asarray(depth_mm)
    if depth.ndim != 2 or depth.shape != (intr.height, intr.width):
        raise InputError(
            f"depth shape {depth.shape} does not match the intrinsics {(intr.height, intr.width)}"
        )
    u0, v0, u1, v1 = cube_window(com, intr, cube_mm)
    sx, sy = size / (u1 - u0), size / (v1 - v0)
    # crop edge -0.5 <-> window edge u0, crop edge size-0.5 <-> u1 (pixel centres at integers on both sides)
    m = np.array([[sx, 0.0, -sx * u0 - 0.5], [0.0, sy, -sy * v0 - 0.5]], dtype=np.float64)
    if depth.dtype not in (np.uint16, np.float32):
        depth = depth.astype(np.float32)
    d = cv2.warpAffine(
        depth, m, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    ).astype(np.float32, copy=False)
    half = np.float32(cube_mm / 2.0)
    zc = np.float32(com[2])
    out = (d - zc) / half
    # NaN compares False, so "not (d > 0)" also catches NaN; inf lands behind the cube
    bad = ~(d > 0) | (out > 1)
    if mask is not None:
        mk = np.asarray(mask)
        if mk.shape != depth.shape:
            raise InputError(f"mask shape {mk.shape} does not match depth shape {depth.shape}")
        # a bool mask is read as uint8 in place (no full-frame copy per frame)
        mk8 = cv2.warpAffine(
            mk.view(np.uint8) if mk.dtype == bool else mk.astype(np.uint8, copy=False),
            m,
            (size, size),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        bad |= mk8 == 0
    np.maximum(out, -1.0, out=out)
    out[bad] = 1.0
    return CubeCrop(
        depth=out,
        com_xyz_mm=com,
        cube_mm=float(cube_mm),
        size=size,
        intrinsics=intr,
        image_to_crop=m,
        window_uv=(u0, v0, u1, v1),
    )


def normalize_joints(joints_xyz_mm: np.ndarray, crop: CubeCrop) -> np.ndarray:
    """Eqs. 4.7-4.9 with the 3-D centre (see module docstring): (x - com) / (cube/2), float32."""
    j = np.asarray(joints_xyz_mm, dtype=np.float64)
    if j.shape[-1:] != (3,):
        raise InputError(f"joints must have a last axis of 3 (x, y, z mm), got shape {j.shape}")
    return ((j - crop.com_xyz_mm) / crop.half_mm).astype(np.float32)


def denormalize_joints(norm: np.ndarray, crop: CubeCrop) -> np.ndarray:
    """Exact inverse of `normalize_joints`: normalized (..., 3) -> camera xyz in mm, float64."""
    n = np.asarray(norm, dtype=np.float64)
    if n.shape[-1:] != (3,):
        raise InputError(f"normalized joints must have a last axis of 3, got shape {n.shape}")
    return n * crop.half_mm + crop.com_xyz_mm
