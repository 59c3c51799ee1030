"""The data contracts every stage shares: camera intrinsics and RGB-D frames.

Frozen dataclasses with units in field names. Depth is always in millimetres once it is inside a frame
(sources convert from the device's depth unit), 0 meaning "no measurement".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the depth camera (colour is aligned to depth, so they serve both).

    `depth_unit_mm` is the size of one raw depth count as the *device* stores it (1.0 for the D400 series
    at default settings, 0.125 for SR300/SR305); frames themselves always carry depth in mm.
    The y axis points down the image (OpenCV convention); datasets that flip y (NYU) convert at load.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    depth_unit_mm: float = 1.0
    name: str = ""

    def __post_init__(self) -> None:
        vals = (self.fx, self.fy, self.cx, self.cy, self.depth_unit_mm)
        if not all(math.isfinite(v) for v in vals):
            raise InputError(f"camera intrinsics must be finite numbers, got {self}")
        if self.fx <= 0 or self.fy <= 0 or self.width <= 0 or self.height <= 0 or self.depth_unit_mm <= 0:
            raise InputError(
                f"camera intrinsics must be positive (fx, fy, width, height, depth unit): {self}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), the shape of a depth image from this camera."""
        return (self.height, self.width)

    def scaled(self, width: int, height: int) -> CameraIntrinsics:
        """The same camera at another resolution (pixel centres mapped exactly, focal lengths scaled)."""
        sx, sy = width / self.width, height / self.height
        return replace(
            self,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=int(width),
            height=int(height),
            name=f"{self.name}@{width}x{height}" if self.name else "",
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CameraIntrinsics:
        keys = {"fx", "fy", "cx", "cy", "width", "height", "depth_unit_mm", "name"}
        missing = {"fx", "fy", "cx", "cy", "width", "height"} - set(d)
        if missing:
            raise InputError(f"intrinsics are missing {sorted(missing)}")
        try:
            return cls(**{k: (type_cast(k, v)) for k, v in d.items() if k in keys})
        except (TypeError, ValueError) as exc:
            raise InputError(f"bad intrinsics {d}: {exc}") from exc


def type_cast(key: str, value):
    if key in ("width", "height"):
        return int(value)
    if key == "name":
        return str(value)
    return float(value)


# Cameras the project knows by name. D435 values are typical factory intrinsics of the depth stream;
# a live camera always reports its own. NYU: Tompson et al. 2014 (fy's sign flip is handled at load).
KNOWN_CAMERAS: dict[str, CameraIntrinsics] = {
    "d435_640x480": CameraIntrinsics(383.4, 383.4, 319.5, 239.5, 640, 480, 1.0, "d435_640x480"),
    "d435_320x240": CameraIntrinsics(191.7, 191.7, 159.5, 119.5, 320, 240, 1.0, "d435_320x240"),
    "sr300_640x480": CameraIntrinsics(475.0, 475.0, 315.0, 245.0, 640, 480, 0.125, "sr300_640x480"),
    "nyu": CameraIntrinsics(588.03, 587.07, 320.0, 240.0, 640, 480, 1.0, "nyu"),
}


def camera(name: str) -> CameraIntrinsics:
    """A known camera by name (see KNOWN_CAMERAS), with a one-line error listing the choices."""
    try:
        return KNOWN_CAMERAS[name]
    except KeyError:
        raise InputError(f"unknown camera {name!r}; known: {', '.join(sorted(KNOWN_CAMERAS))}") from None


@dataclass(frozen=True)
class RGBDFrame:
    """One captured frame. `depth_mm` is (H, W) uint16 or float32 in millimetres, 0 = no measurement;
    `color_bgr` (H, W, 3) uint8 is aligned to depth when present. `timestamp_ms` is the capture time
    on the source's clock (the camera's own where it has one).

    `unreadable_reason` is non-empty for a frame the source knows exists but could not read (a damaged
    message in a recording, a corrupt or unreadable file in a folder, a video frame that does not decode):
    it says why and the frame carries no pixels. Sources emit it and go on, so one bad frame never ends a
    stream and frames in = records out (see `unreadable()`)."""

    index: int
    timestamp_ms: float
    depth_mm: np.ndarray | None
    intrinsics: CameraIntrinsics
    color_bgr: np.ndarray | None = None
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False)
    unreadable_reason: str = ""

    @classmethod
    def unreadable(
        cls,
        index: int,
        timestamp_ms: float,
        intrinsics: CameraIntrinsics,
        source: str,
        reason: str,
        meta: dict | None = None,
    ) -> RGBDFrame:
        """The one representation of "this frame could not be read": no pixels, `unreadable_reason` =
        `reason` (made one line). The pipeline turns it into a "no hand" result without running stages."""
        why = " ".join(str(reason).split()) or "unknown reason"
        return cls(index, float(timestamp_ms), None, intrinsics, None, source, dict(meta or {}), why)

    @property
    def readable(self) -> bool:
        return not self.unreadable_reason

    def __post_init__(self) -> None:
        h, w = self.intrinsics.height, self.intrinsics.width
        if self.unreadable_reason:
            if self.depth_mm is not None or self.color_bgr is not None:
                raise InputError(f"frame {self.index}: an unreadable frame carries no pixels")
            return
        if self.depth_mm is None and self.color_bgr is None:
            raise InputError(f"frame {self.index}: neither depth nor colour")
        if self.depth_mm is not None:
            if self.depth_mm.ndim != 2 or self.depth_mm.shape != (h, w):
                raise InputError(
                    f"frame {self.index}: depth shape {self.depth_mm.shape} does not match intrinsics {(h, w)}"
                )
            if self.depth_mm.dtype not in (np.uint16, np.float32):
                raise InputError(
                    f"frame {self.index}: depth must be uint16 or float32 mm, got {self.depth_mm.dtype}"
                )
        if self.color_bgr is not None and self.color_bgr.shape[:2] != (h, w):
            raise InputError(
                f"frame {self.index}: colour shape {self.color_bgr.shape} does not match intrinsics {(h, w)}"
            )

    @property
    def has_depth(self) -> bool:
        return self.depth_mm is not None

    @property
    def has_color(self) -> bool:
        return self.color_bgr is not None
