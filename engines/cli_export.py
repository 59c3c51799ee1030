"""`handstream export MODEL [--checkpoint CKPT] [--out DIR] [--crop-size S] ...`: a model of train/ to ONNX
+ manifest, checked (onnx.checker), simplified (onnxslim) and verified against PyTorch (max |diff| <= 1e-4)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stream.errors import InputError


def _kv(text: str) -> tuple[str, object]:
    """--model-arg fc_width=256 -> ("fc_width", 256); values parsed as JSON when they are JSON."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="handstream export", description=__doc__.splitlines()[0])
    ap.add_argument(
        "model",
        nargs="?",
        help="model name (see `handstream models`); optional with a checkpoint that records it",
    )
    ap.add_argument("--checkpoint", type=Path, help="weights (.pt); without one the engine is untrained")
    ap.add_argument(
        "--out", type=Path, default=Path("engines_out"), help="output folder (default: engines_out)"
    )
    ap.add_argument("--name", help="engine name = file stem (default: the model name)")
    ap.add_argument("--crop-size", type=int, help="input crop size S (default: the model's own)")
    ap.add_argument("--num-joints", type=int, help="joints J (default: the checkpoint's, else 21)")
    ap.add_argument(
        "--cube-mm",
        type=float,
        help="hand cube edge the crops are cut with, mm (default: the checkpoint's, else 250)",
    )
    ap.add_argument(
        "--model-arg",
        type=_kv,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra create_model option, e.g. fc_width=256 (repeatable)",
    )
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--dynamic-batch", action="store_true", help="export with a symbolic batch dimension")
    ap.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    ap.add_argument("--version", default="0.1.0", help="engine version recorded in the manifest")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.checkpoint is None and args.model is None:
        raise InputError("name a model or give --checkpoint")
    from stream.outputs import check_outputs, prepare_folder

    check_outputs([("--out", args.out)], [args.checkpoint])
    prepare_folder(args.out, "--out folder")
    from .export_model import export_model

    path = export_model(
        args.model,
        args.out,
        name=args.name,
        checkpoint=args.checkpoint,
        crop_size=args.crop_size,
        num_joints=args.num_joints,
        cube_mm=args.cube_mm,
        model_kwargs=dict(args.model_arg),
        opset=args.opset,
        dynamic_batch=args.dynamic_batch,
        simplify=not args.no_simplify,
        version=args.version,
    )
    from .manifest import load_manifest

    m = load_manifest(path)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) + {path.with_suffix('.json').name}: "
        f"{m.training.get('model')} {list(m.inputs[0].shape)} -> {list(m.outputs[0].shape)}, "
        f"parity max |diff| {m.export['parity_max_abs_diff']:.2g}, trained={m.metrics.get('trained')}"
    )
    return 0
