"""`handstream build DIR --backend tensorrt [--precision fp32|fp16|int8]`: build TensorRT plans for every
engine (NAME.onnx + NAME.json) in DIR, stored beside them (or in --cache-dir) under a key of ONNX hash,
TensorRT version, GPU name and precision, where `load_engine(..., backend="tensorrt")` finds them."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stream.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="handstream build", description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="folder with NAME.onnx + NAME.json (or one .onnx file)")
    ap.add_argument(
        "--backend", choices=("tensorrt",), default="tensorrt", help="only TensorRT needs a build step"
    )
    ap.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    ap.add_argument("--cache-dir", type=Path, help="where plans go (default: beside the ONNX files)")
    ap.add_argument(
        "--check", action="store_true", help="after building, compare with ONNX Runtime on synthetic crops"
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dir.is_file():
        onnx_files = [args.dir]
    elif args.dir.is_dir():
        onnx_files = sorted(args.dir.glob("*.onnx"))
    else:
        raise InputError(f"{args.dir} does not exist")
    if not onnx_files:
        raise InputError(f"no .onnx engines in {args.dir}")
    from .manifest import load_manifest, validate
    from .registry import choose_backend

    # Check every manifest before spending minutes on builds.
    manifests = {}
    for p in onnx_files:
        manifests[p] = load_manifest(p)
        validate(manifests[p], p)
    choose_backend("tensorrt")  # one-line MissingDependencyError without TensorRT + a CUDA device
    from .backends.trt import TrtEngine

    for p, m in manifests.items():
        t0 = time.perf_counter()
        eng = TrtEngine.from_onnx(p, m, precision=args.precision, cache_dir=args.cache_dir or p.parent)
        msg = f"{p.name}: {args.precision} plan {eng.plan_path} ({time.perf_counter() - t0:.1f} s)"
        if args.check:
            msg += f", max |TensorRT - ONNX Runtime| = {_compare(p, eng):.3g}"
        eng.close()
        print(msg)
    return 0


def _compare(onnx_path: Path, eng) -> float:
    import numpy as np

    from .backends.ort import OrtEngine
    from .calibration import synthetic_crops

    ref = OrtEngine(onnx_path, eng.manifest, device="cpu")
    spec = eng.manifest.inputs[0]
    crops = synthetic_crops(8, int(spec.shape[-1]), int(spec.shape[1]), seed=99)
    worst = 0.0
    for c in crops:
        a, b = ref.infer(c[None]), eng.infer(c[None])
        worst = max(worst, max(float(np.max(np.abs(a[k] - b[k]))) for k in a))
    return worst
