"""Times MediaPipe Hands (legacy `mediapipe.solutions.hands`) per frame on colour frames; prints JSON.

Runs INSIDE the peer's own virtualenv (`bash tools/mediapipe_env.sh` makes .cache/mediapipe-venv), never in
the project's: MediaPipe pins an old numpy/protobuf. It therefore imports nothing from the project, only
numpy, OpenCV and mediapipe, and `handstream bench --peers mediapipe` drives it as a subprocess.

    .cache/mediapipe-venv/bin/python tools/mediapipe_peer.py --npz frames.npz --frames 200 --json out.json
    .cache/mediapipe-venv/bin/python tools/mediapipe_peer.py --image ../shared/data/nyu/rgb_1_0000001.png
    .cache/mediapipe-venv/bin/python tools/mediapipe_peer.py --npz frames.npz --landmarks out.npz

`--landmarks OUT.npz` does not time anything: it runs palm detection + landmarks on every frame once
(static_image_mode=True, the first `--complexity`) and writes what MediaPipe saw -- `world_m` (N, 21, 3),
its metric "world" landmarks in metres about the hand's centre, `image` (N, 21, 3), normalised image x, y
and relative depth, `handedness` (N,) "Left"/"Right"/"" and `score` (N,), NaN/empty where no hand was found --
so skeletons from another hand model and coordinate frame can be fed to our evaluations
(tools/gesture_other_skeletons.py).

Input: an .npz holding colour frames as (N, H, W, 3) uint8 BGR (key `color_bgr`, else the first such
array), a video file, or one image repeated. Each configuration (mode x model complexity) gets a fresh
`Hands(static_image_mode=..., model_complexity=..., max_num_hands=1)`, `--warmup` untimed frames, then
`--frames` timed ones (the input is cycled if it is shorter). The time of one frame is BGR->RGB conversion
plus `Hands.process`, i.e. what a caller holding an OpenCV frame pays; it is measured with
time.perf_counter_ns around exactly that. Modes: `tracking` (static_image_mode=False: palm detection only
when the tracked hand is lost) and `detection` (static_image_mode=True: palm detection on every frame).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

PERCENTILES = (50, 95, 99)


def load_frames(args: argparse.Namespace) -> tuple[list[np.ndarray], str]:
    """The colour frames to time, as BGR uint8 arrays, and a description of where they came from."""
    if args.npz:
        with np.load(args.npz) as data:
            key = "color_bgr" if "color_bgr" in data.files else None
            if key is None:
                key = next((k for k in data.files if data[k].dtype == np.uint8 and data[k].ndim == 4), None)
            if key is None:
                raise SystemExit(f"{args.npz}: no (N, H, W, 3) uint8 colour array (key color_bgr)")
            arr = data[key]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise SystemExit(f"{args.npz}:{key} has shape {arr.shape}, expected (N, H, W, 3)")
        return [np.ascontiguousarray(f) for f in arr], f"npz:{Path(args.npz).name}:{key}"
    if args.video:
        cap = cv2.VideoCapture(args.video)
        frames = []
        while len(frames) < args.frames + args.warmup:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        if not frames:
            raise SystemExit(f"{args.video}: no frames could be decoded")
        return frames, f"video:{Path(args.video).name}"
    img = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"{args.image}: not a readable image")
    return [img], f"image:{Path(args.image).name} (repeated)"


def summarize(ms: np.ndarray) -> dict:
    out = {f"p{p}": float(np.percentile(ms, p)) for p in PERCENTILES}
    out.update(mean=float(ms.mean()), min=float(ms.min()), max=float(ms.max()), n=int(ms.size))
    return out


def time_config(hands_mod, frames: list[np.ndarray], mode: str, complexity: int, n: int, warmup: int) -> dict:
    """Per-frame latency of one fresh Hands instance over `warmup` + `n` frames (input cycled)."""
    static = mode == "detection"
    ms = np.empty(n, dtype=np.float64)
    found = 0
    with hands_mod.Hands(
        static_image_mode=static,
        model_complexity=complexity,
        max_num_hands=1,
        min_detection_confidence=0.5,
        min_tracking_confidence=0.5,
    ) as hands:
        for i in range(warmup + n):
            frame = frames[i % len(frames)]
            t0 = time.perf_counter_ns()
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            res = hands.process(rgb)
            dt = (time.perf_counter_ns() - t0) / 1e6
            if i >= warmup:
                ms[i - warmup] = dt
                found += res.multi_hand_landmarks is not None
    stats = summarize(ms)
    stats.update(
        mode=mode,
        static_image_mode=static,
        model_complexity=complexity,
        warmup=warmup,
        hand_frames=int(found),
        detection_rate=found / n,
        ms=[round(float(v), 4) for v in ms],
    )
    return stats


def landmarks(hands_mod, frames: list[np.ndarray], complexity: int) -> dict[str, np.ndarray]:
    """MediaPipe's landmarks of the first hand it finds in every frame (NaN where none)."""
    n = len(frames)
    world = np.full((n, 21, 3), np.nan, np.float32)
    image = np.full((n, 21, 3), np.nan, np.float32)
    side = np.full(n, "", dtype="<U5")
    score = np.full(n, np.nan, np.float32)
    with hands_mod.Hands(
        static_image_mode=True, model_complexity=complexity, max_num_hands=1, min_detection_confidence=0.5
    ) as hands:
        for i, frame in enumerate(frames):
            res = hands.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if not res.multi_hand_landmarks:
                continue
            image[i] = [(p.x, p.y, p.z) for p in res.multi_hand_landmarks[0].landmark]
            if res.multi_hand_world_landmarks:
                world[i] = [(p.x, p.y, p.z) for p in res.multi_hand_world_landmarks[0].landmark]
            if res.multi_handedness:
                c = res.multi_handedness[0].classification[0]
                side[i], score[i] = c.label, c.score
    return {"world_m": world, "image": image, "handedness": side, "score": score}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--npz", help="(N, H, W, 3) uint8 BGR frames (key color_bgr)")
    src.add_argument("--video", help="a video file (read with OpenCV)")
    src.add_argument("--image", help="one colour image, repeated")
    ap.add_argument("--frames", type=int, default=200, help="timed frames per configuration")
    ap.add_argument("--warmup", type=int, default=20, help="untimed frames first, per configuration")
    ap.add_argument("--modes", default="tracking,detection", help="comma list of tracking, detection")
    ap.add_argument("--complexity", default="0,1", help="comma list of model complexities (0, 1)")
    ap.add_argument("--json", help="write the JSON here as well as to stdout")
    ap.add_argument("--landmarks", help="write every frame's landmarks to this .npz instead of timing")
    args = ap.parse_args(argv)
    if args.frames < 1 or args.warmup < 0:
        ap.error("--frames must be >= 1 and --warmup >= 0")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or set(args.modes) - {"tracking", "detection"}:
        ap.error(f"--modes must be tracking and/or detection, got {args.modes}")
    try:
        args.complexity = [int(c) for c in args.complexity.split(",") if c.strip()]
    except ValueError:
        ap.error("--complexity must be a comma list of 0 and/or 1")
    if not args.complexity or set(args.complexity) - {0, 1}:
        ap.error(f"--complexity must be 0 and/or 1, got {args.complexity}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import mediapipe as mp
    from mediapipe.python.solutions import hands as hands_mod

    frames, origin = load_frames(args)
    if args.landmarks:
        out = landmarks(hands_mod, frames, args.complexity[0])
        np.savez(args.landmarks, **out)
        found = int(np.isfinite(out["world_m"][:, 0, 0]).sum())
        sys.stdout.write(json.dumps({"frames": len(frames), "found": found, "out": args.landmarks}) + "\n")
        return 0
    results = {}
    for mode in args.modes:
        for c in args.complexity:
            results[f"mediapipe_{mode}_c{c}"] = time_config(
                hands_mod, frames, mode, c, args.frames, args.warmup
            )
    out = {
        "tool": "mediapipe_peer",
        "input": origin,
        "input_frames": len(frames),
        "frame_shape": list(frames[0].shape),
        "timing": "perf_counter_ns around cv2.cvtColor(BGR->RGB) + Hands.process, per frame",
        "versions": {
            "mediapipe": mp.__version__,
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "python": platform.python_version(),
        },
        "peers": results,
    }
    text = json.dumps(out)
    if args.json:
        Path(args.json).write_text(text)
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
