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

Damaged recordings. librealsense stops playback at the first message it cannot decode (it logs "Failed to
read next frame" and reports `stopped`, or stays `paused` after a seek), so a file with one garbled depth
message used to end after the frames before it, silently. For a `.db3` we read the rosbag2 SQLite
`messages` table ourselves (`depth_index`): it gives the expected number of depth frames up front
(`frame_count`) and, from each frame's metadata message, its frame number and timestamp. When playback
stops before the last depth message, the next expected one is emitted as an unreadable frame
(`RGBDFrame.unreadable`), the sensors are restarted and playback is sought to the message after it; a
frame number that arrives beyond the next expected one marks the ones in between unreadable too. So every
depth message gives exactly one frame, readable or not, and the run can say "N of M frames readable".
What librealsense 2.59 allows here, found by trying: `seek()` has no effect once playback has stopped
(restarting the sensors is needed); a seek to T first replays each stream's last frame before T (a
duplicate we drop) and then skips the first message after T (so the colour frame of the depth frame after
the damaged one is usually lost: that depth frame then carries a colour frame only within half a frame
interval of it, not a neighbour's); a seek landing on a damaged message makes playback start over from the
beginning (seen at the first replayed frame: that message is reported unreadable and playback restarts
past it, instead of replaying everything before it) or stay `paused`. A damaged colour message stops
playback too: the depth frame after it is then reported unreadable.
A `.bag` (ROS 1) has no such table here: its frame count is unknown and playback ends where librealsense
stops.

Real-time mode (`realtime=True`) is deliberately NOT librealsense's set_real_time(True): that paces by the
time each message was written, which for recordings made by `handstream record` (no camera) is the
writing speed, not the capture rate. We read losslessly and pace by the frames' own (camera) timestamps;
the source is then "live", so the capture thread keeps only the newest frames and counts the dropped.

`color=False` (or `want_color` set False before opening) leaves the colour stream closed: librealsense then
decompresses depth only, about a third of the decoding CPU of depth + colour, which a 2-core machine's
pipeline thread otherwise shares its core's time and caches with.
"""

from __future__ import annotations

import datetime
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..frames import RGBDFrame
from .base import Lag, Pacer, Source
from .rs_common import align_color_to_depth, color_to_bgr, depth_to_mm, intrinsics_from_rs, rs


@dataclass(frozen=True)
class DepthMessage:
    """One depth image message of a .db3: when it was written (the bag's clock, ns from the first message)
    and, from its metadata message, the frame number and camera timestamp (None where unreadable)."""

    t_ns: int
    frame_number: int | None
    timestamp_ms: float | None


def depth_index(path: str | Path) -> list[DepthMessage] | None:
    """Every depth image message of a rosbag2 .db3, in playback order; None where the file is not a
    readable rosbag2 SQLite database (librealsense then has the last word). Reads only the table and the
    small metadata messages, not the images."""
    try:
        con = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        topics = dict(con.execute("SELECT name, id FROM topics").fetchall())
        data = sorted(n for n in topics if "/Depth_" in n and "/image/data" in n)
        if not data:
            return []
        meta_name = data[0].split("/image/data")[0] + "/image/metadata"
        (t0,) = con.execute("SELECT MIN(timestamp) FROM messages").fetchone()
        rows = con.execute(
            "SELECT timestamp FROM messages WHERE topic_id = ? ORDER BY timestamp, id", (topics[data[0]],)
        ).fetchall()
        meta = {}
        if meta_name in topics:
            meta = dict(
                con.execute(
                    "SELECT timestamp, data FROM messages WHERE topic_id = ?", (topics[meta_name],)
                ).fetchall()
            )
    except sqlite3.Error:
        return None
    finally:
        con.close()
    out = []
    for (t,) in rows:
        fn, ts = _parse_metadata(meta.get(t))
        out.append(DepthMessage(int(t) - int(t0 or 0), fn, ts))
    return out


def _parse_metadata(blob: bytes | None) -> tuple[int | None, float | None]:
    """librealsense's frame metadata message (a CDR string "Frame number=30;...;timestamp=966.67;...") ->
    (frame number, timestamp ms); (None, None) where it is missing or garbled."""
    if not blob:
        return None, None
    fields = {}
    for part in bytes(blob[8:]).decode("latin-1").rstrip("\x00").split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    try:
        fn = int(fields["Frame number"])
    except (KeyError, ValueError):
        fn = None
    try:
        ts = float(fields["timestamp"])
    except (KeyError, ValueError):
        ts = None
    return fn, ts


class RecordingSource(Source):
    name = "recording"

    def __init__(
        self,
        path: str | Path,
        realtime: bool = False,
        stall_timeout_s: float = 5.0,
        buffer_frames: int = 8,
        pair_tolerance_ms: float = 40.0,
        color: bool = True,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.want_color = bool(color)
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
        self.restarts = 0  # times playback was restarted past a message librealsense could not read
        self._messages: list[DepthMessage] | None = None
        self._pos_by_fn: dict[int, int] = {}
        self._next_pos = 0  # the depth message the next emitted frame stands for
        self._last_ts = 0.0
        self._resumed_at = self._last_progress = time.monotonic()
        self._sought: int | None = None  # the position a restart sought to, until a frame at or after it
        self._fell_back = False  # that seek failed: playback started over from the beginning
        self._after_seek = False  # until the first frame after a restart is emitted

    # ---- opening ----
    def _open(self) -> None:
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such recording")
        if self.path.stat().st_size == 0:
            raise InputError(f"{self.path}: empty file, not a RealSense recording")
        if self.path.suffix.lower() == ".db3":
            self._messages = depth_index(self.path)
            if self._messages is not None and not self._messages:
                raise InputError(f"{self.path}: the recording holds no depth frames")
        if self._messages is not None:
            self.frame_count = len(self._messages)
            self._pos_by_fn = {
                m.frame_number: i for i, m in enumerate(self._messages) if m.frame_number is not None
            }
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
                elif st == r.stream.color and color_p is None and self.want_color:
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
            try:
                ext = depth_p.get_extrinsics_to(color_p)
            except RuntimeError as exc:
                raise InputError(
                    f"{self.path}: librealsense cannot read the depth-to-colour extrinsics "
                    f"({str(exc).splitlines()[0]}); truncated or damaged recording"
                ) from None
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
        self._start_sensors()

    def _start_sensors(self, seek_ns: int | None = None) -> None:
        """Open and start every sensor with playback paused (nothing may play before every sensor listens,
        else the first frames are skipped), optionally seek, then resume."""
        pb = self._pb
        pb.pause()
        started = []
        try:
            for s, p, _ in self._sensors:
                s.open(p)
                s.start(self._callback)
                started.append(s)
            if seek_ns is not None:
                pb.seek(datetime.timedelta(microseconds=seek_ns // 1000 + 1))
        except RuntimeError as exc:
            self._started = started
            self._close()
            raise InputError(f"{self.path}: cannot play it ({str(exc).splitlines()[0]})") from None
        self._started = started
        self._last_progress = time.monotonic()
        self._resumed_at = time.monotonic()
        pb.resume()

    def _restart_after_damage(self, pos: int) -> None:
        """Playback stopped at a message librealsense could not read (or a seek fell back to the start):
        stop the sensors (a stopped playback ignores seek), forget what is in flight, and start them again,
        sought so that depth message `pos` plays first."""
        self._quiesce()
        self._stop_sensors()
        with self._cond:
            self._inbox.clear()
            self._closing = False
        self._depth.clear()
        self.restarts += 1
        self._sought, self._fell_back, self._after_seek = pos, False, True
        self._start_sensors(seek_ns=self._messages[pos].t_ns)

    def _quiesce(self) -> None:
        """Make the callbacks drop what they deliver and wait until none is running (one blocked on a full
        buffer while sensor.stop() waits for it would deadlock both)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            deadline = time.monotonic() + 1.0
            while self._in_callback and time.monotonic() < deadline:
                self._cond.wait(0.01)

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
                if kind == "depth" and self._sought is not None:
                    self._fell_back |= self._pos_by_fn.get(fn, self._sought) < self._sought - 1
                continue
            self._last_fn[kind] = fn
            (self._depth if kind == "depth" else self._color).append((fn, ts, pix))
        return len(items)

    def _ended(self) -> bool:
        """Playback has stopped delivering: `stopped` (the end, or a message it could not read), or
        `paused` a while after we resumed it (what a read error after a seek leaves)."""
        with self._cond:
            idle = not self._inbox and self._in_callback == 0
        if not idle:
            return False
        status = self._pb.current_status()
        if status == self._rs.playback_status.stopped:
            return True
        quiet_s = time.monotonic() - max(self._last_progress, self._resumed_at)
        return status == self._rs.playback_status.paused and quiet_s > 0.25

    def _read(self) -> RGBDFrame | None:
        self._flowing = True
        has_color = self.color_intrinsics is not None
        while True:
            if self._drain():
                self._last_progress = time.monotonic()
            gap = self._gap_before_head()
            if gap is not None:
                return gap
            if self._depth:
                ready, color = self._pick_color(self._depth[0][1], final=False) if has_color else (True, None)
                if ready:
                    return self._emit(color)
            ended = self._ended()
            if ended:
                self._drain()
                if not self._inbox and self._in_callback == 0:
                    if not self._depth:
                        return self._unread_message()
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
        tolerance = self.pair_tolerance_ms
        if self._after_seek:  # its own colour frame is usually the one the seek skipped: not a neighbour's
            tolerance = min(tolerance, 500.0 / (self.fps or 30.0))
        if best is None or abs(best[1] - t_depth) > tolerance:
            return True, None
        return True, best[2]

    def _gap_before_head(self) -> RGBDFrame | None:
        """Where the message table is known: drop a depth frame that stands for a message already emitted
        (replayed after a seek), report the messages before the head frame that never arrived, and give up
        on a seek that made playback start over."""
        if self._messages is None:
            return None
        if self._fell_back:
            # a seek replays at most the frame before its target: an older one means the seek landed on a
            # damaged message and playback started over; do not wait for it to replay everything
            return self._unread_message()
        while self._depth:
            pos = self._pos_by_fn.get(self._depth[0][0], self._next_pos)
            if pos < self._next_pos:
                self._depth.popleft()
                self.duplicates += 1
                continue
            self._sought = None
            if pos > self._next_pos:
                return self._unreadable_here("librealsense playback skipped it")
            return None
        return None

    def _unread_message(self) -> RGBDFrame | None:
        """Playback stopped with nothing left to emit (or a seek fell back to the start). Before the last
        depth message of the table that means librealsense could not read the next one: it becomes an
        unreadable frame and playback restarts after it. None at the true end."""
        if self._messages is None or self._next_pos >= len(self._messages):
            return None
        f = self._unreadable_here("librealsense cannot read its messages (damaged recording)")
        if self._next_pos < len(self._messages):
            self._restart_after_damage(self._next_pos)
        return f

    def _unreadable_here(self, reason: str) -> RGBDFrame:
        m = self._messages[self._next_pos]
        ts = m.timestamp_ms
        if ts is None:  # its metadata is damaged too: one frame interval after the previous frame
            ts = self._last_ts + 1000.0 / (self.fps or 30.0)
        f = RGBDFrame.unreadable(
            self._index,
            ts,
            self.intrinsics,
            self.name,
            f"depth message {self._next_pos + 1} of {len(self._messages)}: {reason}",
            meta={"frame_number": m.frame_number} if m.frame_number is not None else None,
        )
        self._index += 1
        self._next_pos += 1
        self._last_ts = ts
        return f

    def _emit(self, color) -> RGBDFrame:
        fn, ts, depth = self._depth.popleft()
        self._next_pos += 1
        self._after_seek = False
        self._last_ts = ts
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
        self._quiesce()  # let callbacks leave before stop()
        self._stop_sensors()
        self._sensors = []
        self._pb = self._dev = None

    def _stop_sensors(self) -> None:
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
