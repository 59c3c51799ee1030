"""The per-frame pipeline and the loop that drives it from a capture thread into sinks.

    frame -> preprocess -> engines (pose, then any other by name) -> smooth -> [overlay] -> FrameResult

`Pipeline.process(frame)` is the whole per-frame path: it times every stage with perf_counter_ns, builds
one frozen FrameResult, and never loses a frame: a stage that raises makes that frame a "no hand"
result (its `error` says why), reported once per stage and error type with the frame index, never per
frame. `run_stream` wires source -> CaptureThread -> Pipeline -> sinks and shuts all of it down cleanly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .frames import RGBDFrame
from .smoothing import OneEuroConfig
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
    """Numbers the overlay's heads-up line shows, updated by the pipeline after every frame."""

    __slots__ = ("fps", "stage_ms", "dropped", "frames", "_last_ns")

    def __init__(self) -> None:
        self.fps = 0.0
        self.stage_ms: dict[str, float] = {}
        self.dropped = 0
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

    def reset(self) -> None:
        """Forget tracking and smoothing state (a new sequence starts)."""
        for s in self.stages:
            r = getattr(s, "reset", None)
            if callable(r):
                r()

    def process(self, frame: RGBDFrame) -> FrameResult:
        clock = time.perf_counter_ns
        t_start = clock()
        if not frame.readable:
            return self._unreadable(frame, t_start)
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
        self.hud.tick(t0, stage_ms)
        return result

    def _unreadable(self, frame: RGBDFrame, t_start: int) -> FrameResult:
        """A frame the source could not read: a "no hand" result saying why, without running the stages
        (there are no pixels). Every stage reports 0 ms so per-stage series stay one entry per frame; the
        trackers are reset, as the hand may have moved during the gap."""
        self._drop_hand(FrameState(frame))
        t_end = time.perf_counter_ns()
        stage_ms = {s.name: 0.0 for s in self.stages}
        self.hud.dropped = self.dropped_frames()
        self.hud.tick(t_end, stage_ms)
        return FrameResult(
            index=frame.index,
            timestamp_ms=frame.timestamp_ms,
            hand_found=False,
            joints_xyz_mm=None,
            joints_uvd=None,
            stage_ms=stage_ms,
            latency_ms=(t_end - (frame.meta.get("t_capture_ns") or t_start)) * 1e-6,
            reason=f"unreadable: {frame.unreadable_reason}",
        )

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


@dataclass
class RunStats:
    """What a run did, for the one-line summary."""

    frames: int = 0
    hands: int = 0
    dropped: int = 0
    errors: int = 0
    unreadable: int = 0  # frames the source could not read (each still gave one "no hand" result)
    wall_s: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    stopped_by_user: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def median_latency_ms(self) -> float:
        return float(np.median(self.latency_ms)) if self.latency_ms else float("nan")

    def percentiles(self) -> dict[str, tuple[float, float, float]]:
        """name -> (p50, p95, p99) ms for every stage, their sum and the glass-to-result latency."""
        out = {}
        series = dict(self.stage_ms)
        own = [v for k, v in series.items() if k != "sinks"]
        if own:
            series["pipeline total"] = list(np.sum(own, axis=0))
        series["latency"] = self.latency_ms
        for k, v in series.items():
            if len(v):
                p = np.percentile(np.asarray(v, np.float64), [50, 95, 99])
                out[k] = (float(p[0]), float(p[1]), float(p[2]))
        return out

    def table(self) -> str:
        """The percentiles as a small markdown table."""
        rows = ["| stage | p50 ms | p95 ms | p99 ms |", "|---|---:|---:|---:|"]
        rows += [f"| {k} | {a:.2f} | {b:.2f} | {c:.2f} |" for k, (a, b, c) in self.percentiles().items()]
        return "\n".join(rows)

    def summary(self) -> str:
        stages = ", ".join(f"{k} {np.median(v):.2f}" for k, v in self.stage_ms.items() if v)
        per_frame = [v for v in self.stage_ms.values() if v]
        mean_ms = float(np.sum([np.mean(v) for v in per_frame])) if per_frame else 0.0
        capacity = f" (pipeline + sinks alone: {1000.0 / mean_ms:.0f} FPS)" if mean_ms > 0 else ""
        return (
            f"{self.frames} frames"
            + (
                f" ({self.frames - self.unreadable} of {self.frames} frames readable)"
                if self.unreadable
                else ""
            )
            + f", {self.fps:.1f} FPS{capacity}, "
            f"median latency {self.median_latency_ms():.2f} ms, "
            f"hand in {self.hands}/{self.frames}, dropped {self.dropped}"
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
) -> RunStats:
    """source -> capture thread -> pipeline -> sinks, until the source ends, `max_frames`, a sink asks to
    stop (window: q/Esc) or Ctrl-C. Always joins the capture thread and closes the sinks. Replay: every
    frame read gives exactly one result to every sink."""
    from .capture import CaptureThread

    stats = RunStats()
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
            stats.frames += 1
            stats.hands += r.hand_found
            stats.errors += bool(r.error)
            stats.unreadable += not frame.readable
            stats.latency_ms.append(r.latency_ms)
            for k, v in r.stage_ms.items():
                stats.stage_ms.setdefault(k, []).append(v)
            keep_going = True
            t_sink = time.perf_counter_ns()
            for s in sinks:
                if s.write(r, frame) is False:
                    keep_going = False
            if sinks:
                stats.stage_ms.setdefault("sinks", []).append((time.perf_counter_ns() - t_sink) * 1e-6)
            if progress is not None:
                progress(stats.frames)
            if not keep_going:
                stats.stopped_by_user = True
                break
    finally:
        stats.wall_s = time.perf_counter() - t0
        cap.stop()
        stats.dropped = cap.dropped
        pipeline.capture = None
        for s in sinks:
            s.close()
    return stats
