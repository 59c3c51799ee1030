"""Where results go: a JSON-lines file, an mp4 of the overlay, a window.

Every sink has `write(result, frame) -> bool | None` (False asks the run to stop) and `close()`. The
JSON-lines sink writes one record per result it is given, so in replay records out = frames in.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from pathlib import Path

import cv2

from .errors import InputError


def _out_path(path: str | Path, what: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {p} is a folder; give a file name")
    if p.parent and not p.parent.exists():
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the folder for {what} {p}: {exc.strerror}") from None
    return p


class JsonlSink:
    """One JSON object per frame: index, timestamp, hand found, joints in mm and pixels, per-stage ms."""

    def __init__(self, path: str | Path) -> None:
        self.path = _out_path(path, "JSON-lines file")
        try:
            self._f = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise InputError(f"cannot write {self.path}: {exc.strerror}") from None
        self.records = 0

    def write(self, result, frame=None) -> bool:
        self._f.write(json.dumps(result.to_record(), separators=(",", ":")))
        self._f.write("\n")
        self.records += 1
        return True

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


class VideoSink:
    """The overlay images as an mp4 (OpenCV's mp4v encoder). The size is taken from the first image;
    results without an image (no overlay stage) get the frame's colour or depth view instead.

    Encoding runs in a writer thread (OpenCV releases the GIL while it encodes, so on two cores it
    overlaps the next frame's processing); the hand-over queue is bounded and blocking, so no frame is
    lost and memory stays flat. `threaded=False` encodes inline."""

    def __init__(
        self, path: str | Path, fps: float = 30.0, threaded: bool = True, queue_frames: int = 4
    ) -> None:
        self.path = _out_path(path, "video")
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            raise InputError(f"video output must be .mp4, got {self.path.name}")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._writer = None
        self._size: tuple[int, int] | None = None
        self.frames = 0
        self._q: queue.Queue | None = queue.Queue(maxsize=queue_frames) if threaded else None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, result, frame=None) -> bool:
        img = result.image
        if img is None and frame is not None:
            img = _fallback_view(frame)
        if img is None:
            return True
        if self._error is not None:
            raise InputError(f"writing {self.path} failed: {self._error}")
        h, w = img.shape[:2]
        if self._writer is None:
            self._size = (w, h)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise InputError(f"OpenCV cannot write an mp4 to {self.path}")
            if self._q is not None:
                self._thread = threading.Thread(target=self._drain, name="mp4-writer", daemon=True)
                self._thread.start()
        if (w, h) != self._size:
            img = cv2.resize(img, self._size)
        if self._q is not None:
            self._q.put(img)
        else:
            self._writer.write(img)
        self.frames += 1
        return True

    def _drain(self) -> None:
        while True:
            img = self._q.get()
            if img is None:
                return
            try:
                self._writer.write(img)
            except Exception as exc:  # noqa: BLE001 - surfaced by the next write()
                self._error = exc

    def close(self) -> None:
        if self._thread is not None:
            self._q.put(None)
            self._thread.join()
            self._thread = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def _fallback_view(frame):
    if not frame.readable:
        return _unreadable_view(frame)
    if frame.color_bgr is not None:
        return frame.color_bgr
    if frame.depth_mm is not None:
        d8 = cv2.convertScaleAbs(frame.depth_mm, alpha=255.0 / 1500.0)
        return cv2.cvtColor(d8, cv2.COLOR_GRAY2BGR)
    return None


def _unreadable_view(frame):
    """A dark image of the stream's size saying which frame could not be read, so that an mp4 keeps one
    image per JSON-lines record (and its timing) across damaged frames."""
    import numpy as np

    w, h = frame.intrinsics.width, frame.intrinsics.height
    img = np.full((h, w, 3), 24, np.uint8)
    scale = max(0.35, min(w, h) / 600.0)
    cv2.putText(
        img,
        f"frame {frame.index}: unreadable",
        (8, int(24 * scale / 0.5)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (0, 0, 255),
        1,
        cv2.LINE_AA,
    )
    return img


def display_available() -> bool:
    """A window can open: always on Windows/macOS, on Linux only with an X or Wayland display."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class WindowSink:
    """An OpenCV window: q or Esc quits, space pauses (and resumes)."""

    def __init__(self, title: str = "handstream") -> None:
        if not display_available():
            raise InputError("--show needs a display (no DISPLAY/WAYLAND_DISPLAY); use --out video.mp4")
        self.title = title
        self.paused = False
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    def write(self, result, frame=None) -> bool:
        img = result.image if result.image is not None else _fallback_view(frame)
        if img is not None:
            cv2.imshow(self.title, img)
        key = cv2.waitKey(1) & 0xFF
        while True:
            if key in (ord("q"), 27):
                return False
            if key == ord(" "):
                self.paused = not self.paused
            if not self.paused:
                return True
            key = cv2.waitKey(50) & 0xFF

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
