"""Video files (mp4/avi/mkv/...) through OpenCV: colour frames for the RGB path, with optional depth.

Depth can be paired from a folder of 16-bit PNGs (one per video frame, in name order) or a depth video
stored losslessly with the NYU encoding (depth mm = (G << 8) | B, e.g. FFV1 in .mkv): lossy codecs would
corrupt depth, so a depth video is read, not trusted blindly -- frames are paired by index and the
stream ends with the shorter of the two. Intrinsics come from --intrinsics (JSON/YAML or a camera name);
without them a 60 degree horizontal field of view is assumed (said in the frame's meta and the source's
`note`), which is enough to draw on colour but not to measure in millimetres.

A frame that does not decode before the container's frame count (OpenCV's CAP_PROP_FRAME_COUNT) becomes
an unreadable frame and reading goes on: FFmpeg fails the read and resumes at the next frame it can decode,
whose container timestamp (CAP_PROP_POS_MSEC) says which one it is, so the frames skipped in between are
unreadable too and every frame keeps its index. A truncated file gives unreadable frames up to the count.
Where the container has no real timestamps (MJPG in AVI: the position is a counter) a skipped frame is
noticed only at the end: the count of unreadable frames is right, the indices after the loss are not.
Where a container only estimates its count, frames it promised but never delivers are reported unreadable.
A paired depth PNG that cannot be read, or is of another size, makes that frame unreadable as well. The
run's summary says "N of M frames readable".
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..frames import CameraIntrinsics, RGBDFrame
from .base import Source
from .intrinsics_file import load_intrinsics


def _assumed_intrinsics(w: int, h: int) -> CameraIntrinsics:
    f = (w / 2) / math.tan(math.radians(30.0))
    return CameraIntrinsics(f, f, (w - 1) / 2, (h - 1) / 2, w, h, 1.0, "assumed_60deg_hfov")


def _png_list(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise InputError(f"depth folder {folder} holds no .png files")
    return files


class VideoSource(Source):
    def __init__(
        self,
        path: str | Path,
        depth: str | Path | None = None,
        intrinsics: str | None = None,
        camera: str | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = f"video {self.path.name}"
        self._depth_spec = Path(depth) if depth else None
        self._intr_spec = intrinsics or camera
        self.note = ""
        self._cap = self._dcap = None
        self._depth_files: list[Path] | None = None
        self._i = 0
        self._ahead: tuple[int, np.ndarray] | None = None
        self._msec0: float | None = None

    def _open(self) -> None:
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such video")
        try:  # OpenCV says only "cannot open": a permission error must not read as a corrupt file
            open(self.path, "rb").close()  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read: {exc.strerror}") from None
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise InputError(f"{self.path}: OpenCV cannot open it as a video (corrupt or unsupported)")
        self._cap = cap
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 and math.isfinite(fps) else 30.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = n if n > 0 else None
        if w <= 0 or h <= 0:
            raise InputError(f"{self.path}: the video reports no frame size (corrupt?)")
        if self._intr_spec:
            intr = load_intrinsics(self._intr_spec)
            if (intr.width, intr.height) != (w, h):
                intr = intr.scaled(w, h)
        else:
            intr = _assumed_intrinsics(w, h)
            self.note = "no --intrinsics: a 60 degree horizontal field of view is assumed"
        self.intrinsics = intr
        if self._depth_spec is not None:
            d = self._depth_spec
            if d.is_dir():
                self._depth_files = _png_list(d)
            elif d.is_file():
                dcap = cv2.VideoCapture(str(d))
                if not dcap.isOpened():
                    raise InputError(f"{d}: OpenCV cannot open it as a depth video")
                self._dcap = dcap
            else:
                raise InputError(f"depth source {d} not found")

    def _read_depth(self) -> np.ndarray | None | bool:
        """The depth frame paired with frame self._i; False when the depth stream has ended."""
        if self._depth_files is not None:
            if self._i >= len(self._depth_files):
                return False
            from ..depth_io import read_depth

            d = read_depth(self._depth_files[self._i], depth_unit_mm=self.intrinsics.depth_unit_mm)
        elif self._dcap is not None:
            ok, img = self._dcap.read()
            if not ok:
                return False
            if img.ndim == 3 and img.dtype == np.uint8:
                d = (img[:, :, 1].astype(np.uint16) << 8) | img[:, :, 0]
            elif img.ndim == 2 and img.dtype == np.uint16:
                d = img
            else:
                raise InputError(f"{self._depth_spec}: depth video frames are {img.dtype} {img.shape}")
            if self.intrinsics.depth_unit_mm != 1.0:
                d = d.astype(np.float32) * np.float32(self.intrinsics.depth_unit_mm)
        else:
            return None
        if d.shape != self.intrinsics.shape:
            raise InputError(
                f"depth frame {self._i} is {d.shape[1]}x{d.shape[0]}, the video "
                f"{self.intrinsics.width}x{self.intrinsics.height}: depth must be aligned to colour"
            )
        return d

    def _decode(self) -> tuple[bool, np.ndarray | None]:
        """The next decoded image, or (False, None) for a frame FFmpeg cannot decode (or the end). A frame
        whose container timestamp lies beyond position self._i means FFmpeg skipped the ones in between
        (it does so after a damaged packet in mkv): it is kept for later and the skipped position reads as
        a failure, so that every frame keeps its own index."""
        if self._ahead is not None:
            pos, img = self._ahead
            if pos > self._i:
                return False, None
            self._ahead = None
            return True, img
        ok, img = self._cap.read()
        if not ok:
            return False, None
        msec = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if not math.isfinite(msec) or msec < 0:
            return True, img
        if self._msec0 is None:
            self._msec0 = msec  # some containers start later than 0
        pos = int(round((msec - self._msec0) * self.fps / 1000.0))
        if self._i < pos < (self.frame_count or 0):
            self._ahead = (pos, img)
            return False, None
        return True, img

    def _read(self) -> RGBDFrame | None:
        ok, img = self._decode()
        # timestamps from the rate: container timestamps vary by backend, the rate does not
        index, t_ms = self._i, self._i * 1000.0 / self.fps
        if not ok and (self.frame_count is None or index >= self.frame_count):
            return None
        try:
            depth = self._read_depth()
        except InputError as exc:
            self._i += 1
            return self._unreadable(index, t_ms, str(exc))
        if depth is False:
            return None
        self._i += 1
        if not ok:
            # OpenCV (FFmpeg) fails a read for a frame it cannot decode and goes on with the next one on the
            # following read; the container said how many there are, so this is frame `index`, lost
            return self._unreadable(index, t_ms, f"frame {index + 1} of {self.frame_count} does not decode")
        f = RGBDFrame(
            index=index,
            timestamp_ms=t_ms,
            depth_mm=depth,
            intrinsics=self.intrinsics,
            color_bgr=img,
            source=self.name,
        )
        if self.note:
            f.meta["note"] = self.note
        return f

    def _unreadable(self, index: int, t_ms: float, reason: str) -> RGBDFrame:
        return RGBDFrame.unreadable(index, t_ms, self.intrinsics, self.name, reason)

    def _close(self) -> None:
        for c in (self._cap, self._dcap):
            if c is not None:
                c.release()
        self._cap = self._dcap = None
