"""Speed of the synthetic generator: ms per frame (p50/p95/p99) and frames/s, on ONE core.

    .venv/bin/python tools/bench_synth.py --frames 300 [--size 320x240] [--sequences]

Measures depth+mask+labels (colour off) and the full frame with colour, each after a short warm-up.
Thread pools of numpy/OpenCV are pinned to one thread so the figure is a single-core one.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from stream.frames import KNOWN_CAMERAS  # noqa: E402
from stream.synth import HandSynthesizer, SceneConfig  # noqa: E402


def measure(cfg: SceneConfig, n: int, sequences: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(wall ms, CPU ms) per frame. On a shared machine the CPU time of this thread is the honest
    single-core cost; wall time includes waiting for the core while other jobs run."""
    synth = HandSynthesizer(cfg, seed)
    it = synth.sequence(n + 10) if sequences else None
    wall, cpu = [], []
    for i in range(n + 10):
        t0, c0 = time.perf_counter(), time.thread_time()
        _ = next(it) if it is not None else synth.sample()
        if i >= 10:  # warm-up
            wall.append((time.perf_counter() - t0) * 1000.0)
            cpu.append((time.thread_time() - c0) * 1000.0)
    return np.array(wall), np.array(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", choices=("320x240", "640x480"), default="320x240")
    ap.add_argument("--sequences", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass
    cam = KNOWN_CAMERAS[f"d435_{args.size}"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, pinned to 1 core")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print("| variant | size | mode | clock | p50 ms | p95 ms | p99 ms | frames/s (1000/mean) |")
    print("|---|---|---|---|---|---|---|---|")
    mode = "sequence" if args.sequences else "sample"
    for name, color in (("depth+mask+labels", False), ("+ colour", True)):
        wall, cpu = measure(SceneConfig(camera=cam, color=color), args.frames, args.sequences, args.seed)
        for clock, t in (("CPU", cpu), ("wall", wall)):
            p50, p95, p99 = np.percentile(t, [50, 95, 99])
            print(
                f"| {name} | {args.size} | {mode} | {clock} | {p50:.2f} | {p95:.2f} | {p99:.2f} "
                f"| {1000.0 / t.mean():.0f} |"
            )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
