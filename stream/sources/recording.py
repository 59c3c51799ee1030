"""RealSense recordings (.db3 as librealsense >= 2.55 writes them, and .bag) played through librealsense.

Lossless mode (the default) delivers every recorded depth frame exactly once, in order, deterministically.
It is the mode users of `playback.set_real_time(False)` + `pipeline.wait_for_frames()` keep reporting
broken (librealsense issues #1579, #4766, #6340, #10312: hangs, dropped or repeated frames). What goes
wrong there and what this module does instead:

- the pipeline's syncer drops frames it cannot match and its queue is small: we open the playback
  device's sensors directly and pair depth with colour ourselves, by timestamp;
- a frame_queue given to `sensor.start` blocks inside a Python call while holding the GIL once it is
  full (a deadlock we reproduced with pyrealsense2 2.59): our callbacks copy the pixels out and wait on
  a threading.Condition (which releases the GIL) while the consumer is behind -- back-pressure, not loss;
- frames of a sensor that is started a moment after playback begins are skipped: we pause playback,
  start every sensor, then resume;
- repeated frame numbers (seen at the end of some files) are dropped and counted; the end of the file is
  the playback status `stopped` with nothing left in flight, and a file that stops delivering while
  still "playing" raises a one-line error after `stall_timeout_s` instead of hanging.

Real-time mode (`realtime=True`) is deliberately NOT librealsense's set_real_time(True): that paces by the
time each message was written, which for recordings made by `handstream record` (no camera) is the
writing speed, not the capture rate. We read losslessly and pace by the frames' own (camera) timestamps;
the source is then "live", so the capture thread keeps only the newest frames and counts the dropped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..frames import RGBDFrame
from .base import Lag, Pacer, Source
from .rs_common import align_color_to_depth, color_to_bgr, depth_to_mm, intrinsics_from_rs, rs


class RecordingSource(Source):
    name = "recording"

    def __init__(
        self,
        path: str | Path,
        realtime: bool = False,
        stall_timeout_s: float = 5.0,
        buffer_frames: int = 8,
        pair_tolerance_ms: float = 40.0,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = f"recording {self.path.name}"
        self.realtime = bool(realtime)
        self.live = self.realtime
        self.stall_timeout_s = float(stall_timeout_s)
        self.buffer_frames = int(buffer_frames)
        self.pair_tolerance_ms = float(pair_tolerance_ms)
        self.duplicates = 0
        self.color_intrinsics = None
        self._cond = threading.Condition()
        self._inbox: deque = deque()
        self._in_callback = 0
        self._closing = False
        self._flowing = False
        self._depth: deque = deque()
        self._color: deque = deque()
        self._last_fn = {"depth": -1, "color": -1}
        self._sensors: list = []
        self._index = 0
        self._pacer = Pacer()
        self._align = None

    # ---- opening ----
    def _open(self) -> None:
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such recording")
        if self.path.stat().st_size == 0:
            raise InputError(f"{self.path}: empty file, not a RealSense recording")
        r = rs()
        try:
            dev = r.context().load_device(str(self.path))
            pb = dev.as_playback()
        except RuntimeError as exc:
            raise InputError(
                f"{self.path}: librealsense cannot read it ({str(exc).splitlines()[0]}); "
                "corrupt, truncated or not a RealSense recording"
            ) from None
        self._rs, self._dev, self._pb = r, dev, pb
        pb.set_real_time(False)
        depth_p = color_p = None
        depth_s = color_s = None
        for s in pb.query_sensors():
            for p in s.get_stream_profiles():
                st = p.stream_type()
                if st == r.stream.depth and depth_p is None:
                    depth_p, depth_s = p, s
                elif st == r.stream.color and color_p is None:
                    color_p, color_s = p, s
        if depth_p is None:
            raise InputError(f"{self.path}: the recording has no depth stream")
        unit_m = 0.001
        if depth_s.supports(r.option.depth_units):
            unit_m = float(depth_s.get_option(r.option.depth_units))
        self._unit_mm = unit_m * 1000.0
        vp = depth_p.as_video_stream_profile()
        self.intrinsics = intrinsics_from_rs(vp.get_intrinsics(), self._unit_mm, name=self.path.stem)
        self.fps = float(depth_p.fps()) or None
        self._color_fmt = ""
        if color_p is not None:
            cvp = color_p.as_video_stream_profile()
            self.color_intrinsics = intrinsics_from_rs(cvp.get_intrinsics(), 1.0)
            self._color_fmt = str(color_p.format())
            same_size = (self.color_intrinsics.width, self.color_intrinsics.height) == (
                self.intrinsics.width,
                self.intrinsics.height,
            )
            ext = depth_p.get_extrinsics_to(color_p)
            rot = np.asarray(ext.rotation, np.float64).reshape(3, 3).T  # librealsense stores column-major
            trans = np.asarray(ext.translation, np.float64) * 1000.0
            identity = np.allclose(rot, np.eye(3), atol=1e-6) and np.allclose(trans, 0, atol=1e-3)
            same_intr = self.color_intrinsics.to_dict() | {"depth_unit_mm": 0, "name": ""} == (
                self.intrinsics.to_dict() | {"depth_unit_mm": 0, "name": ""}
            )
            if not (same_size and identity and same_intr):
                self._align = (self.color_intrinsics, rot, trans)
        self._sensors = [(depth_s, depth_p, "depth")]
        if color_p is not None:
            if color_s is depth_s:
                self._sensors = [(depth_s, [depth_p, color_p], "both")]
            else:
                self._sensors.append((color_s, color_p, "color"))
        pb.pause()  # nothing may play before every sensor listens (else the first frames are skipped)
        started = []
        try:
            for s, p, _ in self._sensors:
                s.open(p)
                s.start(self._callback)
                started.append(s)
        except RuntimeError as exc:
            self._started = started
            self._close()
            raise InputError(f"{self.path}: cannot play it ({str(exc).splitlines()[0]})") from None
        self._started = started
        self._last_progress = time.monotonic()
        pb.resume()

    # ---- librealsense threads ----
    def _callback(self, frame) -> None:
        with self._cond:
            if self._closing:
                return
            self._in_callback += 1
        try:
            r = self._rs
            prof = frame.get_profile()
            st = prof.stream_type()
            kind = "depth" if st == r.stream.depth else "color" if st == r.stream.color else ""
            if not kind:
                return
            data = np.asanyarray(frame.get_data())
            if kind == "depth":
                pix = depth_to_mm(data, self._unit_mm)
            else:
                pix = color_to_bgr(data, self._color_fmt)
                if pix is None:
                    return
            item = (kind, int(frame.get_frame_number()), float(frame.get_timestamp()), pix)
            with self._cond:
                # block only once the consumer reads: a callback blocked while the main thread is inside a
                # librealsense call (resume, stop) deadlocks both (found with a 1-frame buffer)
                while self._flowing and len(self._inbox) >= self.buffer_frames and not self._closing:
                    self._cond.wait(0.05)  # releases the GIL: the consumer can drain
                if not self._closing:
                    self._inbox.append(item)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._in_callback -= 1
                self._cond.notify_all()

    # ---- consumer ----
    def _drain(self) -> int:
        """Move what the callbacks delivered into per-stream lists, dropping repeated frame numbers."""
        with self._cond:
            items = list(self._inbox)
            self._inbox.clear()
            if items:
                self._cond.notify_all()
        for kind, fn, ts, pix in items:
            if fn <= self._last_fn[kind]:
                self.duplicates += 1
                continue
            self._last_fn[kind] = fn
            (self._depth if kind == "depth" else self._color).append((fn, ts, pix))
        return len(items)

    def _ended(self) -> bool:
        with self._cond:
            idle = not self._inbox and self._in_callback == 0
        return idle and self._pb.current_status() == self._rs.playback_status.stopped

    def _read(self) -> RGBDFrame | None:
        self._flowing = True
        has_color = self.color_intrinsics is not None
        while True:
            if self._drain():
                self._last_progress = time.monotonic()
            if self._depth:
                ready, color = self._pick_color(self._depth[0][1], final=False) if has_color else (True, None)
                if ready:
                    return self._emit(color)
            ended = self._ended()
            if ended:
                self._drain()
                if not self._inbox and self._in_callback == 0:
                    if not self._depth:
                        return None
                    _, color = self._pick_color(self._depth[0][1], final=True) if has_color else (True, None)
                    return self._emit(color)
            if time.monotonic() - self._last_progress > self.stall_timeout_s:
                raise InputError(
                    f"{self.path}: playback stalled for {self.stall_timeout_s:g} s after "
                    f"{self._index} frames (truncated or damaged recording?)"
                )
            with self._cond:
                if not self._inbox:
                    self._cond.wait(0.02)

    def _pick_color(self, t_depth: float, final: bool):
        """(decided, colour pixels or None): the colour frame nearest in time to the depth frame, once a
        colour frame at or after it has arrived (or the stream is over). Older colour frames are dropped."""
        c = self._color
        while len(c) >= 2 and c[1][1] <= t_depth:
            c.popleft()
        later = next((x for x in c if x[1] >= t_depth), None)
        if later is None and not final:
            return False, None
        best = min(c, key=lambda x: abs(x[1] - t_depth), default=None)
        if best is None or abs(best[1] - t_depth) > self.pair_tolerance_ms:
            return True, None
        return True, best[2]

    def _emit(self, color) -> RGBDFrame:
        fn, ts, depth = self._depth.popleft()
        if color is not None and self._align is not None:
            c_intr, rot, trans = self._align
            color = align_color_to_depth(depth, color, self.intrinsics, c_intr, rot, trans)
        if self.realtime:
            self._pacer.wait(ts)
        f = RGBDFrame(
            index=self._index,
            timestamp_ms=ts,
            depth_mm=depth,
            intrinsics=self.intrinsics,
            color_bgr=color,
            source=self.name,
            meta={"frame_number": fn},
        )
        if self.realtime:
            f.meta["t_capture_ns"] = time.perf_counter_ns()
        self._index += 1
        return f

    def lag(self) -> Lag | None:
        """Real-time mode only: how the decoding keeps up with the recording's own timestamps."""
        return self._pacer.lag() if self.realtime else None

    def _close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            deadline = time.monotonic() + 1.0
            while self._in_callback and time.monotonic() < deadline:  # let callbacks leave before stop()
                self._cond.wait(0.01)
        for s in getattr(self, "_started", []):
            try:
                s.stop()
            except RuntimeError:
                pass
        for s, _, _ in self._sensors:
            try:
                s.close()
            except RuntimeError:
                pass
        self._started = []
        self._sensors = []
        self._pb = self._dev = None
