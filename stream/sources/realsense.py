"""A live Intel RealSense camera through pyrealsense2: depth + colour aligned to depth (rs.align), the
resolution and rate asked for, intrinsics and depth unit read from the device, the camera's timestamps.

A missing camera is a one-line error at open; a camera that stops delivering (unplugged) is a one-line
error after `timeout_ms` (try_wait_for_frames), never a hang. The pipeline is stopped -- the camera
released -- on close, which the capture thread guarantees on every way out.
"""

from __future__ import annotations

import time

from ..errors import InputError
from ..frames import RGBDFrame
from .base import Lag, LagMeter, Source
from .rs_common import color_to_bgr, depth_to_mm, intrinsics_from_rs, rs


class RealSenseSource(Source):
    live = True

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        serial: str | None = None,
        timeout_ms: int = 5000,
        color: bool = True,
    ) -> None:
        super().__init__()
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.serial = serial
        self.timeout_ms = int(timeout_ms)
        self.want_color = color
        self.name = f"realsense{':' + serial if serial else ''}"
        self._pipe = None
        self._align = None
        self._i = 0
        self._meter = LagMeter()

    def _open(self) -> None:
        r = rs()
        ctx = r.context()
        devices = list(ctx.query_devices())
        if not devices:
            raise InputError(
                "no RealSense camera found: is it plugged in (USB 3) and not used by another program?"
            )
        serials = [d.get_info(r.camera_info.serial_number) for d in devices]
        if self.serial and self.serial not in serials:
            raise InputError(
                f"no RealSense camera with serial {self.serial}; connected: {', '.join(serials)}"
            )
        fps = int(round(self.fps))
        last_err = ""
        for with_color in (True, False) if self.want_color else (False,):
            pipe = r.pipeline(ctx)
            cfg = r.config()
            if self.serial:
                cfg.enable_device(self.serial)
            cfg.enable_stream(r.stream.depth, self.width, self.height, r.format.z16, fps)
            if with_color:
                cfg.enable_stream(r.stream.color, self.width, self.height, r.format.bgr8, fps)
            try:
                profile = pipe.start(cfg)
            except RuntimeError as exc:
                last_err = str(exc).splitlines()[0]
                continue
            self._pipe = pipe
            break
        if self._pipe is None:
            raise InputError(
                f"the RealSense camera cannot stream depth {self.width}x{self.height} @ {fps} fps ({last_err})"
            )
        dev = profile.get_device()
        self.name = (
            f"realsense {dev.get_info(r.camera_info.name)} {dev.get_info(r.camera_info.serial_number)}"
        )
        unit_mm = dev.first_depth_sensor().get_depth_scale() * 1000.0
        dprof = profile.get_stream(r.stream.depth).as_video_stream_profile()
        self.intrinsics = intrinsics_from_rs(dprof.get_intrinsics(), unit_mm, name="realsense")
        self._unit_mm = self.intrinsics.depth_unit_mm
        self._align = r.align(r.stream.depth) if with_color else None
        self._rs = r

    def _read(self) -> RGBDFrame | None:
        r = self._rs
        ok, fs = self._pipe.try_wait_for_frames(self.timeout_ms)
        if not ok:
            raise InputError(
                f"no frames from the RealSense camera for {self.timeout_ms / 1000:g} s (unplugged or stalled?)"
            )
        t_now_ns, wall_ms = time.perf_counter_ns(), time.time() * 1000.0
        if self._align is not None:
            fs = self._align.process(fs)
        d = fs.get_depth_frame()
        if not d:
            return self._read()
        import numpy as np

        depth = depth_to_mm(np.asanyarray(d.get_data()), self._unit_mm)
        color = None
        c = fs.get_color_frame() if self._align is not None else None
        if c:
            color = color_to_bgr(np.asanyarray(c.get_data()), str(c.get_profile().format()))
        ts = float(d.get_timestamp())
        f = RGBDFrame(
            index=self._i,
            timestamp_ms=ts,
            depth_mm=depth,
            intrinsics=self.intrinsics,
            color_bgr=color,
            source=self.name,
            meta={"frame_number": int(d.get_frame_number())},
        )
        # glass-to-result latency: global_time stamps are host-clock ms, so the capture moment is known
        if d.get_frame_timestamp_domain() == r.timestamp_domain.global_time:
            f.meta["t_capture_ns"] = t_now_ns - int(max(0.0, wall_ms - ts) * 1e6)
        else:
            f.meta["t_capture_ns"] = t_now_ns
        self._meter.observe(ts, t_now_ns, f.meta["frame_number"])
        self._i += 1
        return f

    def lag(self) -> Lag | None:
        """The camera paces itself; frames it delivered that we never read show as `skipped`."""
        return self._meter.lag()

    def _close(self) -> None:
        if self._pipe is not None:
            try:
                self._pipe.stop()
            except RuntimeError:
                pass
            self._pipe = None
