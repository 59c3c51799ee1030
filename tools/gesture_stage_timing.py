"""The gesture stage's time inside a running pipeline (preprocess + pose + One Euro + gesture, ONNX Runtime,
one thread), on saved synthetic frames, for the checkout it runs in: run it from two checkouts alternately to
compare them on the same frames (as tools/ab_pipeline.py does for the whole path).

    .venv/bin/python tools/gesture_stage_timing.py --frames /tmp/gesture_frames.npz   # made on first use
    (cd OLD && /path/to/.venv/bin/python /path/to/tools/gesture_stage_timing.py --frames /tmp/gesture_frames.npz)

Prints the stage's p50 and p95 over the frames with a hand. Inside the pipeline the stage meets caches the
pose engine has just emptied, so it costs several times what the same calls cost in a tight loop.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", default="/tmp/gesture_frames.npz", help="saved depth frames (made if absent)")
    ap.add_argument("--n", type=int, default=600, help="frames timed (the saved ones cycled)")
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
    ms = []
    with build_pipeline(backend="onnxruntime", models="pose,gesture", overlay=False, threads=1) as p:
        for i in range(30 + a.n):
            r = p.process(RGBDFrame(i, i * 1000.0 / 30.0, depth[i % len(depth)], cam))
            if i >= 30 and r.hand_found:
                ms.append(r.stage_ms["gesture"])
    print(
        f"{os.path.basename(os.getcwd())}: gesture stage p50 {np.median(ms) * 1000:.1f} us, "
        f"p95 {np.percentile(ms, 95) * 1000:.1f} us ({len(ms)} frames with a hand)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
