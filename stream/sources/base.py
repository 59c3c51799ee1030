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
from dataclasses import dataclass

from ..errors import InputError
from ..frames import CameraIntrinsics, RGBDFrame


class Source(ABC):
    """Base class. Subclasses implement `_open()`, `_read()` and (if they hold resources) `_close()`."""

    name: str = "source"
    live: bool = False
    # False: a source that can leave its colour stream closed does so at open() (a camera, a recording),
    # since nothing downstream reads colour (`Pipeline.uses_color`); frames then carry depth only
    want_color: bool = True

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

    def lag(self) -> Lag | None:
        """How a paced source keeps up with real time (None for sources that are not paced)."""
        return None

    def describe(self) -> str:
        intr = self.intrinsics
        res = f"{intr.width}x{intr.height}" if intr else "?"
        fps = f" @ {self.fps:g} fps" if self.fps else ""
        return f"{self.name} ({'live' if self.live else 'replay'}, {res}{fps})"


@dataclass(frozen=True)
class Lag:
    """How well a paced source kept up with real time, since its first frame.

    `speed` is stream time over wall time (1.0 = real time; a decoder that cannot keep up shows < 1 even
    though the capture queue drops nothing), `behind_ms` how far the last frame came after its real-time
    moment (0 when keeping up), `behind_frames` the same in frames at the stream's own rate, `skipped`
    frames the source never delivered because reading fell behind (a camera's frame-number gaps)."""

    frames: int
    speed: float
    behind_ms: float
    behind_frames: int
    skipped: int = 0

    def describe(self) -> str:
        """One clause for the run summary."""
        out = f"speed {self.speed:.2f}x real time"
        if self.behind_frames > 0:
            out += f", {self.behind_ms / 1000.0:.1f} s ({self.behind_frames} frames) behind"
        if self.skipped:
            out += f", {self.skipped} frames skipped by the source"
        return out


class LagMeter:
    """Counts a paced stream's lag from each delivered frame's timestamp and the wall clock; O(1) state.
    `Pacer` feeds it after sleeping; a camera, which paces itself, feeds it directly."""

    def __init__(self) -> None:
        self.frames = 0
        self.skipped = 0
        self._first_ns = 0
        self._first_ms = 0.0
        self._last_ns = 0
        self._last_ms = 0.0
        self._last_number: int | None = None

    def observe(self, t_ms: float, now_ns: int | None = None, frame_number: int | None = None) -> None:
        now = time.perf_counter_ns() if now_ns is None else int(now_ns)
        if self.frames == 0:
            self._first_ns, self._first_ms = now, float(t_ms)
        self.frames += 1
        self._last_ns, self._last_ms = now, float(t_ms)
        if frame_number is not None:
            if self._last_number is not None and frame_number > self._last_number + 1:
                self.skipped += frame_number - self._last_number - 1
            self._last_number = frame_number

    def lag(self) -> Lag | None:
        """The lag so far; None before the first frame."""
        if self.frames == 0:
            return None
        stream_ms = self._last_ms - self._first_ms
        wall_ms = (self._last_ns - self._first_ns) / 1e6
        speed = stream_ms / wall_ms if wall_ms > 0 and stream_ms > 0 else 1.0
        behind = max(0.0, wall_ms - stream_ms)
        period_ms = stream_ms / (self.frames - 1) if self.frames > 1 and stream_ms > 0 else 0.0
        behind_frames = int(round(behind / period_ms)) if period_ms > 0 else 0
        return Lag(self.frames, float(speed), float(behind), behind_frames, self.skipped)


class Pacer:
    """Sleeps so that successive calls to `wait(t_ms)` follow the timestamps in wall time; a stream that
    falls behind by more than `max_lag_ms` re-anchors instead of racing to catch up. Its `meter` counts
    the lag against the first frame's anchor, so falling behind is reported even across re-anchoring."""

    def __init__(self, max_lag_ms: float = 250.0) -> None:
        self.max_lag_ms = max_lag_ms
        self._t0_ns: int | None = None
        self._ts0_ms = 0.0
        self.meter = LagMeter()

    def wait(self, t_ms: float) -> None:
        now = time.perf_counter_ns()
        if self._t0_ns is None:
            self._t0_ns, self._ts0_ms = now, t_ms
            self.meter.observe(t_ms, now)
            return
        due = self._t0_ns + int((t_ms - self._ts0_ms) * 1e6)
        ahead_s = (due - now) / 1e9
        if ahead_s > 0:
            time.sleep(ahead_s)
        elif -ahead_s * 1e3 > self.max_lag_ms:
            self._t0_ns, self._ts0_ms = now, t_ms
        self.meter.observe(t_ms)

    def lag(self) -> Lag | None:
        return self.meter.lag()
