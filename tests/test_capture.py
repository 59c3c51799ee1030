"""Capture thread semantics under a slow consumer: live drops (and counts) the oldest, replay never drops."""

import threading
import time

import numpy as np
import pytest

from stream.capture import CaptureError, CaptureThread
from stream.frames import CameraIntrinsics, RGBDFrame
from stream.sources.base import Source

INTR = CameraIntrinsics(100.0, 100.0, 15.5, 11.5, 32, 24)


class CountingSource(Source):
    """A real Source producing `n` tiny frames as fast as it can (or failing at frame `fail_at`)."""

    def __init__(self, n, live, fail_at=None, period_s=0.0):
        super().__init__()
        self.n, self.live, self.fail_at, self.period_s = n, live, fail_at, period_s
        self.intrinsics = INTR
        self.produced = 0
        self.closed_on = None

    def _open(self):
        pass

    def _read(self):
        if self.produced >= self.n:
            return None
        if self.fail_at is not None and self.produced == self.fail_at:
            raise OSError("device went away")
        if self.period_s:
            time.sleep(self.period_s)
        d = np.full((24, 32), self.produced + 1, np.uint16)
        f = RGBDFrame(self.produced, self.produced * 10.0, d, INTR)
        self.produced += 1
        return f

    def _close(self):
        self.closed_on = threading.current_thread().name


def _consume(cap, delay_s):
    got = []
    for f in cap:
        got.append(f.index)
        time.sleep(delay_s)
    return got


def test_live_keeps_newest_and_counts_drops():
    src = CountingSource(200, live=True)
    with CaptureThread(src, capacity=2) as cap:
        got = _consume(cap, 0.002)
    assert cap.dropped > 0
    assert len(got) + cap.dropped == src.produced == 200
    assert got == sorted(got) and len(set(got)) == len(got)
    assert got[-1] == 199  # the newest frame always gets through


def test_replay_is_lossless_and_back_pressured():
    src = CountingSource(60, live=False)
    with CaptureThread(src, capacity=2) as cap:
        got = _consume(cap, 0.002)
    assert got == list(range(60))
    assert cap.dropped == 0


def test_stop_mid_stream_joins_thread_and_closes_source():
    src = CountingSource(10_000, live=False, period_s=0.001)
    cap = CaptureThread(src, capacity=4).start()
    assert cap.get(timeout_s=5.0) is not None
    t0 = time.monotonic()
    cap.stop()
    assert time.monotonic() - t0 < 2.0
    assert not cap.alive
    assert src.closed_on is not None and src.produced < 10_000


def test_source_error_is_reported_once_with_frame_index():
    src = CountingSource(50, live=False, fail_at=5)
    with CaptureThread(src, capacity=2) as cap:
        got = []
        with pytest.raises(CaptureError, match=r"device went away \(after frame 4\)"):
            while True:
                f = cap.get(timeout_s=5.0)
                if f is None:
                    break
                got.append(f.index)
        assert got == [0, 1, 2, 3, 4]
        assert cap.get(timeout_s=0.5) is None  # reported once, then just the end
    assert src.closed_on is not None
