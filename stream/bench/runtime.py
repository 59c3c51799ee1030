"""The pipeline under test is the runtime itself: `stream.pipeline.build_pipeline`, its `CaptureThread`,
`run_stream`, the `OverlayStage` and the `VideoSink` -- what `handstream run` runs, nothing composed here.

Frames come from a real source in the runtime's capture thread: by default the clip written once as a
RealSense recording and played back by `RecordingSource` (librealsense decoding, see sources.py), else the
same frames from memory (`ClipSource`). `TimedSource` times every `read()` on the capture thread, so
capture/decode is reported beside the stages; it overlaps the pipeline (as in `handstream run`) and is not
part of the end-to-end time, which runs from the moment the pipeline takes a frame off the queue.

- `pose_path_run`: the default pose path (preprocess + pose engine + smoothing, no overlay), timed from
  outside `Pipeline.process` by `time_loop`, so overhead = end-to-end minus the stages' sum is real glue.
- `replay_run`: `run_stream` with overlay and an mp4 `VideoSink`: the throughput figure.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import HandstreamError, InputError
from ..sources.base import Source
from .pipeline_timing import TimedRun, time_loop
from .sources import Clip, ClipSource, clip_recording, is_raw
from .stats import summarize_run

CAPTURE_KEY = "capture/decode (capture thread)"


class TimedSource(Source):
    """Wraps a source and times each `read()` where it runs (the capture thread): decode + copy-out."""

    def __init__(self, inner: Source) -> None:
        super().__init__()
        self.inner = inner
        self.name, self.live = inner.name, inner.live
        self.read_ms: list[float] = []

    def _open(self) -> None:
        self.inner.open()
        self.intrinsics, self.fps, self.frame_count = (
            self.inner.intrinsics,
            self.inner.fps,
            self.inner.frame_count,
        )

    def _read(self):
        t0 = time.perf_counter_ns()
        f = self.inner.read()
        if f is not None:
            self.read_ms.append((time.perf_counter_ns() - t0) / 1e6)
        return f

    def _close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class BenchInput:
    """The clip, and the recording of it the timed runs play (None: frames from memory, and why)."""

    clip: Clip
    recording: Path | None
    why_memory: str = ""

    @classmethod
    def prepare(
        cls, clip: Clip, n_frames: int, use_recording: bool = True, compress: bool = True
    ) -> BenchInput:
        if not use_recording:
            return cls(clip, None, "frames from memory (--no-recording)")
        try:
            return cls(clip, clip_recording(clip, n_frames, compress=compress))
        except (HandstreamError, ImportError) as exc:
            return cls(clip, None, f"no recording ({str(exc).splitlines()[0]}): frames from memory")

    def open(self, n_frames: int, memory: bool = False, color: bool = True) -> TimedSource:
        """`color=False`: the recording decodes depth only, as `handstream run` plays it to a pipeline
        that reads no colour (`Pipeline.uses_color`)."""
        if memory or self.recording is None:
            return TimedSource(ClipSource(self.clip, n_frames))
        from ..sources.recording import RecordingSource

        return TimedSource(RecordingSource(self.recording, color=color))

    def describe(self, memory: bool = False) -> str:
        if memory or self.recording is None:
            return self.why_memory or "frames from memory (ClipSource)"
        return (
            f"RealSense recording {self.recording.name} ({'uncompressed' if is_raw(self.recording) else 'lz4'}; "
            "written once by stream.sources.rs_writer, played losslessly by stream.sources.RecordingSource)"
        )


def _as_input(inp: BenchInput | Clip) -> BenchInput:
    """A bare Clip (the first version's argument) is served from memory."""
    return inp if isinstance(inp, BenchInput) else BenchInput(inp, None, "frames from memory (ClipSource)")


def _build(engine: str, threads: int, overlay: bool, max_hands: int = 1, fit: bool | None = None):
    from ..pipeline import build_pipeline

    custom = None if engine == "pose" else engine
    return build_pipeline(
        backend="onnxruntime",
        models="pose",
        engine=custom,
        overlay=overlay,
        smoothing=True,
        threads=threads,
        max_hands=max_hands,
        fit=fit,
    )


def pose_path_run(
    inp: BenchInput | Clip,
    engine: str,
    threads: int,
    n: int,
    warmup: int,
    memory: bool = False,
    max_hands: int = 1,
    fit: bool | None = None,
) -> tuple[TimedRun, dict]:
    """The default pose path (preprocess + pose + smooth; with `max_hands` 2 also the handedness stage
    and the tracks; `fit`: with the hand-model fit after pose) on `warmup` + `n` frames of the input
    (`memory`: from memory, so no decoding thread competes with the pipeline for the cores)."""
    from ..capture import CaptureThread

    inp = _as_input(inp)
    pipe = _build(engine, threads, overlay=False, max_hands=max_hands, fit=fit)
    src = inp.open(n + warmup, memory, color=pipe.uses_color)
    cap = CaptureThread(src)
    pipe.capture = cap
    try:
        src.open()
        cap.start()
        run = time_loop(iter(cap), pipe.process, n, warmup, dropped=pipe.dropped_frames)
    finally:
        cap.stop()
        pipe.close()
    reads = src.read_ms[warmup : warmup + n]
    run = run.with_off_path({CAPTURE_KEY: reads}) if reads else run
    stages = " + ".join(s.name for s in pipe.stages)
    return run, {"path": "stream.pipeline", "description": f"{stages}; input: {inp.describe(memory)}"}


def replay_run(
    inp: BenchInput | Clip,
    engine: str,
    threads: int,
    n: int,
    warmup: int = 0,
    *,
    memory: bool = False,
    threaded: bool = True,
    max_hands: int = 1,
    fit: bool | None = None,
) -> tuple[TimedRun, dict]:
    """`run_stream` over `n` frames with the overlay and an mp4 VideoSink (threaded as `handstream run`
    uses it; `threaded=False` encodes inline, so the sink row is the encoder's own cost). `warmup` is
    accepted for the first version's signature and unused: build_pipeline warms the engines, and the
    replay's FPS counts the whole run as a user sees it."""
    import cv2

    from ..pipeline import run_stream
    from ..sinks import VideoSink

    inp = _as_input(inp)

    pipe = _build(engine, threads, overlay=True, max_hands=max_hands, fit=fit)
    src = inp.open(n, memory, color=pipe.uses_color)
    with tempfile.TemporaryDirectory(prefix="handstream-bench-") as tmp:
        out = Path(tmp) / "replay.mp4"
        try:
            stats = run_stream(
                src, pipe, [VideoSink(out, 30.0, threaded=threaded)], max_frames=n, keep_samples=True
            )
        finally:
            pipe.close()
        size = out.stat().st_size if out.is_file() else 0
        vc = cv2.VideoCapture(str(out))
        written = int(vc.get(cv2.CAP_PROP_FRAME_COUNT)) if vc.isOpened() else 0
        vc.release()
    if not stats.frames:
        raise InputError("the replay gave no frames")
    samples = stats.samples or {}  # every frame's times: this replay is n frames long
    stage = {k: v for k, v in samples.items() if k != "latency" and len(v) == stats.frames}
    sums = [sum(vals) for vals in zip(*stage.values(), strict=True)]
    sink = stage.get("sinks", [0.0] * stats.frames)
    e2e = [lat + s for lat, s in zip(samples["latency"], sink, strict=True)]  # pipeline latency + sinks
    summary = summarize_run(stage, e2e, sums, stats.wall_s, stats.dropped)
    samples = {k: list(v) for k, v in stage.items()} | {"end_to_end": e2e}
    from .machine import peak_rss_mb

    run = TimedRun(summary, samples, int(stats.hands), peak_rss_mb())
    run = run.with_off_path({CAPTURE_KEY: src.read_ms[: stats.frames]}) if src.read_ms else run
    sink_what = "mp4 hand-over to the writer thread" if threaded else "inline mp4 encoding"
    return run, {
        "path": "stream.pipeline.run_stream",
        "description": f"{' + '.join(s.name for s in pipe.stages)} + VideoSink ({sink_what}); "
        f"input: {inp.describe(memory)}; FPS = frames / run_stream wall time",
        "video_bytes": int(size),
        "video_frames": written,
    }
