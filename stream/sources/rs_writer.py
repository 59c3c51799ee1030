"""Write a RealSense recording from any source, no camera needed: frames are fed to an
`rs.software_device` (a depth sensor, plus a colour sensor when the source has colour, both carrying the
source's intrinsics and depth unit) that an `rs.recorder` wraps, so the file is written by librealsense
itself and plays back anywhere librealsense does. librealsense 2.55+ writes ROS 2 `.db3` only.
"""

from __future__ import annotations

import errno
import gc
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import outputs
from ..errors import InputError
from ..frames import CameraIntrinsics, RGBDFrame
from .base import Source
from .rs_common import rs


@dataclass(frozen=True)
class RecordingInfo:
    path: Path
    frames: int
    has_color: bool
    intrinsics: CameraIntrinsics
    unreadable: int = 0  # frames the source could not read: not in the recording (it has no pixels for them)

    @property
    def frames_in(self) -> int:
        return self.frames + self.unreadable


def _rs_intrinsics(r, intr: CameraIntrinsics):
    ri = r.intrinsics()
    ri.width, ri.height = intr.width, intr.height
    ri.fx, ri.fy, ri.ppx, ri.ppy = intr.fx, intr.fy, intr.cx, intr.cy
    ri.model = r.distortion.none
    ri.coeffs = [0.0] * 5
    return ri


class _Writer:
    def __init__(
        self, out: Path, first: RGBDFrame, fps: float, compress: bool = True, shown: Path | None = None
    ) -> None:
        r = rs()
        self.r = r
        intr = first.intrinsics
        self.intr = intr
        self.unit_mm = float(intr.depth_unit_mm)
        self.dev = r.software_device()
        self.dev.register_info(r.camera_info.name, "handstream software device")
        ri = _rs_intrinsics(r, intr)
        self.depth_s = self.dev.add_sensor("Depth")
        vs = r.video_stream()
        vs.type, vs.index, vs.uid = r.stream.depth, 0, 0
        vs.width, vs.height, vs.fps, vs.bpp = intr.width, intr.height, int(round(fps)), 2
        vs.fmt, vs.intrinsics = r.format.z16, ri
        self.depth_p = r.video_stream_profile(self.depth_s.add_video_stream(vs))
        self.depth_s.add_read_only_option(r.option.depth_units, self.unit_mm / 1000.0)
        self.has_color = first.color_bgr is not None
        self.sensors = [(self.depth_s, self.depth_p)]
        if self.has_color:
            self.color_s = self.dev.add_sensor("Color")
            cs = r.video_stream()
            cs.type, cs.index, cs.uid = r.stream.color, 0, 1
            cs.width, cs.height, cs.fps, cs.bpp = intr.width, intr.height, int(round(fps)), 3
            cs.fmt, cs.intrinsics = r.format.bgr8, ri
            self.color_p = r.video_stream_profile(self.color_s.add_video_stream(cs))
            self.depth_p.register_extrinsics_to(self.color_p, _identity(r))
            self.sensors.append((self.color_s, self.color_p))
        self.dev.create_matcher(r.matchers.dlr_c if self.has_color else r.matchers.dlr)
        try:
            self.recorder = r.recorder(str(out), self.dev, bool(compress))
        except RuntimeError as exc:
            if outputs.out_of_space(out, outputs.FULL_AFTER_FAILURE_BYTES):
                raise outputs.writing_failed(shown or out, os.strerror(errno.ENOSPC)) from None
            raise InputError(f"cannot record to {shown or out}: {str(exc).splitlines()[0]}") from None
        self.sink = r.frame_queue(4)
        for s, p in self.sensors:
            s.open(p)
            s.start(self.sink)
        self.n = 0

    def write(self, f: RGBDFrame) -> None:
        if f.intrinsics != self.intr:
            raise InputError(
                f"frame {f.index}: intrinsics changed mid-stream ({f.intrinsics} vs {self.intr})"
            )
        if f.depth_mm is None:
            raise InputError(
                f"frame {f.index} has no depth; a RealSense recording needs depth in every frame"
            )
        d = f.depth_mm
        if d.dtype == np.uint16 and self.unit_mm == 1.0:
            raw = np.ascontiguousarray(d)
        else:
            raw = np.clip(np.rint(np.asarray(d, np.float64) / self.unit_mm), 0, 65535).astype(np.uint16)
        number = self.n + 1
        self._push(self.depth_s, self.depth_p, raw, 2, number, f.timestamp_ms)
        if self.has_color:
            c = f.color_bgr if f.color_bgr is not None else np.zeros((*d.shape, 3), np.uint8)
            self._push(self.color_s, self.color_p, np.ascontiguousarray(c), 3, number, f.timestamp_ms)
        while self.sink.poll_for_frame():
            pass
        self.n += 1

    def _push(self, sensor, profile, pixels: np.ndarray, bpp: int, number: int, ts_ms: float) -> None:
        r = self.r
        sf = r.software_video_frame()
        sf.pixels = pixels
        sf.stride = pixels.shape[1] * bpp
        sf.bpp = bpp
        sf.timestamp = float(ts_ms)
        sf.domain = r.timestamp_domain.hardware_clock
        sf.frame_number = number
        sf.profile = profile
        sensor.on_video_frame(sf)

    def close(self) -> None:
        for s, _ in self.sensors:
            s.stop()
        for s, _ in self.sensors:
            s.close()
        while self.sink.poll_for_frame():
            pass
        # the file is finalized when the recorder (and the device it wraps) are destroyed
        self.sensors = []
        self.depth_s = self.color_s = self.depth_p = self.color_p = None
        self.recorder = None
        self.dev = None
        gc.collect()


def _identity(r):
    e = r.extrinsics()
    e.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    e.translation = [0.0, 0.0, 0.0]
    return e


def write_recording(
    source: Source, out: str | Path, max_frames: int | None = None, progress=None, compress: bool = True
) -> RecordingInfo:
    """Play `source` (every frame, in order) into a new RealSense recording `out` (.db3). Frames the source
    could not read are left out and counted in `RecordingInfo.unreadable`.

    `compress` is librealsense's own choice (lz4, its default): files ~3x smaller, but playback then costs
    ~3x the CPU -- 7.5 vs 2.3 ms per 640x480 depth + colour frame here, on librealsense's reader thread,
    which on a 2-core machine is the pipeline's neighbour. Both play back identically (lossless)."""
    out = Path(out)
    if out.suffix.lower() != ".db3":
        raise InputError(
            f"{out.name}: librealsense writes recordings as .db3 (ROS 2); it reads .bag but no longer writes it"
        )
    outputs.prepare_file(out, "recording")
    dest = outputs.regular_destination(out, "recording")
    # librealsense writes a temporary file beside the output, renamed over it once complete and verified:
    # a failed run (a bad source, a full disk) leaves an existing recording untouched
    tmp = outputs.temporary_beside(dest)
    tmp.unlink()  # the recorder creates its file itself
    writer = None
    first_intr = None
    has_color = False
    finished = False  # True: the source ended or max_frames; None: interrupted, keep the frames so far
    unreadable = 0
    try:
        with source:
            for f in source:
                if not f.readable:  # nothing to write: counted, and the caller says "N of M readable"
                    unreadable += 1
                    continue
                if writer is None:
                    writer = _Writer(tmp, f, source.fps or 30.0, compress, shown=out)
                    first_intr, has_color = f.intrinsics, writer.has_color
                writer.write(f)
                if progress is not None:
                    progress(writer.n)
                if max_frames is not None and writer.n >= max_frames:
                    break
        finished = True
    except KeyboardInterrupt:
        finished = None
        raise
    finally:
        n = writer.n if writer is not None else 0
        if writer is not None:
            writer.close()
        # Ctrl-C / SIGTERM keep the frames recorded so far: as many as the file holds, since the signal can
        # land between a frame reaching the recorder and its being counted
        held = _depth_frames(tmp) if finished is None and n > 0 else 0
        if isinstance(held, int) and held > 0:
            outputs.commit(tmp, dest, out)
        elif not finished:
            outputs.discard(tmp)
    if n == 0:
        outputs.discard(tmp)
        raise InputError(f"the source {source.name} gave no frames; nothing recorded")
    problem = _recording_problem(tmp, n)
    if problem is not None:
        full = outputs.out_of_space(tmp, outputs.FULL_AFTER_FAILURE_BYTES)
        outputs.discard(tmp)
        raise outputs.writing_failed(out, os.strerror(errno.ENOSPC) if full else problem)
    outputs.commit(tmp, dest, out)
    return RecordingInfo(out, n, has_color, first_intr, unreadable)


def _depth_frames(path: Path) -> int | str:
    """How many depth images the .db3 (an SQLite file) holds, or why it cannot be read."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (n,) = con.execute(
                "SELECT count(*) FROM messages m JOIN topics t ON m.topic_id = t.id "
                "WHERE t.name LIKE '%/Depth_0/image/data%'"
            ).fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        return f"the recording is unreadable ({exc})"
    return int(n)


def _recording_problem(path: Path, frames: int) -> str | None:
    """None when the .db3 holds `frames` depth images, else what is wrong. librealsense reports no write
    error (a full disk gave a short file it then could not play), so it is read back."""
    n = _depth_frames(path)
    if isinstance(n, str):
        return n
    if n != frames:
        return f"the recording holds {n} of {frames} frames"
    return None
