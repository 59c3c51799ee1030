"""ONNX Runtime vs PyTorch eager latency per model at 1 and 2 threads (batch 1), as a markdown table.

    nice -n 10 .venv/bin/python tools/bench_engines.py --runs 200 [--models compact_s compact_m net6:fc=1024]

Each model is exported once (random weights: latency does not depend on their values) and both backends
run the same synthetic crops. The two backends are *interleaved* call by call, so a neighbour's job that
slows the shared machine slows both alike; compare the two columns of one run, not runs of different days.
A model spec `name:fc=W` builds the model with a W-wide fc head (the seed's 4096-wide heads are ~150 M
parameters; say so wherever such a figure is quoted).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_spec(spec: str) -> tuple[str, dict]:
    name, _, opts = spec.partition(":")
    kwargs = {}
    for part in filter(None, opts.split(",")):
        k, _, v = part.partition("=")
        kwargs[{"fc": "fc_width", "size": "input_size"}.get(k, k)] = int(v)
    return name, kwargs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["compact_s", "compact_m", "net6:fc=1024"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args(argv)

    import torch

    from engines.backends.ort import OrtEngine
    from engines.backends.torch_eager import TorchEngine, build_model
    from engines.calibration import synthetic_crops
    from engines.export_model import export_model
    from engines.manifest import load_manifest
    from stream.bench.stats import summarize

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.models:
            name, kwargs = parse_spec(spec)
            size = kwargs.pop("input_size", None)
            torch.manual_seed(0)
            path = export_model(name, tmp, name=name, crop_size=size, model_kwargs=kwargs, num_parity=2)
            m = load_manifest(path)
            torch.manual_seed(0)
            model = build_model(name, m.training["model_kwargs"])
            params = sum(p.numel() for p in model.parameters())
            c = m.inputs[0].shape[1]
            crops = synthetic_crops(16, m.crop_size, c, seed=0)
            for threads in args.threads:
                ort_eng = OrtEngine(path, m, threads=threads, device="cpu")
                torch_eng = TorchEngine(model, m, threads=threads)
                times = {"onnxruntime": [], "torch": []}
                for i in range(args.warmup + args.runs):
                    x = crops[i % len(crops)][None]
                    for label, eng in (("onnxruntime", ort_eng), ("torch", torch_eng)):
                        t0 = time.perf_counter()
                        eng.infer(x)
                        dt = (time.perf_counter() - t0) * 1e3
                        if i >= args.warmup:
                            times[label].append(dt)
                for label, t in times.items():
                    s = summarize(t)
                    rows.append((spec, m.crop_size, params, label, threads, s))
                    print(
                        f"{spec:>16} {label:>12} threads={threads}: p50 {s.p50:.2f} p95 {s.p95:.2f} p99 {s.p99:.2f} ms",
                        file=sys.stderr,
                    )
                ort_eng.close()

    print(
        f"Machine: {platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}; load average at end "
        f"{os.getloadavg()[0]:.1f}; onnxruntime {__import__('onnxruntime').__version__}, torch {torch.__version__}."
    )
    print()
    print("| model | crop | params | backend | threads | p50 ms | p95 ms | p99 ms | ORT speed-up (p50) |")
    print("|---|---|---|---|---|---|---|---|---|")
    by_key = {(r[0], r[4], r[3]): r[5] for r in rows}
    for spec, size, params, label, threads, s in rows:
        speed = ""
        if label == "onnxruntime":
            speed = f"{by_key[(spec, threads, 'torch')].p50 / s.p50:.2f}x"
        print(
            f"| {spec} | {size} | {params / 1e6:.2f} M | {label} | {threads} | {s.p50:.2f} | {s.p95:.2f} | {s.p99:.2f} | {speed} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
