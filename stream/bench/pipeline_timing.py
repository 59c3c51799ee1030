"""Timing a pipeline frame by frame from outside: the pipeline's own stages, an optional sink, and
end-to-end measured around `process(frame)` + `sink(...)`.

End-to-end starts when the frame is in hand (taken off the capture queue, as the runtime's replay latency
does) and is measured here with perf_counter_ns, not taken from the pipeline's own report, so "overhead"
(end-to-end minus the stages' sum) catches whatever the stages' timers miss: glue, result objects, calls.
Time spent waiting for the next frame is kept apart ("off path"): it is the source's pace, not latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError
from .machine import peak_rss_mb
from .stats import RunSummary, StageRecorder, summarize

WAIT_KEY = "wait for next frame"


@dataclass(frozen=True)
class TimedRun:
    """One timed loop: the summary, raw samples per stage (for plots), hand count and peak memory.
    `off_path_ms`: per-frame times that are not on the timed path (capture thread, waiting for a frame)."""

    summary: RunSummary
    samples_ms: dict[str, list[float]]
    hand_frames: int
    peak_rss_mb: float
    off_path_ms: dict[str, list[float]] = field(default_factory=dict)

    def with_off_path(self, extra: Mapping[str, list[float]]) -> TimedRun:
        return replace(self, off_path_ms=self.off_path_ms | {k: list(v) for k, v in extra.items() if len(v)})

    def to_dict(self) -> dict:
        off = {k: summarize(v).to_dict() for k, v in self.off_path_ms.items() if len(v)}
        return self.summary.to_dict() | {
            "off_path_ms": off,
            "hand_frames": self.hand_frames,
            "peak_rss_mb": self.peak_rss_mb,
        }


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
    sink_stage: str = "encode",
) -> TimedRun:
    """Run `warmup` untimed frames then `n` timed ones from the `frames` iterator.

    Per frame: the result's own `stage_ms`, sink = `sink(frame, result)` time, end-to-end = process +
    sink from outside; the wait for the next frame goes to `off_path_ms`. `dropped()` (if given) is read
    before and after the timed loop, so only frames dropped while timing are counted."""
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
    waits: list[float] = []
    hands = 0
    d0 = dropped() if dropped else 0
    # CPU time of this (the pipeline's) thread only: the capture thread decodes in parallel, and on a
    # shared VM the wall time also holds waits for a core, which this figure does not
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    t_start = clock()
    for _ in range(n):
        t0 = clock()
        frame = next(frames, None)
        t1 = clock()
        if frame is None:
            break
        c0 = cpu()
        r = process(frame)
        t2 = clock()
        if sink is not None:
            sink(frame, r)
        t3 = clock()
        c1 = cpu()
        stages = _stage_ms(r)
        if sink is not None:
            stages[sink_stage] = (t3 - t2) / 1e6
        rec.add(stages, (t3 - t1) / 1e6, (c1 - c0) / 1e6)
        waits.append((t1 - t0) / 1e6)
        hands += _hand_found(r)
    wall_s = (clock() - t_start) / 1e9
    if not len(rec):
        raise InputError("the source gave no frames to time")
    drops = (dropped() - d0) if dropped else 0
    samples = {k: list(v) for k, v in rec.stage_samples_ms.items()} | {"end_to_end": list(rec.end_to_end_ms)}
    return TimedRun(rec.summary(wall_s, drops), samples, hands, peak_rss_mb(), {WAIT_KEY: waits})


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
