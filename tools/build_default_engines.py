"""Produce the shipped engines (engines/default/NAME.onnx + NAME.json) from checkpoints, in one command.

    python tools/build_default_engines.py --checkpoints checkpoints/       # every DEFAULT_ENGINES entry
    python tools/build_default_engines.py --placeholder                    # untrained stand-in, same model

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
    # compact_s, not Depth-Net: Net6's fc-4096 head is ~150 M parameters (~600 MB), neither shippable in
    # the repository nor real time on a CPU (seed 003 optimises accuracy only; we deviate for latency).
    # crop 64 / cube 300 mm: what `handstream train pose` trains the real default with.
    "pose": {"model": "compact_s", "num_joints": 21, "crop_size": 64, "cube_mm": 300.0},
}
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def placeholder_checkpoint(
    path: Path,
    model: str = "compact_s",
    num_joints: int = 21,
    crop_size: int = 64,
    cube_mm: float = 300.0,
    seed: int = 0,
) -> Path:
    """Write a checkpoint of `model` with random weights whose output is a fixed open hand (the last
    layer's bias) plus a small input-dependent wobble, so the overlay draws a recognisable skeleton
    before a trained engine exists. Same model and crop size as the real default will be."""
    import torch
    from torch import nn

    from train.models import create_model

    torch.manual_seed(seed)
    net = create_model(model, num_joints=num_joints, input_size=crop_size)
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    if num_joints == 21:
        with torch.no_grad():
            last.weight.mul_(0.05)
            last.bias.copy_(torch.from_numpy(_open_hand_21()).reshape(-1))
    meta = {
        "model_name": model,
        "model_kwargs": {},
        "crop_size": crop_size,
        "num_joints": num_joints,
        "cube_mm": cube_mm,
    }
    torch.save({"model_state": net.state_dict(), **meta}, path)  # the layout train/trainer.py writes
    return path


def _open_hand_21() -> np.ndarray:
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
    import tempfile

    from engines.export_model import export_model

    spec = DEFAULT_ENGINES[name]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = placeholder_checkpoint(
            Path(tmp) / f"{name}.pt", spec["model"], spec["num_joints"], spec["crop_size"], spec["cube_mm"]
        )
        return export_model(
            None,
            out_dir,
            name=name,
            checkpoint=ckpt,
            version="0.0.1-placeholder",
            metrics={"trained": False},
            training={
                "checkpoint": None,
                "checkpoint_sha256": None,
                "note": "untrained placeholder (tools/build_default_engines.py --placeholder): random "
                "weights, output = a fixed open hand; replace with --checkpoints",
            },
        )


def build_from_checkpoints(ckpt_dir: Path, out_dir: Path, only: list[str] | None) -> list[Path]:
    from engines.backends.torch_eager import load_checkpoint
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
                # the checkpoint's own cube (trainer meta) wins; DEFAULT_ENGINES only fills a gap
                cube_mm=None if "cube_mm" in load_checkpoint(found[n])[1] else spec.get("cube_mm"),
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
