"""Produce the shipped engines (engines/default/NAME.onnx + NAME.json) from checkpoints, in one command.

    python tools/build_default_engines.py --checkpoints checkpoints/       # every DEFAULT_ENGINES entry
    python tools/build_default_engines.py --placeholder                    # untrained stand-in (no train/)

A checkpoint `checkpoints/NAME.pt` (or .pth/.ckpt) becomes engine NAME; its model comes from the
checkpoint's meta (model_name/model + model_kwargs) or else from DEFAULT_ENGINES. `--placeholder` writes a
small randomly initialised pose net with the right I/O so the runtime can run end to end before a trained
checkpoint exists; its manifest says `metrics.trained: false`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Engines the pipeline offers: name -> how to build it when the checkpoint's meta does not say.
DEFAULT_ENGINES: dict[str, dict] = {
    "pose": {"model": "depthnet", "crop_size": 128, "num_joints": 21, "input": "depth", "cube_mm": 300.0},
}
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def placeholder_model(crop_size: int = 128, num_joints: int = 21, seed: int = 0):
    """A compact Depth-Net-shaped net (conv groups + max-pool, fc head), random weights, ~0.3 M params.

    Deliberately not Depth-Net itself (seed 003 Fig. 4.3): its fc-4096 layers are >100 M parameters,
    far too large to ship in the repository untrained."""
    import torch
    from torch import nn

    def block(i: int, o: int) -> list:
        return [nn.Conv2d(i, o, 3, padding=1), nn.ReLU(inplace=True)]

    torch.manual_seed(seed)
    feat = crop_size // 16
    net = nn.Sequential(
        *block(1, 16), nn.MaxPool2d(2),
        *block(16, 32), nn.MaxPool2d(2),
        *block(32, 32), *block(32, 32), nn.MaxPool2d(2),
        *block(32, 32), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * feat * feat, 128), nn.ReLU(inplace=True), nn.Linear(128, 3 * num_joints),
    )  # fmt: skip
    if num_joints == 21:
        # Output ~ a fixed open hand (bias) plus a small input-dependent wobble, so the overlay draws a
        # recognisable skeleton before a trained engine exists.
        with torch.no_grad():
            net[-1].weight.mul_(0.05)
            net[-1].bias.copy_(torch.from_numpy(_open_hand_21()).reshape(-1))
    return net


def _open_hand_21():
    """MediaPipe-21 open right hand, palm to camera, normalized cube coordinates (x right, y down, z
    forward; 1 = half a cube). Wrist, then thumb/index/middle/ring/pinky from base to tip."""
    pts = [(0.0, 0.55, 0.05)]
    bases = [(-0.25, 0.35), (-0.15, 0.0), (-0.02, -0.03), (0.1, 0.0), (0.21, 0.07)]
    dirs = [(-0.6, -0.8), (-0.1, -1.0), (0.0, -1.0), (0.1, -1.0), (0.25, -1.0)]
    lens = [0.14, 0.17, 0.19, 0.17, 0.13]
    for (bx, by), (dx, dy), seg in zip(bases, dirs, lens):
        n = float(np.hypot(dx, dy))
        for k in range(4):
            pts.append((bx + dx / n * seg * k, by + dy / n * seg * k, -0.02 * k))
    return np.asarray(pts, dtype=np.float32)


def build_placeholder(out_dir: Path, name: str = "pose") -> Path:
    from engines.export import export_onnx

    spec = DEFAULT_ENGINES.get(name, DEFAULT_ENGINES["pose"])
    s, j = spec["crop_size"], spec["num_joints"]
    fields = {
        "version": "0.0.1-placeholder",
        "task": "pose",
        "preprocessing": {
            "crop_size": s,
            "cube_mm": spec["cube_mm"],
            "input": spec["input"],
            "depth_normalization": "com_cube_clip_-1_1",
            "joint_layout": "mediapipe21" if j == 21 else "nyu14",
            "num_joints": j,
            "rgb_mean": [0.485, 0.456, 0.406],
            "rgb_std": [0.229, 0.224, 0.225],
        },
        "training": {
            "model": None,
            "note": "untrained placeholder (tools/build_default_engines.py --placeholder)",
        },
        "metrics": {"trained": False},
    }
    return export_onnx(placeholder_model(s, j), out_dir, name, (1, 1, s, s), fields)


def build_from_checkpoints(ckpt_dir: Path, out_dir: Path, only: list[str] | None) -> list[Path]:
    from engines.export_model import export_model
    from stream.errors import InputError

    found = {p.stem: p for p in sorted(ckpt_dir.iterdir()) if p.suffix in CHECKPOINT_SUFFIXES}
    names = only or sorted(set(found) | set(DEFAULT_ENGINES))
    missing = [n for n in names if n not in found]
    if missing:
        raise InputError(
            f"no checkpoint for {missing} in {ckpt_dir} (expected NAME{{{','.join(CHECKPOINT_SUFFIXES)}}})"
        )
    written = []
    for n in names:
        spec = DEFAULT_ENGINES.get(n, {})
        written.append(
            export_model(
                None,  # the checkpoint's meta names its model; DEFAULT_ENGINES is the fallback
                out_dir,
                name=n,
                checkpoint=found[n],
                default_model=spec.get("model"),
                input_kind=spec.get("input", "depth"),
                cube_mm=spec.get("cube_mm", 300.0),
            )
        )
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--checkpoints", type=Path, help="folder with NAME.pt checkpoints")
    group.add_argument("--placeholder", action="store_true", help="write an untrained stand-in pose engine")
    ap.add_argument("--out", type=Path, default=REPO / "engines" / "default")
    ap.add_argument("--only", nargs="*", help="engine names to build (default: all found + all offered)")
    args = ap.parse_args(argv)
    from stream.errors import HandstreamError

    try:
        if args.placeholder:
            paths = [build_placeholder(args.out)]
        else:
            if not args.checkpoints.is_dir():
                print(f"error: {args.checkpoints} is not a folder", file=sys.stderr)
                return 2
            paths = build_from_checkpoints(args.checkpoints, args.out, args.only)
    except HandstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB) + {p.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
