"""ONNX Runtime backend: the embedded default (CPU everywhere, CUDA provider when the build has it)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stream.errors import InputError, require

from ..manifest import Manifest
from .base import Engine

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
log = logging.getLogger("handstream.engines")


def session_options(threads: int | None, optimization: str = "all"):
    """SessionOptions for low-latency batch-1 inference: `threads` intra-op threads (None = ORT's default,
    one per core), one inter-op thread (a pose net is a chain; parallel branches buy nothing)."""
    ort = require("onnxruntime", "pip install onnxruntime")
    if optimization not in OPTIMIZATION_LEVELS:
        raise InputError(
            f"graph optimization {optimization!r} is not one of {', '.join(OPTIMIZATION_LEVELS)}"
        )
    so = ort.SessionOptions()
    if threads is not None:
        if int(threads) < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    so.log_severity_level = 3  # warnings about unused initializers etc. are noise for the user
    return so


def default_providers(device: str = "auto") -> list[str]:
    """CUDA first when this onnxruntime build has it (and device allows), CPU always as the fallback."""
    ort = require("onnxruntime", "pip install onnxruntime")
    available = ort.get_available_providers()
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device {device!r} is not one of auto, cpu, cuda")
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise InputError(
            "onnxruntime has no CUDA provider here: install onnxruntime-gpu on an NVIDIA machine"
        )
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OrtEngine(Engine):
    backend = "onnxruntime"

    def __init__(
        self,
        onnx_path: str | Path,
        manifest: Manifest,
        threads: int | None = None,
        optimization: str = "all",
        device: str = "auto",
        split_canonical: bool = True,
    ) -> None:
        """`split_canonical`: run a canonical pose engine's canonicalization by a compiled kernel on the CPU
        (backends/canonical.py), where it gives the whole graph's joints; False: always the whole graph."""
        super().__init__(manifest, Path(onnx_path))
        ort = require("onnxruntime", "pip install onnxruntime")
        try:
            self.session = ort.InferenceSession(
                str(onnx_path),
                sess_options=session_options(threads, optimization),
                providers=default_providers(device),
            )
        except Exception as exc:  # ORT raises its own exception types (InvalidGraph, Fail, ...)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"onnxruntime cannot load {onnx_path}: {first}") from None
        self.threads = threads
        self.providers = tuple(self.session.get_providers())
        self._check_io()
        self.split = None
        if split_canonical and self.providers[0] == "CPUExecutionProvider":
            self.split = _canonical_split(onnx_path, self.session, threads, optimization)

    def _check_io(self) -> None:
        """The graph's real I/O must be the manifest's: names, ranks and static sizes."""
        graph = {i.name: i.shape for i in self.session.get_inputs()}
        graph_out = {o.name: o.shape for o in self.session.get_outputs()}
        for kind, specs, have in (
            ("input", self.manifest.inputs, graph),
            ("output", self.manifest.outputs, graph_out),
        ):
            if set(have) != {t.name for t in specs}:
                raise InputError(
                    f"engine {self.path.name}: graph {kind}s {sorted(have)} differ from the manifest's "
                    f"{sorted(t.name for t in specs)}"
                )
            for t in specs:
                g = have[t.name]
                ok = len(g) == len(t.shape) and all(
                    isinstance(a, str) or isinstance(b, str) or a is None or a == b
                    for a, b in zip(g, t.shape)
                )
                if not ok:
                    raise InputError(
                        f"engine {self.path.name}: graph {kind} {t.name!r} has shape {g}, manifest says {list(t.shape)}"
                    )

    @property
    def device(self) -> str:
        return self.providers[0]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.split is not None:
            (x,) = feeds.values()
            outs = self.split.run(x)
            return {n: outs[n] for n in self.output_names}
        outs = self.session.run(list(self.output_names), feeds)
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        super().close()
        self.session = None
        self.split = None


def _canonical_split(onnx_path, whole, threads: int | None, optimization: str):
    """The CPU split of a graph that turns its crop upright (backends/canonical.py) when it gives the
    whole graph's outputs on a made-up hand (within 1e-4: 0.015 mm of a pose engine's 300 mm cube), else
    None."""
    from .canonical import CanonicalSplit

    try:
        split = CanonicalSplit.build(
            onnx_path, session_options(threads, optimization), ["CPUExecutionProvider"]
        )
        if split is None:
            return None
        diff = split.parity(whole)
    except Exception as exc:  # noqa: BLE001 - the whole graph still runs; say why once
        log.warning(
            "%s: running the whole graph (its canonicalization did not split: %s)", Path(onnx_path).name, exc
        )
        return None
    if not diff <= 1e-4:
        log.warning("%s: running the whole graph (the split differs by %.3g)", Path(onnx_path).name, diff)
        return None
    return split
