"""What the dynamic_gesture stage costs per frame, on one thread: a synthetic hand performing motions at
30 fps goes through the stage (shipped engine and gallery); the medians of frames that only append to the
track and of frames that evaluate a window (resample, features, engine, nearest enrolled example), the
engine alone, and the mean over all frames. With numba, for both paths: the compiled kernels
(stream/gestures/dynamic_kernels.py) and the numpy path, two copies of the stage fed the same frames
alternately; times are this thread's CPU time.

    OMP_NUM_THREADS=1 python tools/dynamic_gesture_cost.py [--tracks 10] [--stride 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # this checkout's packages, not an installed copy


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=10)
    ap.add_argument("--stride", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import engines
    from stream.frames import RGBDFrame, camera
    from stream.gestures.dynamic import FEATURES, FRAMES
    from stream.gestures.dynamic_stage import DynamicGestureStage
    from stream.stages import FrameState
    from stream.synth import motions

    cam = camera("d435_320x240")
    rng = np.random.default_rng(args.seed)
    with engines.load_engine("dynamic_gesture", backend="onnxruntime", threads=1) as eng:
        stages = {"kernel": DynamicGestureStage(eng, stride=args.stride)}
        if not stages["kernel"].matcher.runs_kernel:
            stages = {"numpy": stages.pop("kernel")}
        else:
            stages["numpy"] = DynamicGestureStage(eng, stride=args.stride)
            stages["numpy"].matcher = copy.copy(stages["numpy"].matcher)
            stages["numpy"].matcher.runs_kernel = False
        times_of = {k: ([], [], []) for k in stages}  # append, evaluate, every
        x = rng.normal(size=(1, FRAMES, FEATURES)).astype(np.float32)
        for _ in range(20):
            eng.infer(x)
        engine_ms = []
        for _ in range(300):
            t0 = time.thread_time()
            eng.infer(x)
            engine_ms.append((time.thread_time() - t0) * 1e3)
        for _ in range(args.tracks):
            names = [str(n) for n in rng.choice(motions.FINE, size=4)]
            times, joints, _ = motions.performance(names, rng, noise_mm=2.0)
            for stage in stages.values():
                stage.reset()
            for i, (t, j) in enumerate(zip(times, joints)):
                for path, stage in stages.items():
                    append, evaluate, every = times_of[path]
                    st = FrameState(RGBDFrame(i, float(t), np.zeros(cam.shape, np.uint16), cam))
                    st.joints_mm = j.astype(np.float64)
                    t0 = time.thread_time()
                    stage.run(st)
                    ms = (time.thread_time() - t0) * 1e3
                    every.append(ms)
                    (evaluate if st.fields["dynamic_gesture_distance"] is not None else append).append(ms)
    out = {"stride": args.stride, "engine_ms_median": round(float(np.median(engine_ms)), 4)}
    for path, (append, evaluate, every) in times_of.items():
        out[path] = {
            "frames": len(every),
            "evaluated_frames": len(evaluate),
            "append_ms_median": round(float(np.median(append)), 4),
            "evaluate_ms_median": round(float(np.median(evaluate)), 4) if evaluate else None,
            "per_frame_ms_mean": round(float(np.mean(every)), 4),
            "per_frame_ms_median": round(float(np.median(every)), 4),
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
