"""Time preprocessing per 640x480 frame: segmentation + cube crop + joint normalization (its target:
<= 1 ms median on the project's CPU machine).

    .venv/bin/python tools/bench_preprocess.py [--frames 40] [--repeats 25] [--method auto|learned|classic]
        [--camera d435_640x480] [--json out.json]

Frames: the real NYU test frame (if ../shared is present) and `--frames` synthetic D435 640x480 frames with
body and distractors. Each frame is processed `--repeats` times after a warm-up; we report wall-clock
(perf_counter) p50/p95/p99 per stage and for the total, plus CPU time (thread_time) of the total, which
is less disturbed by other processes on a shared machine. The 1-minute load average is recorded before and
after the run (on a shared machine it says how much the wall-clock figures are inflated).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from stream.frames import KNOWN_CAMERAS
from stream.preprocess import HandSegmenter, SegmenterConfig, crop_cube, normalize_joints

REPO = Path(__file__).resolve().parents[1]
NYU = REPO.parent / "shared" / "data" / "nyu" / "depth_1_0000001.png"


def _frames(n: int, seed: int, camera: str = "d435_640x480") -> list[tuple[str, np.ndarray, object]]:
    out = []
    if NYU.is_file():
        from stream.depth_io import read_depth

        out.append(("nyu", read_depth(NYU, "nyu"), KNOWN_CAMERAS["nyu"]))
    from stream.synth import HandSynthesizer, SceneConfig

    cam = KNOWN_CAMERAS[camera]
    syn = HandSynthesizer(SceneConfig(camera=cam, body=True, distractors=True, forearm=True), seed)
    for _ in range(n):
        s = syn.sample()
        out.append(("synth", s.frame.depth_mm, s.frame.intrinsics))
    return out


def _stats(a: list[float]) -> dict:
    x = np.asarray(a) * 1e3
    return {k: round(float(np.percentile(x, q)), 3) for k, q in (("p50", 50), ("p95", 95), ("p99", 99))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--repeats", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cube-mm", type=float, default=250.0)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--method", default="auto", choices=("auto", "learned", "classic"))
    p.add_argument("--camera", default="d435_640x480", choices=sorted(KNOWN_CAMERAS))
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    frames = _frames(a.frames, a.seed, a.camera)
    seg = HandSegmenter(SegmenterConfig(method=a.method))
    load_before = os.getloadavg()[0]
    joints = np.zeros((21, 3))
    times: dict[str, list[float]] = {"segment": [], "crop": [], "normalize": [], "total": [], "total_cpu": []}
    by_source: dict[str, list[float]] = {}
    for _ in range(3):  # warm-up
        for _, d, intr in frames:
            seg.segment(d, intr)
    found = 0
    for _ in range(a.repeats):
        for src, d, intr in frames:
            c0 = time.thread_time()
            t0 = time.perf_counter()
            r = seg.segment(d, intr)
            t1 = time.perf_counter()
            if r.found:
                h = r.hands[0]
                crop = crop_cube(d, intr, h.com_xyz_mm, a.cube_mm, a.size, mask=h.mask)
                t2 = time.perf_counter()
                normalize_joints(joints + h.com_xyz_mm, crop)
                t3 = time.perf_counter()
                found += 1
            else:
                t2 = t3 = t1
            c1 = time.thread_time()
            times["segment"].append(t1 - t0)
            times["crop"].append(t2 - t1)
            times["normalize"].append(t3 - t2)
            times["total"].append(t3 - t0)
            times["total_cpu"].append(c1 - c0)
            by_source.setdefault(src, []).append(t3 - t0)
    res = {
        "method": seg.method,
        "camera": a.camera,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "frames": len(frames),
        "repeats": a.repeats,
        "found_rate": round(found / (len(frames) * a.repeats), 3),
        "ms": {k: _stats(v) for k, v in times.items()},
        "total_ms_by_source": {k: _stats(v) for k, v in by_source.items()},
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
    }
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
