"""Soak test: N frames through the standard pipeline, and whether memory grows with the run's length.

    .venv/bin/python tools/soak.py [--frames 100000] [--warmup 2000] [--every 250] [--json soak.json]

A short synthetic sequence (rendered once, the `synthetic` source's camera) is cycled N times through
`run_stream` with the default pipeline (preprocess + pose on ONNX Runtime + One Euro + overlay) and a
JSON-lines sink writing to the null device, so RunStats, the Hud, the capture thread, smoothing and
segment tracking all run as in `handstream run`. The resident set size (/proc/self/statm) is sampled
every `--every` frames; after the warm-up a least-squares line through the samples gives the growth in
kB per frame (target < 0.01: a leak of 0.4 kB a frame is 40 MB per 100 000 frames). The report also gives
p50/p95/p99 of the pipeline's own time and of latency (RunStats' histograms, within 0.6 %).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream.errors import HandstreamError, InputError  # noqa: E402


def rss_mb() -> float:
    """This process's current resident set size in MiB (Linux /proc; elsewhere the peak, from getrusage)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        from stream.bench.machine import peak_rss_mb

        return peak_rss_mb()


def slope_kb_per_frame(frames: np.ndarray, rss: np.ndarray) -> float:
    """Least-squares growth of RSS (MiB samples) per frame, in kB."""
    if len(frames) < 2 or np.ptp(frames) == 0:
        raise InputError("need RSS samples at two or more frame counts for a slope")
    return float(np.polyfit(frames.astype(np.float64), rss.astype(np.float64), 1)[0] * 1024.0)


def synthetic_clip(n: int, seed: int):
    """`n` frames of the synthetic source's sequence, rendered once and held in memory."""
    from stream.bench.sources import Clip
    from stream.sources.synthetic import SyntheticSource

    with SyntheticSource(n_frames=n, seed=seed) as src:
        frames = list(src)
    for f in frames:
        f.meta.clear()
    return Clip(frames, f"synthetic:{seed}", f"{n} frames of synthetic:{seed}, cycled")


def soak(
    frames: int = 100_000,
    warmup: int = 2000,
    every: int = 250,
    clip_frames: int = 30,
    seed: int = 0,
    overlay: bool = True,
    backend: str = "onnxruntime",
) -> dict:
    """Run the soak and return its report (see the module docstring)."""
    if frames < 1 or warmup < 0 or every < 1:
        raise InputError(f"need frames >= 1, warmup >= 0, every >= 1; got {frames}, {warmup}, {every}")
    if frames - warmup < 2 * every:
        raise InputError(f"{frames} frames leave fewer than two RSS samples after a {warmup}-frame warm-up")
    from stream.bench.sources import ClipSource
    from stream.pipeline import build_pipeline, run_stream
    from stream.sinks import JsonlSink

    clip = synthetic_clip(clip_frames, seed)
    source = ClipSource(clip, frames)
    samples: list[tuple[int, float]] = []

    def progress(n: int) -> None:
        if n % every == 0:
            samples.append((n, rss_mb()))

    rss_before = rss_mb()
    with build_pipeline(backend=backend, overlay=overlay) as pipe:
        t0 = time.perf_counter()
        stats = run_stream(source, pipe, [JsonlSink(os.devnull)], progress=progress)
        wall = time.perf_counter() - t0
    n_s = np.array([n for n, _ in samples])
    rss = np.array([r for _, r in samples])
    after = n_s > warmup
    pct = stats.percentiles()
    return {
        "frames": stats.frames,
        "warmup_frames": warmup,
        "rss_every_frames": every,
        "rss_samples": int(after.sum()),
        "rss_before_run_mb": round(rss_before, 2),
        "rss_after_warmup_mb": round(float(rss[after][0]), 2),
        "rss_end_mb": round(float(rss[-1]), 2),
        "rss_slope_kb_per_frame": round(slope_kb_per_frame(n_s[after], rss[after]), 5),
        "pipeline_ms": dict(zip(("p50", "p95", "p99"), (round(v, 3) for v in pct["pipeline total"]))),
        "latency_ms": dict(zip(("p50", "p95", "p99"), (round(v, 3) for v in pct["latency"]))),
        "hands": stats.hands,
        "errors": stats.errors,
        "fps": round(stats.frames / wall, 1) if wall > 0 else 0.0,
        "wall_s": round(wall, 1),
        "input": clip.description,
        "overlay": overlay,
    }


def main(argv: list[str] | None = None) -> int:
    from stream.argtypes import frames_type, int_type, seed_type

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=frames_type(), default=100_000, help="frames to run (default 100 000)")
    ap.add_argument("--warmup", type=int_type("--warmup", 0), default=2000, help="frames before the fit")
    ap.add_argument("--every", type=int_type("--every", 1), default=250, help="frames between RSS samples")
    ap.add_argument("--clip", type=int_type("--clip", 1, 1000), default=30, help="distinct frames, cycled")
    ap.add_argument("--seed", type=seed_type(), default=0)
    ap.add_argument("--no-overlay", action="store_true", help="leave the overlay stage out")
    ap.add_argument("--json", help="write the report here as JSON")
    try:
        args = ap.parse_args(argv)
        rep = soak(args.frames, args.warmup, args.every, args.clip, args.seed, overlay=not args.no_overlay)
    except HandstreamError as exc:
        print(f"soak: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"soak: {rep['frames']} frames in {rep['wall_s']} s ({rep['fps']} FPS); RSS {rep['rss_after_warmup_mb']}"
        f" -> {rep['rss_end_mb']} MiB after {rep['warmup_frames']} warm-up frames, slope "
        f"{rep['rss_slope_kb_per_frame']:.4f} kB/frame; pipeline p50/p95/p99 "
        f"{rep['pipeline_ms']['p50']:.2f}/{rep['pipeline_ms']['p95']:.2f}/{rep['pipeline_ms']['p99']:.2f} ms"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=2) + "\n")
        print(f"  report: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
