"""Model variants side by side: an engine per variant, its latency on the same crops, and its accuracy.

Where a variant has a trained engine (a shipped one in engines/default whose manifest names that model, or
a path the user gives as NAME=PATH: an .onnx engine, or a training checkpoint .pt exported here once), that
engine is timed and its accuracy is what `handstream eval synthetic` measures on --accuracy-data (else what
its manifest records). Otherwise the variant is exported from
its initial weights into a cache (.cache/bench/variants): the graph, and so the latency, is exactly the
trained one's, but it has no accuracy to report, and the report says "untrained" rather than inventing one.
Exporting needs torch and onnx (train/dev extras), imported only here, only when a variant needs exporting.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from ..errors import HandstreamError, InputError

DEFAULT_VARIANTS = ("default", "net6", "compact_s", "compact_gap", "compact_m", "compact_conv")
CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "bench" / "variants"


def parse_variant(spec: str) -> tuple[str, str | None]:
    """'compact_s' -> ('compact_s', None); 'mine=/path/x.onnx' (or a .pt checkpoint) -> ('mine', path)."""
    name, sep, path = spec.partition("=")
    name = name.strip()
    if not name or (sep and not path.strip()):
        raise InputError(f"bad variant {spec!r}: use a model name or NAME=PATH.onnx")
    return name, (path.strip() if sep else None)


def _canonical(model_name: str) -> str:
    try:
        from train.models import canonical_name
    except ImportError:
        return model_name.lower().replace("-", "").replace("_", "")
    try:
        return canonical_name(model_name)
    except KeyError:
        return model_name


def shipped_for_model(model_name: str) -> Path | None:
    """A shipped engine exported from this train/ model, if any (trained weights, recorded metrics)."""
    import engines

    want = _canonical(model_name)
    for name in engines.shipped_engines():
        path = engines.default_engine_path(name)
        m = engines.load_manifest(path)
        if m.model and _canonical(m.model) == want:
            return path
    return None


def export_initial(model_name: str, cache_dir: str | Path | None = None, cube_mm: float = 300.0) -> Path:
    """Export the variant with its initial weights through engines.export_model (cached; re-exported when
    the cached file was altered or was cut for another cube). The manifest says it is untrained."""
    import engines

    out_dir = Path(cache_dir or CACHE_DIR) / model_name
    onnx_path = out_dir / f"{model_name}.onnx"
    if onnx_path.is_file() and onnx_path.with_suffix(".json").is_file():
        try:
            m = engines.load_manifest(onnx_path)
            engines.validate(m, onnx_path)
            if m.preprocessing.get("cube_mm") == float(cube_mm):
                return onnx_path
        except InputError:
            pass
    try:
        import torch

        from engines.export_model import export_model
    except ImportError as exc:
        raise InputError(f"exporting variant {model_name!r} needs torch and train/ ({exc})") from None
    torch.manual_seed(0)
    return export_model(
        model_name,
        out_dir,
        name=model_name,
        cube_mm=float(cube_mm),
        training={"weights": "initial (untrained; latency only)"},
        num_parity=2,
    )


def export_checkpoint(name: str, checkpoint: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A training checkpoint (train/trainer.py, .pt) exported once through engines.export_model, which
    reads the model, crop, cube and metrics from its meta; cached by the checkpoint's sha256."""
    import engines
    from engines.manifest import sha256_file

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise InputError(f"variant {name}: no checkpoint at {checkpoint}")
    sha = sha256_file(checkpoint)
    out_dir = Path(cache_dir or CACHE_DIR) / "checkpoints" / f"{name}_{sha[:12]}"
    onnx_path = out_dir / f"{name}.onnx"
    if onnx_path.is_file() and onnx_path.with_suffix(".json").is_file():
        try:
            engines.validate(engines.load_manifest(onnx_path), onnx_path)
            return onnx_path
        except InputError:
            pass
    try:
        from engines.export_model import export_model
    except ImportError as exc:
        raise InputError(f"exporting checkpoint {checkpoint.name} needs torch and train/ ({exc})") from None
    return export_model(None, out_dir, name=name, checkpoint=checkpoint, num_parity=2)


def accuracy_of(onnx_path: Path, accuracy_data: str | None, limit: int) -> dict:
    """Accuracy on the synthetic test set: measured by `handstream eval synthetic` when a dataset is
    given, else what the engine's manifest recorded, else an honest 'untrained' / 'not recorded'."""
    import engines

    m = engines.load_manifest(onnx_path)
    if str(m.training.get("weights", "")).startswith("initial"):
        return {"text": "untrained (initial weights)"}
    if m.metrics.get("trained") is False:
        return {"text": "untrained placeholder engine"}
    if accuracy_data:
        cmd = [
            sys.executable,
            "-m",
            "stream.cli",
            "eval",
            "synthetic",
            str(onnx_path),
            "--data",
            accuracy_data,
            "--json",
        ]
        if limit:
            cmd += ["--limit", str(limit)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode == 0 and proc.stdout.strip():
            s = json.loads(proc.stdout.strip().splitlines()[-1])
            return {
                "mean_error_mm": float(s["mean_mm"]),
                "median_error_mm": float(s["median_mm"]),
                "found": int(s["found"]),
                "frames": int(s["frames_total"]),
                "source": f"handstream eval synthetic {onnx_path.name} --data {accuracy_data}"
                + (f" --limit {limit}" if limit else ""),
            }
        return {"text": f"eval failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"}
    found = _mean_mm_in(m.metrics)
    if found is not None:
        key, v = found
        return {"mean_error_mm": v, "source": f"manifest metrics.{key}"}
    return {"text": "not recorded (pass --accuracy-data DIR)"}


def _mean_mm_in(metrics: dict, prefix: str = "") -> tuple[str, float] | None:
    """The first synthetic-set mean error in a manifest's metrics (a flat or nested `mean_mm`-like key)."""
    best = None
    for k, v in metrics.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            found = _mean_mm_in(v, path + ".")
            if found and (best is None or "synth" in found[0]):
                best = found
        elif isinstance(v, (int, float)) and ("mean" in k and "mm" in k):
            if best is None or "synth" in path:
                best = (path, float(v))
    return best


def resolve_variant(
    spec: str, default_ref: str | Path, cache_dir: str | Path | None = None
) -> tuple[str, Path]:
    """(display name, engine path) for one --variants entry."""
    import engines

    name, path = parse_variant(spec)
    if path and path.endswith(".pt"):
        return name, export_checkpoint(name, path, cache_dir)
    if path:
        return name, engines.resolve_engine_path(path)
    default = engines.resolve_engine_path(default_ref)
    if name == "default":
        return name, default
    shipped = shipped_for_model(name)
    if shipped:
        return name, shipped
    cube = float(engines.load_manifest(default).preprocessing.get("cube_mm", 300.0))
    return name, export_initial(name, cache_dir, cube)


def variant_entries(
    specs,
    default_ref,
    crops,
    n: int,
    warmup: int,
    threads: int,
    accuracy_data: str | None,
    limit: int,
    cache_dir: str | Path | None = None,
) -> dict:
    """Latency (ONNX Runtime at `threads`) and accuracy of each variant on the same crops."""
    import engines

    from .engine_timing import time_engine
    from .stats import summarize

    out: dict[str, dict] = {}
    for spec in specs:
        try:
            name, path = resolve_variant(spec, default_ref, cache_dir)
            if name != "default" and path == engines.resolve_engine_path(default_ref):
                continue  # the shipped default is this model: it has its own row
            eng = engines.load_engine(path, backend="onnxruntime", threads=threads)
        except (HandstreamError, ImportError) as exc:
            out[parse_variant(spec)[0] if "=" in spec else spec] = {"skipped": str(exc).splitlines()[0]}
            continue
        try:
            ms = time_engine(eng, crops, n, warmup)
            m = eng.manifest
        finally:
            eng.close()
        out[name] = {
            "engine": str(path),
            "model": m.model,
            "input_shape": list(m.inputs[0].shape),
            "params": _params(m, path),
            "infer_ms": summarize(ms).to_dict(),
            "samples_ms": ms.tolist(),
            "accuracy": accuracy_of(path, accuracy_data, limit),
        }
    return out


def _params(manifest, path: Path) -> int | None:
    """Parameter count: the manifest's, else the ONNX initializers' (onnx is a dev dependency)."""
    for key in ("params", "num_params", "parameters"):
        for section in (manifest.training, manifest.metrics, manifest.export):
            if isinstance(section.get(key), int):
                return section[key]
    try:
        import onnx
    except ImportError:
        return None
    g = onnx.load(str(path), load_external_data=False).graph
    return int(sum(math.prod(t.dims) for t in g.initializer if t.data_type == onnx.TensorProto.FLOAT))
