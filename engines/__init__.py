"""Engines: export PyTorch -> ONNX, build TensorRT engines, one inference interface over TensorRT,
ONNX Runtime and PyTorch, and the shipped default engines with their manifests.

Importing this package never imports torch; the PyTorch backend and the exporter import it lazily.

    import engines
    eng = engines.load_engine("pose", backend="auto", expect={"crop_size": 128, "input_channels": 1})
    joints = eng.infer(crop[None, None])["joints"].reshape(-1, 3)
"""

from __future__ import annotations

from . import export, manifest
from .backends.base import Engine
from .manifest import Manifest, TensorSpec, check_expected, load_manifest, validate
from .registry import (
    BACKENDS,
    choose_backend,
    default_engine_path,
    load_engine,
    resolve_engine_path,
    shipped_engines,
    tensorrt_available,
)

__all__ = [
    "BACKENDS",
    "Engine",
    "Manifest",
    "TensorSpec",
    "check_expected",
    "choose_backend",
    "default_engine_path",
    "load_engine",
    "load_manifest",
    "export",
    "manifest",
    "resolve_engine_path",
    "shipped_engines",
    "tensorrt_available",
    "validate",
]
