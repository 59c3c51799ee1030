"""The per-frame pipeline and the loop that drives it from a capture thread into sinks.

    frame -> preprocess -> engines (pose, then any other by name) -> smooth -> [overlay] -> FrameResult

`Pipeline.process(frame)` is the whole per-frame path: it times every stage with perf_counter_ns, builds
one frozen FrameResult, and never loses a frame: a stage that raises makes that frame a "no hand"
result (its `error` says why), reported once per stage and error type with the frame index, never per
frame. `run_stream` wires source -> CaptureThread -> Pipeline -> sinks and shuts all of it down cleanly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .frames import RGBDFrame
from .smoothing import OneEuroConfig
from .sources.base import Lag
from .stages import EngineStage, FrameState, OverlayStage, PoseStage, PreprocessStage, SmoothStage

log = logging.getLogger("handstream.pipeline")


@dataclass(frozen=True, eq=False)
class FrameResult:
    """What the pipeline made of one frame. Joints are the smoothed ones (raw in `joints_raw_xyz_mm`);
    `joints_uvd` is (J, 3) pixels + depth mm. `stage_ms` maps stage name -> ms for this frame;
    `latency_ms` runs from the capture moment (the source's stamp: live sources) or, in replay, from
    when the pipeline took the frame, to the end of the last stage. `image` is the overlay (None without one)."""

    index: int
    timestamp_ms: float
    hand_found: bool
    joints_xyz_mm: np.ndarray | None
    joints_uvd: np.ndarray | None
    stage_ms: dict[str, float]
    latency_ms: float
    joints_raw_xyz_mm: np.ndarray | None = None
    com_xyz_mm: np.ndarray | None = None
    confidence: float = 0.0
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    reason: str = ""
    error: str = ""
    image: np.ndarray | None = None

    @property
    def total_ms(self) -> float:
        """Sum of the stage times."""
        return float(sum(self.stage_ms.values()))

    def to_record(self) -> dict:
        """The JSON-lines record (sinks.JsonlSink): plain lists, mm and pixels rounded to 0.01."""
        rec = {
            "index": self.index,
            "timestamp_ms": round(self.timestamp_ms, 3),
            "hand_found": self.hand_found,
            "joints_xyz_mm": None,
            "joints_uv_px": None,
            "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.joints_xyz_mm is not None:
            rec["joints_xyz_mm"] = np.round(self.joints_xyz_mm, 2).tolist()
        if self.joints_uvd is not None:
            rec["joints_uv_px"] = np.round(np.nan_to_num(self.joints_uvd[:, :2], nan=-1.0), 2).tolist()
        if self.com_xyz_mm is not None:
            rec["com_xyz_mm"] = np.round(self.com_xyz_mm, 2).tolist()
        if self.reason:
            rec["reason"] = self.reason
        if self.error:
            rec["error"] = self.error
        return rec


class Hud:
    """Numbers the overlay's heads-up line shows, updated by the pipeline after every frame. `lag` is the
    paced source's report (speed against real time), None when the source is not paced."""

    __slots__ = ("fps", "stage_ms", "dropped", "lag", "frames", "_last_ns")

    def __init__(self) -> None:
        self.fps = 0.0
        self.stage_ms: dict[str, float] = {}
        self.dropped = 0
        self.lag: Lag | None = None
        self.frames = 0
        self._last_ns = 0

    def tick(self, now_ns: int, stage_ms: dict[str, float]) -> None:
        if self._last_ns:
            dt = (now_ns - self._last_ns) / 1e9
            if dt > 0:
                inst = 1.0 / dt
                self.fps = inst if self.fps == 0 else 0.9 * self.fps + 0.1 * inst
        self._last_ns = now_ns
        self.stage_ms = stage_ms
        self.frames += 1


class Pipeline:
    """Runs `stages` in order on every frame. `dropped_frames()` reports the capture's drops when a
    CaptureThread is attached (run_stream does)."""

    def __init__(self, stages: Sequence, engines: Sequence = (), hud: Hud | None = None) -> None:
        self.stages = list(stages)
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise InputError(f"stage names must be unique, got {names}")
        self.engines = list(engines)  # closed with the pipeline
        self.hud = hud or Hud()
        self.capture = None
        self._reported: set[tuple[str, str]] = set()
        self.errors = 0
        for s in self.stages:
            if isinstance(s, OverlayStage):
                s.overlay.hud = self.hud

    def dropped_frames(self) -> int:
        return int(self.capture.dropped) if self.capture is not None else 0

    def lag(self) -> Lag | None:
        """The attached capture's source lag (paced sources only)."""
        return source_lag(self.capture.source) if self.capture is not None else None

    def reset(self) -> None:
        """Forget tracking and smoothing state (a new sequence starts)."""
        for s in self.stages:
            r = getattr(s, "reset", None)
            if callable(r):
                r()

    def process(self, frame: RGBDFrame) -> FrameResult:
        clock = time.perf_counter_ns
        t_start = clock()
        st = FrameState(frame)
        stage_ms: dict[str, float] = {}
        error = ""
        t0 = t_start
        for stage in self.stages:
            try:
                stage.run(st)
            except Exception as exc:  # noqa: BLE001 - a bad frame becomes a "no hand" result, never a lost one
                error = f"{stage.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                self._report(stage.name, exc, frame.index)
                self._drop_hand(st)
                if isinstance(stage, OverlayStage):
                    st.image = None
            t1 = clock()
            stage_ms[stage.name] = (t1 - t0) * 1e-6
            t0 = t1
        meta = frame.meta
        # glass-to-result where the source stamped the capture moment (cameras, paced sources); for replay
        # there is no glass, and the wait in the back-pressured queue is not latency: count from here
        t_cap = meta.get("t_capture_ns") or t_start
        found = st.joints_mm is not None
        det = st.detection
        result = FrameResult(
            index=frame.index,
            timestamp_ms=frame.timestamp_ms,
            hand_found=found,
            joints_xyz_mm=st.joints_mm,
            joints_uvd=st.joints_uvd,
            stage_ms=stage_ms,
            latency_ms=(t0 - t_cap) * 1e-6,
            joints_raw_xyz_mm=st.joints_raw_mm,
            com_xyz_mm=det.com_xyz_mm if det is not None else None,
            confidence=float(det.confidence) if det is not None else 0.0,
            outputs=st.outputs,
            reason="" if found else (st.reason or ("error" if error else "no hand")),
            error=error,
            image=st.image,
        )
        self.hud.dropped = self.dropped_frames()
        self.hud.lag = self.lag()
        self.hud.tick(t0, stage_ms)
        return result

    def _drop_hand(self, st: FrameState) -> None:
        st.joints_mm = st.joints_uvd = st.joints_raw_mm = None
        st.crop = None
        for s in self.stages:
            if isinstance(s, SmoothStage | PreprocessStage):
                s.reset()

    def _report(self, stage: str, exc: Exception, index: int) -> None:
        self.errors += 1
        key = (stage, type(exc).__name__)
        if key not in self._reported:
            self._reported.add(key)
            log.warning(
                "stage %s failed on frame %d: %s: %s (further %s errors in this stage are counted, not shown)",
                stage,
                index,
                type(exc).__name__,
                exc,
                type(exc).__name__,
            )

    def close(self) -> None:
        for e in self.engines:
            close = getattr(e, "close", None)
            if callable(close):
                close()
        self.engines = []

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def source_lag(source) -> Lag | None:
    """A source's lag report, for sources that pace themselves; None for the rest (and for test doubles
    without `lag`)."""
    fn = getattr(source, "lag", None)
    return fn() if callable(fn) else None


def parse_models(models: str | Sequence[str] | None) -> list[str]:
    """ "pose,foo" / ["pose", "foo"] -> ["pose", "foo"]; the pose engine is always first when named."""
    if models is None:
        return ["pose"]
    items = models.split(",") if isinstance(models, str) else list(models)
    out = [m.strip() for m in items if m and m.strip()]
    if not out:
        raise InputError("--models names no engine")
    return out


def build_pipeline(
    backend: str = "auto",
    models: str | Sequence[str] | None = "pose",
    overlay: bool = True,
    smoothing: bool | OneEuroConfig = True,
    threads: int | None = None,
    engine: str | None = None,
    cube_mm: float | None = None,
    warmup: bool = True,
) -> Pipeline:
    """The standard pipeline: preprocess -> engines -> One Euro -> (overlay).

    `models`: engine names or paths, comma-separated or a list; the first whose manifest task is "pose"
    (or that is named "pose") drives the skeleton, the others run on the same cube and report raw outputs.
    `engine` (a path or shipped name) replaces the pose engine. `smoothing`: True (defaults), False
    (off) or a OneEuroConfig. The cube size and crop size come from the pose engine's manifest."""
    import engines as engines_pkg

    names = parse_models(models)
    if engine is not None:
        names = [str(engine)] + [n for n in names if n not in ("pose", str(engine))]
    names = list(dict.fromkeys(names))  # each engine once
    loaded = []
    try:
        for n in names:
            loaded.append((n, engines_pkg.load_engine(n, backend=backend, threads=threads)))
    except BaseException:
        for _, e in loaded:
            e.close()
        raise
    pose_i = next(
        (i for i, (n, e) in enumerate(loaded) if getattr(e.manifest, "task", "") == "pose" or n == "pose"),
        None,
    )
    pre = dict(loaded[pose_i][1].manifest.preprocessing) if pose_i is not None else {}
    if pose_i is None and loaded:
        pre = dict(loaded[0][1].manifest.preprocessing)
    crop_size = int(pre.get("crop_size") or 96)
    cube = float(cube_mm or pre.get("cube_mm") or 250.0)
    stages: list = [PreprocessStage(cube_mm=cube, crop_size=crop_size)]
    for i, (n, e) in enumerate(loaded):
        label = _stage_label(n, i == pose_i)
        taken = {s.name for s in stages}
        if label in taken:  # the same engine twice, or a file named like a stage: keep names unique
            label = next(f"{label}_{k}" for k in range(2, 100) if f"{label}_{k}" not in taken)
        stages.append(PoseStage(e, label) if i == pose_i else EngineStage(e, label))
        if warmup:
            e.warmup()
    cfg = smoothing if isinstance(smoothing, OneEuroConfig) else None
    stages.append(SmoothStage(cfg, enabled=smoothing is not False))
    if overlay:
        stages.append(OverlayStage())
    return Pipeline(stages, engines=[e for _, e in loaded])


def _stage_label(name: str, is_pose: bool) -> str:
    if is_pose:
        return "pose"
    from pathlib import Path

    return Path(str(name)).stem or str(name)


class LogHistogram:
    """Fixed-size running distribution of non-negative milliseconds, for p50/p95/p99 of an endless run.

    Why not a list: a run keeps going for hours, and a list of every frame's time grows ~0.4 kB per frame.
    Bins are log-spaced, `BINS_PER_DECADE` per factor of 10 from `LO_MS` (1 ns) to `HI_MS` (100 s), so a
    percentile is reported as its bin's geometric centre: within 0.6 % of the exact (nearest-rank) value
    for samples in that range, and clamped to the exact min/max seen. Values below `LO_MS` (and 0) fall in
    an underflow bin reported as the min, values above `HI_MS` in an overflow bin reported as the max; NaN
    is counted apart (`nan`) and never enters a percentile. 1 602 int64 counters: 13 kB per series."""

    LO_MS = 1e-6
    HI_MS = 1e5
    BINS_PER_DECADE = 200
    __slots__ = ("counts", "n", "nan", "total", "min", "max")

    _N_INNER = int(round(np.log10(HI_MS / LO_MS) * BINS_PER_DECADE))

    def __init__(self) -> None:
        self.counts = np.zeros(self._N_INNER + 2, np.int64)  # [underflow, inner..., overflow]
        self.n = 0
        self.nan = 0
        self.total = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def add(self, value_ms: float) -> None:
        v = float(value_ms)
        if v != v:
            self.nan += 1
            return
        self.n += 1
        self.total += v
        self.min = min(self.min, v)
        self.max = max(self.max, v)
        self.counts[self._bin(v)] += 1

    def _bin(self, v: float) -> int:
        if v < self.LO_MS:
            return 0
        if v >= self.HI_MS:
            return self._N_INNER + 1
        return 1 + min(int(math.log10(v / self.LO_MS) * self.BINS_PER_DECADE), self._N_INNER - 1)

    def __len__(self) -> int:
        return self.n

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    def percentiles(self, qs: Sequence[float] = (50, 95, 99)) -> list[float]:
        """Nearest-rank percentiles (q in 0-100) as bin centres, clamped to [min, max]; NaN when empty."""
        if not self.n:
            return [float("nan")] * len(qs)
        cum = np.cumsum(self.counts)
        out = []
        for q in qs:
            rank = max(1, int(np.ceil(q / 100.0 * self.n)))
            b = int(np.searchsorted(cum, rank))
            if b == 0:
                v = self.min
            elif b == self._N_INNER + 1:
                v = self.max
            else:
                v = self.LO_MS * 10 ** ((b - 1 + 0.5) / self.BINS_PER_DECADE)
            out.append(float(min(max(v, self.min), self.max)))
        return out

    def median(self) -> float:
        return self.percentiles((50,))[0]


@dataclass
class RunStats:
    """What a run did, for the one-line summary. Per-stage and latency distributions are LogHistograms
    (fixed size whatever the run's length); `samples`, when a caller asks run_stream for them (benchmarks
    of a bounded number of frames), also keeps every frame's values by series name ("latency", stages,
    "sinks"). `pacing` is the source's lag report for paced sources (live generator, real-time replay,
    camera), else None."""

    frames: int = 0
    hands: int = 0
    dropped: int = 0
    errors: int = 0
    wall_s: float = 0.0
    latency_ms: LogHistogram = field(default_factory=LogHistogram)
    stage_ms: dict[str, LogHistogram] = field(default_factory=dict)
    total_ms: LogHistogram = field(default_factory=LogHistogram)
    stopped_by_user: bool = False
    samples: dict[str, list[float]] | None = None
    pacing: Lag | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def record(self, result: FrameResult, sinks_ms: float | None = None) -> None:
        """Count one frame's result (and the sinks' time for it, when there are sinks)."""
        self.frames += 1
        self.hands += bool(result.hand_found)
        self.errors += bool(result.error)
        values = dict(result.stage_ms)
        self.total_ms.add(sum(values.values()))  # the pipeline's own stages, sinks excluded
        if sinks_ms is not None:
            values["sinks"] = sinks_ms
        values["latency"] = result.latency_ms
        for k, v in values.items():
            if k == "latency":
                self.latency_ms.add(v)
            else:
                h = self.stage_ms.get(k)
                if h is None:
                    h = self.stage_ms[k] = LogHistogram()
                h.add(v)
            if self.samples is not None:
                self.samples.setdefault(k, []).append(float(v))

    def median_latency_ms(self) -> float:
        return self.latency_ms.median()

    def percentiles(self) -> dict[str, tuple[float, float, float]]:
        """name -> (p50, p95, p99) ms for every stage, their sum and the glass-to-result latency (to the
        bin accuracy LogHistogram states)."""
        series = dict(self.stage_ms)
        if any(k != "sinks" for k in series):
            series["pipeline total"] = self.total_ms
        series["latency"] = self.latency_ms
        out = {}
        for k, h in series.items():
            if len(h):
                a, b, c = h.percentiles((50, 95, 99))
                out[k] = (a, b, c)
        return out

    def table(self) -> str:
        """The percentiles as a small markdown table."""
        rows = ["| stage | p50 ms | p95 ms | p99 ms |", "|---|---:|---:|---:|"]
        rows += [f"| {k} | {a:.2f} | {b:.2f} | {c:.2f} |" for k, (a, b, c) in self.percentiles().items()]
        return "\n".join(rows)

    def summary(self) -> str:
        stages = ", ".join(f"{k} {h.median():.2f}" for k, h in self.stage_ms.items() if len(h))
        mean_ms = float(sum(h.mean for h in self.stage_ms.values() if len(h)))
        capacity = f" (pipeline + sinks alone: {1000.0 / mean_ms:.0f} FPS)" if mean_ms > 0 else ""
        return (
            f"{self.frames} frames, {self.fps:.1f} FPS{capacity}, "
            f"median latency {self.median_latency_ms():.2f} ms, "
            f"hand in {self.hands}/{self.frames}, dropped {self.dropped}"
            + (f", {self.pacing.describe()}" if self.pacing is not None else "")
            + (f", {self.errors} frame errors" if self.errors else "")
            + (f" (median ms: {stages})" if stages else "")
        )


def run_stream(
    source,
    pipeline: Pipeline,
    sinks: Sequence = (),
    max_frames: int | None = None,
    queue_size: int | None = None,
    progress=None,
    keep_samples: bool = False,
) -> RunStats:
    """source -> capture thread -> pipeline -> sinks, until the source ends, `max_frames`, a sink asks to
    stop (window: q/Esc) or Ctrl-C. Always joins the capture thread and closes the sinks. Replay: every
    frame read gives exactly one result to every sink. `keep_samples` also keeps every frame's times in
    `stats.samples` (memory grows with the run: for benchmarks of a bounded length)."""
    from .capture import CaptureThread

    stats = RunStats(samples={} if keep_samples else None)
    cap = CaptureThread(source, capacity=queue_size)
    pipeline.capture = cap
    t0 = time.perf_counter()
    try:
        source.open()  # here, not in the thread: a missing or corrupt input fails before anything starts
        cap.start()
        while max_frames is None or stats.frames < max_frames:
            frame = cap.get()
            if frame is None:
                break
            r = pipeline.process(frame)
            keep_going = True
            t_sink = time.perf_counter_ns()
            for s in sinks:
                if s.write(r, frame) is False:
                    keep_going = False
            stats.record(r, (time.perf_counter_ns() - t_sink) * 1e-6 if sinks else None)
            if progress is not None:
                progress(stats.frames)
            if not keep_going:
                stats.stopped_by_user = True
                break
    finally:
        stats.wall_s = time.perf_counter() - t0
        cap.stop()
        stats.dropped = cap.dropped
        stats.pacing = source_lag(source)
        pipeline.capture = None
        for s in sinks:
            s.close()
    return stats
