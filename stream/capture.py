"""Capture in its own thread, handing frames to the pipeline over a bounded queue.

Two policies, chosen by the source:
- live (camera, paced generator): the queue keeps the newest `capacity` frames; when it is full the
  OLDEST frame is dropped and counted, so a slow pipeline shows the present, not a growing backlog.
- replay (files): the capture thread blocks until there is room (back-pressure); nothing is dropped,
  every frame reaches the pipeline once, in order.

A source error ends capture; it is re-raised ONCE in the consumer (with the frame index it happened
after) by `get()`. `stop()` (or leaving the `with` block) wakes both sides, joins the thread and closes
the source, so files and cameras are released on Ctrl-C as well as at the end of the stream.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from .errors import HandstreamError
from .frames import RGBDFrame
from .sources.base import Source


class CaptureError(HandstreamError):
    """The source failed mid-stream; the message names the source and the last good frame."""


class CaptureThread:
    def __init__(self, source: Source, capacity: int | None = None, live: bool | None = None) -> None:
        self.source = source
        self.live = source.live if live is None else bool(live)
        self.capacity = int(capacity or (2 if self.live else 8))
        if self.capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._q: deque[RGBDFrame] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._done = False  # the source ended (or failed)
        self._error: BaseException | None = None
        self._error_reported = False
        self._last_index = -1
        self.dropped = 0  # live frames thrown away because the consumer was behind
        self.captured = 0
        self._thread = threading.Thread(target=self._run, name=f"capture-{source.name}", daemon=True)

    # ---- producer side (capture thread) ----
    def _run(self) -> None:
        try:
            self.source.open()
            while not self._stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                frame.meta.setdefault("t_read_ns", time.perf_counter_ns())
                self._put(frame)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, reported once there
            self._error = exc
        finally:
            try:
                self.source.close()
            except Exception as exc:  # noqa: BLE001
                if self._error is None:
                    self._error = exc
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _put(self, frame: RGBDFrame) -> None:
        with self._cond:
            if self.live:
                while len(self._q) >= self.capacity:
                    self._q.popleft()
                    self.dropped += 1
            else:
                while len(self._q) >= self.capacity and not self._stop.is_set():
                    self._cond.wait(0.1)
                if self._stop.is_set():
                    return
            self._q.append(frame)
            self.captured += 1
            self._last_index = frame.index
            self._cond.notify_all()

    # ---- consumer side ----
    def start(self) -> CaptureThread:
        if not self._thread.is_alive() and not self._done:
            self._thread.start()
        return self

    def get(self, timeout_s: float | None = None) -> RGBDFrame | None:
        """The next frame; None at the end of the stream (or after `timeout_s` with nothing new: check
        `finished`). A source error is raised here once, as CaptureError."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._q:
                if self._done or self._stop.is_set():
                    self._raise_once()
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(0.1 if remaining is None else min(remaining, 0.1))
            frame = self._q.popleft()
            self._cond.notify_all()
            return frame

    @property
    def finished(self) -> bool:
        """True once the source has ended and every frame has been taken."""
        with self._cond:
            return self._done and not self._q

    def _raise_once(self) -> None:
        if self._error is not None and not self._error_reported:
            self._error_reported = True
            exc = self._error
            where = f"after frame {self._last_index}" if self._last_index >= 0 else "before the first frame"
            if isinstance(exc, KeyboardInterrupt):
                raise exc
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, HandstreamError):
                msg = f"{self.source.name}: {type(exc).__name__}: {msg}"
            raise CaptureError(f"{msg} ({where})") from exc

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop capturing, join the thread (the source is closed by it)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        if not self._thread.is_alive() and not self._thread.ident:
            self.source.close()  # never started

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> CaptureThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __iter__(self):
        while True:
            f = self.get()
            if f is None:
                return
            yield f
