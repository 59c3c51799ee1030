"""Reading and writing single depth frames: NYU PNGs, plain 16-bit PNGs with a depth unit, and npz.

- `nyu`: 8-bit 3-channel PNG, depth in mm = (G << 8) | B (OpenCV's BGR order: channel 1 high, channel 0 low
  byte), as in the NYU Hand Pose dataset.
- `png16`: single-channel 16-bit PNG of raw device counts; mm = count * depth_unit_mm (1.0 on D400, 0.125 on
  SR300/SR305).
- `npz`: numpy archive with an array `depth_mm` (or a single array) in mm, uint16 or float.

Everything comes back as (H, W) millimetres, uint16 when the values are whole mm, else float32 (the frame
contract, stream/frames.py). Missing, unreadable (permission) or corrupt files raise a one-line InputError that says which.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .outputs import captured_fd2, write_png, writing_failed

__all__ = ["FORMATS", "guess_format", "read_depth", "write_depth"]

FORMATS = ("nyu", "png16", "npz")


def guess_format(path: str | Path) -> str:
    """npz by extension; a PNG is `nyu` when it has 3 channels of 8 bits, `png16` when it has one of 16."""
    p = Path(path)
    if p.suffix.lower() == ".npz":
        return "npz"
    if p.suffix.lower() != ".png":
        raise InputError(
            f"{p}: cannot tell the depth format from the extension; pass --format {'|'.join(FORMATS)}"
        )
    img = _imread(p)
    if img.ndim == 3 and img.dtype == np.uint8:
        return "nyu"
    if img.ndim == 2 and img.dtype == np.uint16:
        return "png16"
    raise InputError(
        f"{p}: PNG is {img.dtype} with shape {img.shape}; expected NYU (8-bit BGR) or 16-bit gray"
    )


def _imread(p: Path) -> np.ndarray:
    """Decode an image; an unreadable file (permission) and a corrupt one are told apart. libpng prints
    its complaints about a corrupt PNG straight to fd 2: they are held back while decoding (~60 us per
    file against ~6 ms of decoding at 640x480) and shown again only when the image decodes after all."""
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    data = _read_bytes(p)
    if not data:
        raise InputError(f"{p}: empty file, not an image")
    with captured_fd2() as native:
        try:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error:  # OpenCV asserts on some malformed buffers instead of returning None
            img = None
    if img is None:
        raise InputError(f"{p}: not a readable image (corrupt or not a PNG)")
    if native:
        print("\n".join(native), file=sys.stderr)
    return img


def _read_bytes(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror}") from None


def read_depth(path: str | Path, fmt: str | None = None, depth_unit_mm: float = 1.0) -> np.ndarray:
    """Read one depth frame as (H, W) millimetres (uint16, or float32 when the unit makes fractions)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if not (np.isfinite(depth_unit_mm) and depth_unit_mm > 0):
        raise InputError(f"depth unit must be a positive number of mm, got {depth_unit_mm!r}")
    fmt = fmt or guess_format(p)
    if fmt == "nyu":
        img = _imread(p)
        if img.ndim != 3 or img.shape[2] < 3 or img.dtype != np.uint8:
            raise InputError(f"{p}: NYU depth must be an 8-bit 3-channel PNG, got {img.dtype} {img.shape}")
        depth = (img[:, :, 1].astype(np.uint16) << 8) | img[:, :, 0]
        return _apply_unit(depth, depth_unit_mm)
    if fmt == "png16":
        img = _imread(p)
        if img.ndim != 2 or img.dtype != np.uint16:
            raise InputError(f"{p}: expected a single-channel 16-bit PNG, got {img.dtype} {img.shape}")
        return _apply_unit(img, depth_unit_mm)
    if fmt == "npz":
        return _read_npz(p, depth_unit_mm)
    raise InputError(f"unknown depth format {fmt!r}; choose from {', '.join(FORMATS)}")


def _apply_unit(raw: np.ndarray, unit: float) -> np.ndarray:
    if unit == 1.0:
        return raw
    return (raw.astype(np.float32) * np.float32(unit)).astype(np.float32)


def _read_npz(p: Path, unit: float) -> np.ndarray:
    data = _read_bytes(p)  # a permission error is not a corrupt file
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            keys = list(z.keys())
            if "depth_mm" in z:
                arr = z["depth_mm"]
            elif len(keys) == 1:
                arr = z[keys[0]]
            else:
                raise InputError(f"{p}: npz has arrays {keys}; expected one named 'depth_mm'")
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{p}: not a readable npz file ({type(exc).__name__})") from None
    if arr.ndim != 2 or arr.dtype.kind not in "uif":
        raise InputError(f"{p}: depth must be a 2-D numeric array, got {arr.dtype} {arr.shape}")
    if arr.dtype == np.uint16:
        return _apply_unit(arr, unit)
    return (arr.astype(np.float32) * np.float32(unit)).astype(np.float32)


def write_depth(
    path: str | Path, depth_mm: np.ndarray, fmt: str = "png16", depth_unit_mm: float = 1.0
) -> Path:
    """Write (H, W) mm depth in one of FORMATS (png formats round to whole device counts, clip to 16 bits)."""
    p = Path(path)
    d = np.asarray(depth_mm)
    if d.ndim != 2:
        raise InputError(f"depth must be 2-D, got shape {d.shape}")
    if fmt == "npz":
        try:
            np.savez_compressed(p, depth_mm=d)
        except OSError as exc:
            raise writing_failed(p, exc) from None
        return p
    counts = np.nan_to_num(d.astype(np.float64) / depth_unit_mm, nan=0.0, posinf=0.0, neginf=0.0)
    counts = np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
    if fmt == "png16":
        img = counts
    elif fmt == "nyu":
        img = np.zeros(d.shape + (3,), dtype=np.uint8)
        img[:, :, 0] = counts & 0xFF
        img[:, :, 1] = counts >> 8
    else:
        raise InputError(f"unknown depth format {fmt!r}; choose from {', '.join(FORMATS)}")
    return write_png(p, img)
