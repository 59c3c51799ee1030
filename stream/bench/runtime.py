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

from ..errors import InputError
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

        stage = {}
        t0 = time.perf_counter_ns()
        seg = self.segmenter.segment(frame.depth_mm, frame.intrinsics, self.prev)
        self.prev = seg if seg.found else None
        crop = None
        if seg.found:
            b = seg.best
            crop = crop_cube(frame.depth_mm, frame.intrinsics, b.com_xyz_mm, self.cube_mm, self.size, b.mask)
        t1 = time.perf_counter_ns()
        stage["preprocess"] = (t1 - t0) / 1e6
        if crop is not None:
            self.engine.infer(crop.depth[None, None])
            stage["pose"] = (time.perf_counter_ns() - t1) / 1e6
        return {"stage_ms": stage, "hand_found": crop is not None}


def pose_path_run(clip, engine: str, threads: int, n: int, warmup: int) -> tuple[TimedRun, dict]:
    """Time the default pose path on the clip; returns the run and what was timed."""
    rt = _runtime()
    if rt is not None:
        pipe = _build(rt, engine, threads, overlay=False)
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
        "description": "segment + cube crop + pose engine from the stage modules (stream.pipeline absent: no smoothing)",
    }


def replay_run(clip, engine: str, threads: int, n: int, warmup: int) -> tuple[TimedRun, dict]:
    """A replay with overlay and mp4 encoding through the runtime (needs stream.pipeline)."""
    rt = _runtime()
    if rt is None:
        raise InputError("stream.pipeline (the runtime) is not available yet")
    raise InputError("replay wiring waits for the runtime's sink API")


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
