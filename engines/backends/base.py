"""The one inference interface every backend implements.

The pipeline only ever sees `Engine.infer(x) -> {output name: array}`; which runtime sits behind it
(ONNX Runtime, TensorRT, PyTorch eager) is a load-time choice recorded in `Engine.backend`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from stream.errors import InputError

from ..manifest import Manifest


class Engine(ABC):
    """A loaded engine. Subclasses implement `_run(feeds) -> outputs` and optionally `close()`.

    `infer` accepts a bare array (fed to the single input) or a dict name -> array, checks names,
    shapes and dtypes against the manifest (casting float64 -> float32 etc.), and returns a dict of
    float arrays keyed by output name. Engines are context managers.
    """

    backend: str = "?"

    def __init__(self, manifest: Manifest, path: Path | None = None) -> None:
        self.manifest = manifest
        self.path = path
        self._closed = False
        # the per-frame fast path: one input of a static shape, fed an array that already is exactly it
        ins = manifest.inputs
        self._exact = (
            (ins[0].name, np.dtype(ins[0].dtype), ins[0].shape) if len(ins) == 1 and ins[0].static else None
        )

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.manifest.input_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.manifest.output_names

    @property
    def device(self) -> str:
        """Where it runs, in words (e.g. "CPUExecutionProvider", "cuda:0 NVIDIA A10")."""
        return "cpu"

    def describe(self) -> str:
        src = self.path.name if self.path else self.manifest.name
        return f"engine {src} on {self.backend} ({self.device})"

    def prepare_feeds(self, x: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Normalise what the caller passed into {input name: contiguous array of the declared dtype}."""
        if self._closed:
            raise InputError(f"{self.describe()} is closed")
        exact = self._exact
        if (
            exact is not None
            and type(x) is np.ndarray
            and x.dtype == exact[1]
            and x.shape == exact[2]
            and x.flags.c_contiguous
        ):
            return {exact[0]: x}  # what the checks below would return, without building them per call
        specs = {t.name: t for t in self.manifest.inputs}
        if not isinstance(x, dict):
            if len(specs) != 1:
                raise InputError(
                    f"engine {self.manifest.name!r} has inputs {list(specs)}; pass a dict, not a bare array"
                )
            x = {next(iter(specs)): x}
        missing, extra = set(specs) - set(x), set(x) - set(specs)
        if missing or extra:
            raise InputError(f"engine {self.manifest.name!r} takes inputs {sorted(specs)}, got {sorted(x)}")
        feeds = {}
        for name, arr in x.items():
            spec = specs[name]
            arr = np.ascontiguousarray(arr, dtype=np.dtype(spec.dtype))
            if not spec.matches(arr.shape):
                raise InputError(
                    f"engine {self.manifest.name!r}: input {name!r} has shape {tuple(arr.shape)}, "
                    f"expected {tuple(spec.shape)}"
                )
            feeds[name] = arr
        return feeds

    def infer(self, x: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once. A bare array feeds the single input; the result maps output names to arrays."""
        return self._run(self.prepare_feeds(x))

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def warmup(self, runs: int = 2) -> None:
        """Run a few zero inputs so first-frame latency (lazy allocation, autotuning) is paid up front."""
        feeds = {
            t.name: np.zeros(tuple(1 if isinstance(d, str) else d for d in t.shape), dtype=t.dtype)
            for t in self.manifest.inputs
        }
        for _ in range(runs):
            self._run(feeds)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
