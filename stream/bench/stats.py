"""Latency statistics: percentiles of per-frame samples in milliseconds, and per-stage recording.

Percentiles use numpy's default linear interpolation between order statistics (type 7 of Hyndman & Fan),
so a p99 of 100 samples is not simply the 99th value. Keys in the dicts are `p50`/`p95`/`p99`; the enclosing
JSON key carries the unit (`end_to_end_ms`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError

PERCENTILES: tuple[int, ...] = (50, 95, 99)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of a latency sample set in ms (the containing key says `_ms`)."""

    n: int
    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples_ms: Iterable[float]) -> LatencyStats:
    """p50/p95/p99, mean, min, max of a non-empty set of finite samples."""
    a = np.asarray(list(samples_ms) if not isinstance(samples_ms, np.ndarray) else samples_ms, np.float64)
    a = a.reshape(-1)
    if a.size == 0:
        raise InputError("no latency samples to summarize")
    if not np.all(np.isfinite(a)):
        raise InputError("latency samples must be finite")
    p50, p95, p99 = (float(v) for v in np.percentile(a, PERCENTILES))
    return LatencyStats(
        n=int(a.size),
        p50=p50,
        p95=p95,
        p99=p99,
        mean=float(a.mean()),
        min=float(a.min()),
        max=float(a.max()),
    )


@dataclass
class StageRecorder:
    """Collects per-frame stage times and end-to-end times of one benchmark run.

    A stage missing from a frame (e.g. the engine is skipped when no hand was found) simply contributes no
    sample to that stage; the per-frame stage sum counts the stages the frame did run. Mutable on purpose:
    it is filled frame by frame inside a timed loop, then frozen into a `RunSummary` by `summary()`.
    """

    stage_samples_ms: dict[str, list[float]] = field(default_factory=dict)
    end_to_end_ms: list[float] = field(default_factory=list)
    stage_sum_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)

    def add(self, stage_ms: Mapping[str, float], end_to_end_ms: float, cpu_ms: float | None = None) -> None:
        """One frame: its stages' ms, its wall end-to-end ms and (optionally) the process CPU ms it used."""
        if cpu_ms is not None:
            self.cpu_ms.append(float(cpu_ms))
        total = 0.0
        for name, ms in stage_ms.items():
            self.stage_samples_ms.setdefault(name, []).append(float(ms))
            total += float(ms)
        self.stage_sum_ms.append(total)
        self.end_to_end_ms.append(float(end_to_end_ms))

    def __len__(self) -> int:
        return len(self.end_to_end_ms)

    def summary(self, wall_s: float, dropped_frames: int = 0) -> RunSummary:
        return summarize_run(
            self.stage_samples_ms,
            self.end_to_end_ms,
            self.stage_sum_ms,
            wall_s,
            dropped_frames,
            self.cpu_ms if len(self.cpu_ms) == len(self.end_to_end_ms) else None,
        )


@dataclass(frozen=True)
class RunSummary:
    """Everything one timed loop measured. `overhead_fraction` is median per-frame overhead (end-to-end
    minus the stages' sum) over the median stage sum: the share of time spent between stages.
    `end_to_end_cpu_ms` is the process CPU time per frame: on a shared, oversubscribed VM the wall time
    includes waiting for a core (scheduler ticks of ~4 ms), the CPU time does not."""

    frames: int
    stages_ms: dict[str, LatencyStats]
    end_to_end_ms: LatencyStats
    stage_sum_ms: LatencyStats
    overhead_ms: LatencyStats
    overhead_fraction: float
    wall_s: float
    fps: float
    dropped_frames: int
    end_to_end_cpu_ms: LatencyStats | None = None

    def to_dict(self) -> dict:
        cpu = {"end_to_end_cpu_ms": self.end_to_end_cpu_ms.to_dict()} if self.end_to_end_cpu_ms else {}
        return cpu | {
            "frames": self.frames,
            "stages_ms": {k: v.to_dict() for k, v in self.stages_ms.items()},
            "end_to_end_ms": self.end_to_end_ms.to_dict(),
            "stage_sum_ms": self.stage_sum_ms.to_dict(),
            "overhead_ms": self.overhead_ms.to_dict(),
            "overhead_fraction": self.overhead_fraction,
            "wall_s": self.wall_s,
            "fps": self.fps,
            "dropped_frames": self.dropped_frames,
        }


def summarize_run(
    stage_samples_ms: Mapping[str, Iterable[float]],
    end_to_end_ms: Iterable[float],
    stage_sum_ms: Iterable[float],
    wall_s: float,
    dropped_frames: int = 0,
    cpu_ms: Iterable[float] | None = None,
) -> RunSummary:
    """Summaries of one timed loop; `fps` is frames over the loop's wall time (sustained, not 1/p50)."""
    e2e = np.asarray(list(end_to_end_ms), np.float64)
    sums = np.asarray(list(stage_sum_ms), np.float64)
    if e2e.shape != sums.shape:
        raise InputError(f"{e2e.size} end-to-end samples but {sums.size} stage sums")
    if wall_s <= 0:
        raise InputError(f"wall time must be positive, got {wall_s}")
    overhead = e2e - sums
    sum_p50 = float(np.median(sums)) if sums.size else 0.0
    return RunSummary(
        frames=int(e2e.size),
        stages_ms={k: summarize(v) for k, v in stage_samples_ms.items()},
        end_to_end_ms=summarize(e2e),
        stage_sum_ms=summarize(sums),
        overhead_ms=summarize(overhead),
        overhead_fraction=float(np.median(overhead)) / sum_p50 if sum_p50 > 0 else float("nan"),
        wall_s=float(wall_s),
        fps=float(e2e.size / wall_s),
        dropped_frames=int(dropped_frames),
        end_to_end_cpu_ms=summarize(cpu_ms) if cpu_ms is not None and len(list(cpu_ms)) else None,
    )


def speedup(peer_p50_ms: float, ours_p50_ms: float) -> float:
    """How many times faster ours is than the peer (peer median / our median)."""
    if ours_p50_ms <= 0:
        raise InputError(f"our median must be positive, got {ours_p50_ms}")
    return float(peer_p50_ms) / float(ours_p50_ms)
