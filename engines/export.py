"""PyTorch -> ONNX export with a graph check, optional simplification, a parity test and a manifest.

The exported file is only written under its final name once it has passed onnx.checker and matched
PyTorch within `atol` on real-looking inputs; a failed export leaves nothing behind that the runtime
could pick up. torch, onnx and onnxslim are imported inside the functions (the runtime never needs them).
"""

from __future__ import annotations

import logging
import platform
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from stream.errors import HandstreamError, InputError, require

from .calibration import synthetic_crops
from .manifest import Manifest, TensorSpec, save_manifest

log = logging.getLogger("handstream.engines")

MIN_OPSET = 17
PARITY_ATOL = 1e-4


class ExportError(HandstreamError):
    """The exported graph failed a check (onnx.checker or parity with PyTorch)."""


def _as_outputs(result, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    import torch

    if isinstance(result, torch.Tensor):
        result = (result,)
    elif isinstance(result, dict):
        result = tuple(result[n] for n in names)
    if len(result) != len(names):
        raise ExportError(f"the model returns {len(result)} outputs, output_names has {len(names)}")
    return {n: r.detach().cpu().numpy() for n, r in zip(names, result)}


def torch_outputs(model, x: np.ndarray, output_names: tuple[str, ...] = ("joints",)) -> dict[str, np.ndarray]:
    """Run the eval-mode model on a float32 batch without autograd."""
    import torch

    with torch.inference_mode():
        return _as_outputs(model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))), output_names)


def _ort_session(path: Path):
    ort = require("onnxruntime", "pip install onnxruntime")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def parity_max_abs_diff(
    model,
    onnx_path: Path,
    inputs: np.ndarray,
    batch_size: int = 1,
    output_names: tuple[str, ...] = ("joints",),
) -> float:
    """Largest |PyTorch - ONNX Runtime| over all outputs and inputs, fed `batch_size` at a time."""
    sess = _ort_session(onnx_path)
    in_name = sess.get_inputs()[0].name
    worst = 0.0
    for i in range(0, len(inputs) - batch_size + 1, batch_size):
        x = np.ascontiguousarray(inputs[i : i + batch_size], dtype=np.float32)
        ref = torch_outputs(model, x, output_names)
        got = dict(zip(output_names, sess.run(list(output_names), {in_name: x})))
        for n in output_names:
            if ref[n].shape != got[n].shape:
                raise ExportError(
                    f"output {n!r}: PyTorch shape {ref[n].shape} != ONNX Runtime {got[n].shape}"
                )
            worst = max(worst, float(np.max(np.abs(ref[n].astype(np.float64) - got[n]))))
    return worst


def _simplify(path: Path, out: Path) -> tuple[bool, int, int]:
    """onnxslim the graph into `out`; returns (kept, nodes before, nodes after). Kept only if it is
    no larger and passes the checker -- a "simplified" graph that grew is not a simplification."""
    import onnx
    import onnxslim

    model = onnx.load(str(path))
    before = len(model.graph.node)
    try:
        slim = onnxslim.slim(model)
    except Exception as exc:  # onnxslim is best-effort; the unsimplified graph is still valid
        log.warning("onnxslim failed (%s); keeping the exported graph", exc)
        return False, before, before
    after = len(slim.graph.node)
    if after > before:
        return False, before, after
    onnx.save(slim, str(out))
    onnx.checker.check_model(str(out), full_check=True)
    return True, before, after


def export_onnx(
    model,
    out_dir: str | Path,
    name: str,
    input_shape: tuple[int, ...],
    manifest_fields: dict,
    opset: int = MIN_OPSET,
    dynamic_batch: bool = False,
    simplify: bool = True,
    parity_inputs: np.ndarray | None = None,
    *,
    input_names: tuple[str, ...] = ("input",),
    output_names: tuple[str, ...] = ("joints",),
    atol: float = PARITY_ATOL,
    num_parity: int = 8,
) -> Path:
    """Export `model` to `out_dir/name.onnx` + `name.json`; return the .onnx path.

    input_shape: (1, C, S, S) (or (C, S, S)); any (1, ...) shape when `parity_inputs` of shape (N, ...) are
    given, for engines whose input is not an image (e.g. joints (1, 21, 3)). manifest_fields: version, task, preprocessing, training,
    metrics (see engines.manifest.Manifest); inputs/outputs are filled from the real export.
    parity_inputs: (N, C, S, S) float32 crops; default: `num_parity` synthetic crops. The export fails
    (ExportError, nothing written) when onnx.checker rejects the graph or max |PyTorch - ORT| > atol.
    """
    torch = require("torch", "pip install 'handstream[train]'", "PyTorch (needed to export)")
    onnx = require("onnx", "pip install onnx", "onnx (needed to export)")
    if opset < MIN_OPSET:
        raise InputError(f"opset {opset} is too old; use {MIN_OPSET} or newer")
    shape = tuple(int(d) for d in input_shape)
    image = parity_inputs is None or np.asarray(parity_inputs).ndim != len(shape)
    if image and len(shape) == 3:
        shape = (1, *shape)
    if (image and len(shape) != 4) or not shape or shape[0] != 1:
        raise InputError(f"input_shape must be (1, C, S, S), got {tuple(input_shape)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{name}.onnx"

    model = model.eval().to("cpu").float()
    if parity_inputs is None:
        parity_inputs = synthetic_crops(num_parity, shape[-1], shape[1], seed=1234)
    parity_inputs = np.asarray(parity_inputs, dtype=np.float32)
    if image and parity_inputs.ndim == 3:
        parity_inputs = parity_inputs[:, None]
    if parity_inputs.shape[1:] != shape[1:]:
        raise InputError(f"parity inputs have shape {parity_inputs.shape[1:]}, the model takes {shape[1:]}")

    example = torch.from_numpy(parity_inputs[:1].copy())
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {n: {0: "batch"} for n in (*input_names, *output_names)}
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{name}-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript
            # (not a dependency here); for plain conv/fc nets both give the same graph.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(raw),
                input_names=list(input_names),
                output_names=list(output_names),
                opset_version=opset,
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
                dynamo=False,
            )
        try:
            onnx.checker.check_model(str(raw), full_check=True)
        except Exception as exc:
            raise ExportError(f"onnx.checker rejected the export of {name!r}: {exc}") from None
        chosen, simplified, nodes = raw, False, None
        if simplify:
            slim = Path(tmp) / "slim.onnx"
            simplified, before, after = _simplify(raw, slim)
            nodes = {"before": before, "after": after}
            if simplified:
                chosen = slim
        diff = parity_max_abs_diff(model, chosen, parity_inputs, 1, output_names)
        if dynamic_batch and len(parity_inputs) >= 2:
            diff = max(diff, parity_max_abs_diff(model, chosen, parity_inputs, 2, output_names))
        if not diff <= atol:
            raise ExportError(
                f"parity failed for {name!r}: max |PyTorch - ONNX Runtime| = {diff:.3g} > {atol:g}"
            )
        chosen.replace(final)

    ref = torch_outputs(model, parity_inputs[:1], output_names)
    batch: int | str = "batch" if dynamic_batch else 1
    inputs = tuple(TensorSpec(n, (batch, *shape[1:])) for n in input_names)
    outputs = tuple(TensorSpec(n, (batch, *ref[n].shape[1:])) for n in output_names)
    fields = dict(manifest_fields)
    pre = dict(fields.get("preprocessing") or {})
    if len(shape) == 4:
        pre.setdefault("crop_size", shape[-1])
    first_out = ref[output_names[0]]
    if fields.get("task", "pose") == "pose" and first_out.ndim == 2 and first_out.shape[1] % 3 == 0:
        pre.setdefault("num_joints", first_out.shape[1] // 3)
    export_info = {
        "opset": opset,
        "dynamic_batch": dynamic_batch,
        "simplified": simplified,
        "nodes": nodes,
        "parity_max_abs_diff": diff,
        "parity_inputs": len(parity_inputs),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "python": platform.python_version(),
        **(fields.get("export") or {}),
    }
    manifest = Manifest(
        name=name,
        version=str(fields.get("version", "0.1.0")),
        task=str(fields.get("task", "pose")),
        inputs=inputs,
        outputs=outputs,
        preprocessing=pre,
        training=dict(fields.get("training") or {}),
        metrics=dict(fields.get("metrics") or {}),
        export=export_info,
    )
    if fields.get("created"):
        manifest = replace(manifest, created=str(fields["created"]))
    manifest = manifest.with_onnx(final)
    save_manifest(manifest, final)
    log.info("exported %s (parity %.2g, simplified=%s)", final, diff, simplified)
    return final
