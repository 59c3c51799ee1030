"""Where results go: a JSON-lines file, an mp4 of the overlay, a window.

Every sink has `write(result, frame) -> bool | None` (False asks the run to stop) and `close()`. The
JSON-lines sink writes one record per result it is given, so in replay records out = frames in.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import signal
import sys
import threading
from pathlib import Path

import cv2

from .errors import InputError
from .outputs import (
    FULL_AFTER_FAILURE_BYTES,
    commit,
    discard,
    out_of_space,
    prepare_file,
    regular_destination,
    temporary_beside,
    writing_failed,
)


class JsonlSink:
    """One JSON object per frame: index, timestamp, hand found, joints in mm and pixels, per-stage ms.

    A failed write (a full disk, a file system gone read-only) is the one-line `writing PATH failed: ...`."""

    def __init__(self, path: str | Path) -> None:
        self.path = prepare_file(path, "JSON-lines file")
        try:
            self._f = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise InputError(f"cannot write {self.path}: {exc.strerror}") from None
        self.records = 0

    def write(self, result, frame=None) -> bool:
        try:
            self._f.write(json.dumps(result.to_record(), separators=(",", ":")) + "\n")
        except OSError as exc:
            raise writing_failed(self.path, exc) from None
        self.records += 1
        return True

    def close(self) -> None:
        if not self._f.closed:
            try:
                self._f.close()  # the file is closed even when the last flush fails
            except OSError as exc:
                raise writing_failed(self.path, exc) from None


class VideoSink:
    """The overlay images as an mp4 (OpenCV's mp4v encoder). The size is taken from the first image;
    results without an image (no overlay stage) get the frame's colour or depth view instead.

    Encoding runs in a writer thread (OpenCV releases the GIL while it encodes, so on two cores it
    overlaps the next frame's processing); the hand-over queue is bounded and blocking, so no frame is
    lost and memory stays flat. `threaded=False` encodes inline.

    OpenCV's VideoWriter reports no write error (a full disk gives an unplayable file and FFmpeg's lines on
    stderr), so the video goes to a temporary file beside the output; `close()` checks that it decodes
    with every frame written and only then renames it over the output. Free space is also checked every
    `SPACE_CHECK_FRAMES` frames, so a full disk stops the run early with one line."""

    SPACE_CHECK_FRAMES = 30

    def __init__(
        self, path: str | Path, fps: float = 30.0, threaded: bool = True, queue_frames: int = 4
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            raise InputError(f"video output must be .mp4, got {self.path.name}")
        prepare_file(self.path, "video")
        self._dest = regular_destination(self.path, "video")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._writer = None
        self._size: tuple[int, int] | None = None
        self.frames = 0
        self._q: queue.Queue | None = queue.Queue(maxsize=queue_frames) if threaded else None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._tmp: Path | None = temporary_beside(self._dest)
        self._check_encoder()

    def _check_encoder(self) -> None:
        """Open the encoder once on the temporary file before any frame (the frame size comes with the
        first image): an OpenCV without a working mp4 writer fails here, not after the first result."""
        probe = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (64, 48))
        opened = probe.isOpened()
        probe.release()
        if not opened:
            discard(self._tmp)
            self._tmp = None
            raise InputError(f"OpenCV cannot write an mp4 to {self.path}")

    def write(self, result, frame=None) -> bool:
        img = result.image
        if img is None and frame is not None:
            img = _fallback_view(frame)
        if img is None:
            return True
        if self._error is not None:
            raise writing_failed(self.path, self._error)
        if self._tmp is None:
            raise InputError(f"writing {self.path} after it was closed")
        h, w = img.shape[:2]
        if self._writer is None:
            self._size = (w, h)
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise InputError(f"OpenCV cannot write an mp4 to {self.path}")
            if self._q is not None:
                self._thread = threading.Thread(target=self._drain, name="mp4-writer", daemon=True)
                self._thread.start()
        if self.frames % self.SPACE_CHECK_FRAMES == 0 and out_of_space(self._tmp):
            raise writing_failed(self.path, os.strerror(errno.ENOSPC))
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
        """Finish the file, verify it and rename it over the output; raise the one-line error if it is
        not the video that was written (the temporary file is removed then)."""
        if self._thread is not None:
            self._q.put(None)
            self._thread.join()
            self._thread = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        tmp, self._tmp = self._tmp, None
        if tmp is None:
            return
        if self.frames == 0:
            discard(tmp)  # nothing was shown: like before, no video is written
            return
        problem = _video_problem(tmp, self.frames)
        if problem is not None:
            full = out_of_space(tmp, FULL_AFTER_FAILURE_BYTES)
            discard(tmp)
            raise writing_failed(self.path, os.strerror(errno.ENOSPC) if full else problem)
        commit(tmp, self._dest, self.path)


def _video_problem(path: Path, frames: int) -> str | None:
    """None when the mp4 at `path` opens and its container lists `frames` frames, else what is wrong.
    The frame count comes from the index FFmpeg writes last, so a truncated file never passes."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return "the encoder wrote an unreadable file"
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, _ = cap.read()
    finally:
        cap.release()
    if n != frames or not ok:
        return f"the encoder wrote {max(n, 0)} of {frames} frames"
    return None


class SinkGroup:
    """Several sinks written as one: SIGINT, SIGTERM and SIGHUP are held back while one result goes to
    every sink and while the sinks close, so an interrupted run ends with as many records in the JSON-lines
    file as frames in the video, and the video finished.

    A signal mask cannot do this: with the main thread masked, the kernel hands the signal to another
    thread (capture, encoder) and Python still runs the handler in the main thread at once. So the group
    puts its own handler in front of the current ones (on the first write, in the main thread) and a flag
    says whether to hold a signal or pass it on; the handlers are put back when the group closes."""

    _SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

    def __init__(self, sinks: list) -> None:
        self.sinks = list(sinks)
        self._previous: dict | None = None
        self._holding = False
        self._pending: int | None = None

    def _install(self) -> None:
        if self._previous is not None or threading.current_thread() is not threading.main_thread():
            return
        previous = {sig: signal.getsignal(sig) for sig in self._SIGNALS}
        if any(h is None for h in previous.values()):  # a handler set outside Python: leave them all
            return
        for sig in previous:
            signal.signal(sig, self._on_signal)
        self._previous = previous

    def _restore(self) -> None:
        if self._previous is not None:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame) -> None:
        if self._holding:
            self._pending = self._pending or signum
        else:
            self._pass_on(signum, frame)

    def _pass_on(self, signum: int, frame) -> None:
        handler = (self._previous or {}).get(signum, signal.SIG_DFL)
        if handler is signal.SIG_IGN:
            return
        if handler is signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        handler(signum, frame)

    @contextlib.contextmanager
    def _held(self, closing: bool = False):
        self._holding = True
        try:
            yield
        finally:
            if closing:
                self._restore()
            self._holding = False
            if self._pending is not None:
                signum, self._pending = self._pending, None
                self._pass_on(signum, None)

    def write(self, result, frame=None) -> bool:
        self._install()
        keep_going = True
        with self._held():
            for s in self.sinks:
                if s.write(result, frame) is False:
                    keep_going = False
        return keep_going

    def close(self) -> None:
        """Close every sink, even when one fails; the first failure is raised after all are closed."""
        first: BaseException | None = None
        with self._held(closing=True):
            for s in self.sinks:
                try:
                    s.close()
                except Exception as exc:  # noqa: BLE001 - re-raised below once every sink is closed
                    first = first or exc
        if first is not None:
            raise first


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
