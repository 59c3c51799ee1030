"""Shared librealsense helpers: import with a clear message, intrinsics, frame -> numpy conversion."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError, require
from ..frames import CameraIntrinsics


def rs():
    """pyrealsense2, or a one-line error saying how to install it."""
    return require("pyrealsense2", "pip install 'handstream[realsense]' (and apt-get install libusb-1.0-0)")


def intrinsics_from_rs(ri, depth_unit_mm: float = 1.0, name: str = "") -> CameraIntrinsics:
    """rs.intrinsics -> CameraIntrinsics. librealsense's ppx/ppy are pixel-centre coordinates, as ours."""
    try:
        return CameraIntrinsics(
            fx=_f32(ri.fx),
            fy=_f32(ri.fy),
            cx=_f32(ri.ppx),
            cy=_f32(ri.ppy),
            width=int(ri.width),
            height=int(ri.height),
            depth_unit_mm=_f32(depth_unit_mm),
            name=name,
        )
    except InputError as exc:
        raise InputError(f"the recording/camera reports unusable intrinsics: {exc}") from None


def _f32(x: float) -> float:
    """librealsense keeps these as float32: print-round to float32's 7 digits (191.6999969 -> 191.7)."""
    return float(f"{float(x):.7g}")


def depth_to_mm(raw: np.ndarray, depth_unit_mm: float) -> np.ndarray:
    """Raw z16 counts -> mm (uint16 when the unit is 1 mm, else float32), always a private copy."""
    if abs(depth_unit_mm - 1.0) < 1e-6:
        return np.array(raw, dtype=np.uint16, copy=True)
    return raw.astype(np.float32) * np.float32(depth_unit_mm)


def color_to_bgr(arr: np.ndarray, fmt_name: str) -> np.ndarray | None:
    """A colour frame's pixels in librealsense format `fmt_name` -> (H, W, 3) uint8 BGR copy, or None for a
    format we do not convert (the frame then carries depth only)."""
    f = fmt_name.lower()
    if f.endswith("bgr8"):
        return np.array(arr, copy=True)
    if f.endswith("rgb8"):
        return cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    if f.endswith("bgra8"):
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2BGR)
    if f.endswith("rgba8"):
        return cv2.cvtColor(arr, cv2.COLOR_RGBA2BGR)
    if f.endswith("yuyv"):
        return cv2.cvtColor(arr.reshape(arr.shape[0], -1, 2), cv2.COLOR_YUV2BGR_YUYV)
    if f.endswith("y8"):
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    return None


def align_color_to_depth(
    depth_mm: np.ndarray,
    color_bgr: np.ndarray,
    d_intr: CameraIntrinsics,
    c_intr: CameraIntrinsics,
    rot: np.ndarray,
    trans_mm: np.ndarray,
) -> np.ndarray:
    """Colour resampled onto the depth image (what rs.align(rs.stream.depth) does): each depth pixel is
    lifted to 3-D, moved into the colour camera (rot, trans_mm: depth -> colour extrinsics), projected and
    sampled (nearest). Pixels without depth or outside the colour image are black. Used for recordings,
    where frames come one by one (rs.align needs a frameset); distortion is ignored (D400 depth has none,
    its colour model is near zero)."""
    h, w = depth_mm.shape
    z = depth_mm.astype(np.float32)
    u = np.arange(w, dtype=np.float32)[None, :]
    v = np.arange(h, dtype=np.float32)[:, None]
    x = (u - d_intr.cx) / d_intr.fx * z
    y = (v - d_intr.cy) / d_intr.fy * z
    r = rot.astype(np.float32)
    t = trans_mm.astype(np.float32)
    xc = r[0, 0] * x + r[0, 1] * y + r[0, 2] * z + t[0]
    yc = r[1, 0] * x + r[1, 1] * y + r[1, 2] * z + t[1]
    zc = r[2, 0] * x + r[2, 1] * y + r[2, 2] * z + t[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.where(zc > 0, c_intr.fx * xc / zc + c_intr.cx, -1).astype(np.float32)
        mv = np.where(zc > 0, c_intr.fy * yc / zc + c_intr.cy, -1).astype(np.float32)
    out = cv2.remap(color_bgr, mu, mv, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out[depth_mm == 0] = 0
    return out
