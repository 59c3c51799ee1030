"""Timing a pipeline frame by frame: capture (the source's next frame), the pipeline's own stages, an
optional sink (encode), and end-to-end measured from outside around all of it.

End-to-end is measured here with perf_counter_ns around `next(source)` + `process(frame)` + `sink(result)`,
not taken from the pipeline's own report, so "overhead" (end-to-end minus the stages' sum) catches
whatever time the stages' own timers miss: glue, allocation, result objects, Python calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .machine import peak_rss_mb
from .stats import RunSummary, StageRecorder


@dataclass(frozen=True)
class TimedRun:
    """One timed loop: the summary, raw samples per stage (for plots), hand count and peak memory."""

    summary: RunSummary
    samples_ms: dict[str, list[float]]
    hand_frames: int
    peak_rss_mb: float

    def to_dict(self) -> dict:
        return self.summary.to_dict() | {"hand_frames": self.hand_frames, "peak_rss_mb": self.peak_rss_mb}


def _stage_ms(result) -> Mapping[str, float]:
    """A result's per-stage ms: `.stage_ms` (dict) as the runtime's FrameResult carries it."""
    st = getattr(result, "stage_ms", None)
    if st is None and isinstance(result, Mapping):
        st = result.get("stage_ms")
    return dict(st or {})


def _hand_found(result) -> bool:
    v = getattr(result, "hand_found", None)
    if v is None and isinstance(result, Mapping):
        v = result.get("hand_found")
    return bool(v)


def time_loop(
    frames: Iterator,
    process: Callable[[object], object],
    n: int,
    warmup: int,
    sink: Callable[[object, object], None] | None = None,
    dropped: Callable[[], int] | None = None,
    capture_stage: str = "capture",
    sink_stage: str = "encode",
) -> TimedRun:
    """Run `warmup` untimed frames then `n` timed ones from the `frames` iterator.

    Per frame: capture = time to get the next frame, the result's own `stage_ms`, sink = `sink(frame,
    result)` time; end-to-end = all of it. `dropped()` (if given) is read before and after the timed
    loop, so only frames dropped while timing are counted."""
    if n < 1 or warmup < 0:
        raise InputError(f"need frames >= 1 and warmup >= 0, got {n}, {warmup}")
    for _ in range(warmup):
        frame = next(frames, None)
        if frame is None:
            raise InputError(f"the source ran out during the {warmup}-frame warm-up")
        r = process(frame)
        if sink is not None:
            sink(frame, r)
    rec = StageRecorder()
    hands = 0
    d0 = dropped() if dropped else 0
    clock, cpu = time.perf_counter_ns, time.process_time_ns
    t_start = clock()
    for _ in range(n):
        c0 = cpu()
        t0 = clock()
        frame = next(frames, None)
        t1 = clock()
        if frame is None:
            break
        r = process(frame)
        t2 = clock()
        if sink is not None:
            sink(frame, r)
        t3 = clock()
        c1 = cpu()
        stages = {capture_stage: (t1 - t0) / 1e6, **_stage_ms(r)}
        if sink is not None:
            stages[sink_stage] = (t3 - t2) / 1e6
        rec.add(stages, (t3 - t0) / 1e6, (c1 - c0) / 1e6)
        hands += _hand_found(r)
    wall_s = (clock() - t_start) / 1e9
    if not len(rec):
        raise InputError("the source gave no frames to time")
    drops = (dropped() - d0) if dropped else 0
    samples = {k: list(v) for k, v in rec.stage_samples_ms.items()} | {"end_to_end": list(rec.end_to_end_ms)}
    return TimedRun(rec.summary(wall_s, drops), samples, hands, peak_rss_mb())


def cycle(frames: list) -> Iterator:
    """An endless iterator over an in-memory clip (frames re-indexed so timestamps keep increasing)."""
    if not frames:
        raise InputError("no frames to cycle")
    i = 0
    while True:
        yield frames[i % len(frames)]
        i += 1


def crops_from_frames(frames: list, size: int, cube_mm: float, limit: int = 32) -> np.ndarray:
    """Real normalized depth crops of these frames (our segmentation + cube crop), for timing engines on
    the same input as the pipeline; frames with no hand are left out, random crops if none had one."""
    from ..preprocess import HandSegmenter, crop_cube

    seg = HandSegmenter()
    out, prev = [], None
    for f in frames[: max(limit, 1) * 2]:
        if getattr(f, "depth_mm", None) is None:
            continue
        s = seg.segment(f.depth_mm, f.intrinsics, prev)
        prev = s if s.found else None
        if s.found:
            out.append(
                crop_cube(f.depth_mm, f.intrinsics, s.best.com_xyz_mm, cube_mm, size, s.best.mask).depth
            )
        if len(out) >= limit:
            break
    if not out:
        rng = np.random.default_rng(0)
        return rng.uniform(-1, 1, (4, 1, size, size)).astype(np.float32)
    return np.stack(out)[:, None].astype(np.float32)
