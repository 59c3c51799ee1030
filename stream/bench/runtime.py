"""The pipeline under test: the runtime's own `stream.pipeline` when it is there, timed by time_loop.

`pose_path_run` times the default pose path (preprocess + pose engine + smoothing; no overlay, no sink)
and `replay_run` a replay with overlay drawing and mp4 encoding. Both build the pipeline through the
runtime's public `build_pipeline(...)`, so what is measured is what a user runs.

Where the runtime is absent (stream.pipeline not importable), `pose_path_run` falls back to composing
the stages the runtime is made of, called the same way, in `StagePath` below, and the report says so
("path": "stages"); it is a stand-in for measuring preprocessing and the engine, not a second runtime.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HandstreamError, InputError
from .pipeline_timing import TimedRun, cycle, time_loop


def _runtime():
    """stream.pipeline, or None when the runtime is not installed/written yet."""
    try:
        from .. import pipeline
    except ImportError:
        return None
    return pipeline if hasattr(pipeline, "build_pipeline") else None


def _build(rt, engine: str, threads: int, overlay: bool):
    """build_pipeline with the options this bench controls, passing only those it accepts."""
    fn = rt.build_pipeline
    params = inspect.signature(fn).parameters
    wanted = {
        "backend": "onnxruntime",
        "models": engine,
        "engine": engine,
        "pose_engine": engine,
        "threads": threads,
        "overlay": overlay,
    }
    accepts_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in wanted.items() if k in params or (accepts_kw and k in ("backend", "overlay"))}
    return fn(**kwargs)


@dataclass
class StagePath:
    """Fallback default pose path from the stage modules: segment -> cube crop -> pose engine.

    Mirrors the runtime's call sequence (previous segmentation fed back as the tracking hint); it has no
    smoothing stage because smoothing belongs to the runtime."""

    engine: object
    cube_mm: float
    size: int

    def __post_init__(self) -> None:
        from ..preprocess import HandSegmenter

        self.segmenter = HandSegmenter()
        self.prev = None

    def process(self, frame) -> dict:
        from ..preprocess import crop_cube

        stage: dict[str, float] = {}
        t0 = time.perf_counter_ns()
        seg = self.segmenter.segment(frame.depth_mm, frame.intrinsics, self.prev)
        self.prev = seg if seg.found else None
        crop = None
        if seg.found:
            b = seg.best
            crop = crop_cube(frame.depth_mm, frame.intrinsics, b.com_xyz_mm, self.cube_mm, self.size, b.mask)
        t1 = time.perf_counter_ns()
        stage["preprocess"] = (t1 - t0) / 1e6
        joints = None
        if crop is not None:
            out = self.engine.infer(crop.depth[None, None])
            joints = next(iter(out.values())).reshape(-1, 3)
            stage["pose"] = (time.perf_counter_ns() - t1) / 1e6
        return {"stage_ms": stage, "hand_found": crop is not None, "crop": crop, "joints": joints}


@dataclass
class StandInReplay:
    """Fallback replay sink: draws the joints and cube window with OpenCV on the colour (or depth) image
    and encodes it with OpenCV's mp4v VideoWriter. The encoder is the real cost; the drawing stands in
    for the runtime's overlay, which does more (skeleton, labels), until the runtime lands."""

    path: str
    width: int
    height: int
    fps: float = 30.0

    def __post_init__(self) -> None:
        import cv2

        self.writer = cv2.VideoWriter(
            self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (self.width, self.height)
        )
        if not self.writer.isOpened():
            raise InputError(f"OpenCV cannot write mp4 to {self.path}")
        self.overlay_ms: list[float] = []

    def __call__(self, frame, result: dict) -> None:
        import cv2

        from ..geometry import xyz_to_uvd
        from ..preprocess import denormalize_joints

        t0 = time.perf_counter_ns()
        if frame.color_bgr is not None:
            img = frame.color_bgr.copy()
        else:
            d = np.clip(np.asarray(frame.depth_mm, np.float32) * (255.0 / 2000.0), 0, 255).astype(np.uint8)
            img = cv2.cvtColor(d, cv2.COLOR_GRAY2BGR)
        crop = result.get("crop")
        if crop is not None and result.get("joints") is not None:
            uvd = xyz_to_uvd(denormalize_joints(result["joints"], crop), frame.intrinsics)
            for u, v in np.nan_to_num(uvd[:, :2]).astype(int):
                cv2.circle(img, (int(u), int(v)), 3, (0, 255, 0), -1)
            u0, v0, u1, v1 = (int(round(x)) for x in crop.window_uv)
            cv2.rectangle(img, (u0, v0), (u1, v1), (255, 128, 0), 1)
        t1 = time.perf_counter_ns()
        self.writer.write(img)
        self.overlay_ms.append((t1 - t0) / 1e6)

    def close(self) -> None:
        self.writer.release()


def pose_path_run(clip, engine: str, threads: int, n: int, warmup: int) -> tuple[TimedRun, dict]:
    """Time the default pose path on the clip; returns the run and what was timed.

    Through `stream.pipeline.build_pipeline` when the runtime exists; if it is absent, or its builder does
    not take the options this adapter passes (an API still in flux), through `StagePath`, and the report
    says which and why."""
    rt = _runtime()
    why_not = "stream.pipeline absent"
    if rt is not None:
        try:
            pipe = _build(rt, engine, threads, overlay=False)
        except (TypeError, HandstreamError) as exc:
            why_not = f"stream.pipeline.build_pipeline failed here: {str(exc).splitlines()[0]}"
        else:
            try:
                run = time_loop(cycle(clip.frames), pipe.process, n, warmup, dropped=_drops(pipe))
            finally:
                _close(pipe)
            return run, {"path": "stream.pipeline", "description": "preprocess + pose engine + smoothing"}
    import engines

    eng = engines.load_engine(engine, backend="onnxruntime", threads=threads)
    try:
        path = StagePath(
            eng, float(eng.manifest.preprocessing.get("cube_mm", 250.0)), int(eng.manifest.crop_size)
        )
        run = time_loop(cycle(clip.frames), path.process, n, warmup)
    finally:
        eng.close()
    return run, {
        "path": "stages",
        "description": f"segment + cube crop + pose engine from the stage modules ({why_not}: no smoothing)",
    }


def replay_run(clip, engine: str, threads: int, n: int, warmup: int) -> tuple[TimedRun, dict]:
    """A replay with overlay and mp4 encoding (written to a temporary file, size reported).

    Not yet through the runtime's overlay/sinks (their API had not landed): StagePath + StandInReplay."""
    import tempfile

    import engines

    f0 = clip.frames[0]
    eng = engines.load_engine(engine, backend="onnxruntime", threads=threads)
    with tempfile.TemporaryDirectory(prefix="handstream-bench-") as tmp:
        out = Path(tmp) / "replay.mp4"
        sink = StandInReplay(str(out), f0.intrinsics.width, f0.intrinsics.height)
        try:
            path = StagePath(
                eng, float(eng.manifest.preprocessing.get("cube_mm", 250.0)), int(eng.manifest.crop_size)
            )
            run = time_loop(
                cycle(clip.frames), path.process, n, warmup, sink=sink, sink_stage="overlay+encode"
            )
        finally:
            sink.close()
            eng.close()
        size = out.stat().st_size if out.is_file() else 0
    overlay = np.asarray(sink.overlay_ms[warmup:] or [0.0])
    return run, {
        "path": "stages + stand-in overlay",
        "description": "segment + cube crop + pose engine, OpenCV joints/window drawing and mp4v encoding "
        "(a stand-in for the runtime's overlay and sink)",
        "overlay_draw_p50_ms": float(np.median(overlay)),
        "video_bytes": int(size),
    }


def _drops(pipe):
    for name in ("dropped_frames", "dropped"):
        v = getattr(pipe, name, None)
        if callable(v):
            return v
        if isinstance(v, int):
            return lambda: int(getattr(pipe, name))
    return None


def _close(pipe) -> None:
    close = getattr(pipe, "close", None)
    if callable(close):
        close()
