"""The one interface every source implements: open, read frames until None, close.

A source is either *live* (a camera, or the generator paced at a frame rate: frames keep coming whether
or not anyone reads them, so the capture thread keeps only the newest) or *replay* (a file: every frame
matters, so the capture thread back-pressures it and never drops). `RGBDFrame.meta["t_capture_ns"]`, when a
source sets it, is the capture moment on `time.perf_counter_ns()`'s clock, from which the pipeline measures
glass-to-result latency.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator

from ..errors import InputError
from ..frames import CameraIntrinsics, RGBDFrame


class Source(ABC):
    """Base class. Subclasses implement `_open()`, `_read()` and (if they hold resources) `_close()`."""

    name: str = "source"
    live: bool = False

    def __init__(self) -> None:
        self._opened = False
        self._closed = False
        self.intrinsics: CameraIntrinsics | None = None
        self.fps: float | None = None
        self.frame_count: int | None = None  # known length of a replay, else None
        self.readable_frames = 0
        self.unreadable_frames = 0
        self._first_unreadable = ""

    def open(self) -> Source:
        if not self._opened:
            self._open()
            self._opened = True
        return self

    def read(self) -> RGBDFrame | None:
        """The next frame, or None at the end of the stream. Frames the source could not read come as
        `RGBDFrame.unreadable` (the stream goes on); a stream that ends without one readable frame is
        damaged beyond use and raises a one-line InputError instead of ending quietly."""
        if not self._opened:
            self.open()
        if self._closed:
            return None
        f = self._read()
        if f is None:
            if self.unreadable_frames and not self.readable_frames:
                raise InputError(
                    f"{self.name}: none of its {self.unreadable_frames} frames could be read "
                    f"(first: {self._first_unreadable})"
                )
            return None
        if f.readable:
            self.readable_frames += 1
        else:
            self.unreadable_frames += 1
            self._first_unreadable = self._first_unreadable or f.unreadable_reason
        return f

    def close(self) -> None:
        if self._opened and not self._closed:
            self._closed = True
            self._close()

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _read(self) -> RGBDFrame | None: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> Source:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[RGBDFrame]:
        while True:
            f = self.read()
            if f is None:
                return
            yield f

    def describe(self) -> str:
        intr = self.intrinsics
        res = f"{intr.width}x{intr.height}" if intr else "?"
        fps = f" @ {self.fps:g} fps" if self.fps else ""
        return f"{self.name} ({'live' if self.live else 'replay'}, {res}{fps})"


class Pacer:
    """Sleeps so that successive calls to `wait(t_ms)` follow the timestamps in wall time; a stream that
    falls behind by more than `max_lag_ms` re-anchors instead of racing to catch up."""

    def __init__(self, max_lag_ms: float = 250.0) -> None:
        self.max_lag_ms = max_lag_ms
        self._t0_ns: int | None = None
        self._ts0_ms = 0.0

    def wait(self, t_ms: float) -> None:
        now = time.perf_counter_ns()
        if self._t0_ns is None:
            self._t0_ns, self._ts0_ms = now, t_ms
            return
        due = self._t0_ns + int((t_ms - self._ts0_ms) * 1e6)
        ahead_s = (due - now) / 1e9
        if ahead_s > 0:
            time.sleep(ahead_s)
        elif -ahead_s * 1e3 > self.max_lag_ms:
            self._t0_ns, self._ts0_ms = now, t_ms
