"""CPU latency of every pose model, batch 1, single thread: p50/p95/p99 in ms.

    python tools/bench_pose_models.py [--models compact_s,net6] [--runs 300] [--json out.json]

Compact models run through ONNX Runtime (CPUExecutionProvider, intra/inter-op threads 1, graph optimizations
on) -- how the pipeline runs them. The seed's full-size nets (Net1-Net9 and the fusion nets, 150-300 M
parameters, 600 MB-1.2 GB ONNX files) run in PyTorch eager mode (1 thread, no_grad) with fewer runs: the
point is their order of magnitude, not the last percent.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "runs": len(a),
    }


def bench_ort(model, shape, runs: int, warmup: int = 30) -> dict:
    import onnxruntime as ort
    import torch

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.onnx"
        torch.onnx.export(
            model,
            torch.zeros(shape),
            str(p),
            input_names=["x"],
            output_names=["y"],
            opset_version=17,
            dynamo=False,
        )
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
        for _ in range(warmup):
            sess.run(None, {"x": x})
        ms = []
        for _ in range(runs):
            t = time.perf_counter()
            sess.run(None, {"x": x})
            ms.append((time.perf_counter() - t) * 1e3)
        size_mb = p.stat().st_size / 1e6
    return {**_stats(ms), "backend": "onnxruntime", "onnx_mb": round(size_mb, 2)}


def bench_torch(model, shape, runs: int, warmup: int = 2) -> dict:
    import torch

    x = torch.zeros(shape)
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        ms = []
        for _ in range(runs):
            t = time.perf_counter()
            model(x)
            ms.append((time.perf_counter() - t) * 1e3)
    return {**_stats(ms), "backend": "torch-eager"}


def main(argv=None) -> int:
    import torch

    from train.models import MODEL_SPECS, create_model, model_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="", help="comma-separated names (default: all)")
    p.add_argument("--runs", type=int, default=300, help="timed runs for ONNX Runtime models")
    p.add_argument("--big-runs", type=int, default=10, help="timed runs for the full-size nets")
    p.add_argument("--sizes", default="", help="input size overrides, e.g. compact_s=64")
    p.add_argument("--json", help="write results here")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    names = [n for n in a.models.split(",") if n] or list(MODEL_SPECS)
    sizes = dict(kv.split("=") for kv in a.sizes.split(",") if kv)
    rows = []
    for n in names:
        spec = MODEL_SPECS[n]
        size = int(sizes.get(n, spec.default_input_size))
        info = model_info(n, input_size=size)
        model = create_model(n, input_size=size).eval()
        shape = (1, spec.in_channels, size, size)
        r = (
            bench_ort(model, shape, a.runs)
            if n.startswith("compact")
            else bench_torch(model, shape, a.big_runs)
        )
        row = {"name": n, "input": f"{spec.in_channels}x{size}x{size}", "params": info.params, **r}
        rows.append(row)
        print(
            f"| {n} | {row['input']} | {info.params / 1e6:.2f} M | {r['backend']} | {r['p50']:.3f} | {r['p95']:.3f} | {r['p99']:.3f} |",
            flush=True,
        )
        del model
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
