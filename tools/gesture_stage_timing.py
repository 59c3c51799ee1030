"""The gesture stage's time inside a running pipeline (preprocess + pose + One Euro + gesture, ONNX Runtime,
one thread), on saved synthetic frames: the compiled kernel (stream/gestures/kernels.py) and the numpy path,
alternately frame by frame in the same pipeline, then the same skeletons in a tight loop.

    .venv/bin/python tools/gesture_stage_timing.py --frames /tmp/gesture_frames.npz   # made on first use

Prints, per path, the stage's p50 and p95 over the frames with a hand: wall time (the pipeline's own stage
timing) and this thread's CPU time (`time.thread_time_ns` around the stage's `run`, which load on other cores
inflates far less than wall time). Inside the pipeline the stage meets caches the pose engine has just
emptied, so it costs several times what the same calls cost in a tight loop. For a checkout without the
kernel it times the one path it has: run it from two checkouts alternately to compare them on the same
frames (as tools/ab_pipeline.py does for the whole path).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def _pct(xs: list[float]) -> str:
    return f"p50 {np.median(xs):6.1f} us, p95 {np.percentile(xs, 95):6.1f} us"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", default="/tmp/gesture_frames.npz", help="saved depth frames (made if absent)")
    ap.add_argument("--n", type=int, default=600, help="frames timed (the saved ones cycled)")
    ap.add_argument("--loop", type=int, default=2000, help="tight-loop calls per path (0: none)")
    a = ap.parse_args()
    sys.path.insert(0, os.getcwd())  # the checkout this runs in
    from stream.frames import RGBDFrame, camera
    from stream.pipeline import build_pipeline

    if not os.path.exists(a.frames):
        from stream.sources.synthetic import SyntheticSource

        fr = list(SyntheticSource(n_frames=90, seed=7, cam="d435_640x480"))
        np.savez(a.frames, depth=np.stack([f.depth_mm for f in fr]))
    depth = np.load(a.frames)["depth"]
    cam = camera("d435_640x480")
    with build_pipeline(backend="onnxruntime", models="pose,gesture", overlay=False, threads=1) as p:
        stage = next(s for s in p.stages if s.name == "gesture")
        rec = stage.recognizer
        kernel = getattr(rec, "_kernel", None)  # None: a checkout (or machine) without the kernel
        paths = {"kernel": kernel, "numpy": None} if kernel is not None else {"numpy": None}
        order = list(paths)
        wall: dict[str, list[float]] = {k: [] for k in order}
        cpu: dict[str, list[float]] = {k: [] for k in order}
        joints: list[np.ndarray] = []
        run = stage.run
        last_cpu = [0.0]

        def timed_run(st) -> None:
            c0 = time.thread_time_ns()
            run(st)
            last_cpu[0] = (time.thread_time_ns() - c0) * 1e-3

        stage.run = timed_run
        for i in range(30 + a.n):
            path = order[i % len(order)]
            if kernel is not None:
                rec._kernel = paths[path]
            r = p.process(RGBDFrame(i, i * 1000.0 / 30.0, depth[i % len(depth)], cam))
            if i >= 30 and r.hand_found:
                wall[path].append(r.stage_ms["gesture"] * 1000.0)
                cpu[path].append(last_cpu[0])
                joints.append(np.array(r.joints_xyz_mm, np.float64))
        name = os.path.basename(os.getcwd())
        for path in order:
            print(
                f"{name} {path:6s} in the pipeline ({len(wall[path])} frames with a hand): "
                f"wall {_pct(wall[path])}; thread CPU {_pct(cpu[path])}"
            )
        for path in order if a.loop > 0 and joints else ():
            if kernel is not None:
                rec._kernel = paths[path]
            ts = []
            for _ in range(3):
                t0 = time.thread_time_ns()
                for k in range(a.loop):
                    rec(joints[k % len(joints)])
                ts.append((time.thread_time_ns() - t0) * 1e-3 / a.loop)
            print(f"{name} {path:6s} tight loop: {min(ts):.1f} us a call (thread CPU, best of 3 x {a.loop})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
