"""A/B of the per-frame path between two checkouts, on identical frames: run it from each checkout's root,
alternating, and compare the medians printed on one line each.

    .venv/bin/python tools/ab_pipeline.py save --out /tmp/ab.npz          # once: the frames, from this checkout
    (cd OTHER && /path/to/.venv/bin/python /path/to/tools/ab_pipeline.py time --frames /tmp/ab.npz --label old)
    .venv/bin/python tools/ab_pipeline.py time --frames /tmp/ab.npz --label new

`time` builds the default pipeline of the checkout it runs in (preprocess + pose on ONNX Runtime, one thread
+ One Euro, no overlay) and times `Pipeline.process` on the saved depth frames, cycled. Comparing two
checkouts on the generator's frames would mix in any change to the generator itself; saved frames do not.
Only numpy and the checkout's own `stream` are used, so an older checkout runs it unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def save(out: str, frames: int, seed: int, two_hands: bool = False) -> None:
    if two_hands:  # the generator's two-hand scene (a right and a left hand), one sequence
        from stream.frames import camera
        from stream.synth import HandSynthesizer, SceneConfig

        cfg = SceneConfig(camera=camera("d435_640x480"), two_hands=True)
        fr = [s.frame for s in HandSynthesizer(cfg, seed).sequence(frames)]
    else:
        from stream.sources.synthetic import SyntheticSource

        fr = list(SyntheticSource(n_frames=frames, seed=seed, cam="d435_640x480"))
    np.savez(out, depth=np.stack([f.depth_mm for f in fr]))
    print(f"{len(fr)} frames -> {out}")


def time_it(path: str, label: str, n: int, warmup: int, max_hands: int | None = None) -> None:
    sys.path.insert(0, os.getcwd())  # the checkout this runs in, not the one the script lives in
    from stream.frames import RGBDFrame, camera
    from stream.pipeline import build_pipeline

    depth = np.load(path)["depth"]
    cam = camera("d435_640x480")
    stages: dict[str, list[float]] = {}
    total = []
    # max_hands only when asked for: a checkout from before it existed still runs this script
    extra = {} if max_hands is None else {"max_hands": max_hands}
    with build_pipeline(backend="onnxruntime", models="pose", overlay=False, threads=1, **extra) as p:
        hands = getattr(p, "max_hands", 1)
        for i in range(warmup + n):
            r = p.process(RGBDFrame(i, i * 1000.0 / 30.0, depth[i % len(depth)], cam))
            if i >= warmup:
                for k, v in r.stage_ms.items():
                    stages.setdefault(k, []).append(v)
                total.append(sum(r.stage_ms.values()))
    meds = " ".join(f"{k} {np.median(v):.3f}" for k, v in stages.items())
    means = " ".join(f"{k} {np.mean(v):.3f}" for k, v in stages.items())
    # the hands a frame it ran with: build_pipeline's default is one, the command line's two
    print(
        f"{label} (max_hands {hands}): median ms {meds}, stage sum {np.median(total):.3f} ({n} frames); mean"
        f" ms {means}, stage sum {np.mean(total):.3f}, p95 {np.percentile(total, 95):.3f}",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save")
    s.add_argument("--out", required=True)
    s.add_argument("--frames", type=int, default=60)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--two-hands", action="store_true", help="frames of the generator's two-hand scene")
    t = sub.add_parser("time")
    t.add_argument("--frames", required=True)
    t.add_argument("--label", default=os.path.basename(os.getcwd()))
    t.add_argument("--n", type=int, default=600)
    t.add_argument("--warmup", type=int, default=30)
    t.add_argument(
        "--max-hands",
        type=int,
        default=None,
        help="1 or 2 (default: build_pipeline's own, one hand; the command line runs two)",
    )
    a = ap.parse_args()
    if a.cmd == "save":
        save(a.out, a.frames, a.seed, a.two_hands)
    else:
        time_it(a.frames, a.label, a.n, a.warmup, a.max_hands)
    return 0


if __name__ == "__main__":
    sys.exit(main())
