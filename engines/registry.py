"""Find an engine by path or shipped name, pick a backend, and load it behind the one Engine interface."""

from __future__ import annotations

import logging
from pathlib import Path

from stream.errors import InputError, MissingDependencyError

from .backends.base import Engine
from .manifest import check_expected, load_manifest, manifest_path_for, validate

log = logging.getLogger("handstream.engines")

DEFAULT_DIR = Path(__file__).resolve().parent / "default"
BACKENDS = ("auto", "onnxruntime", "tensorrt", "torch")


def default_engine_path(name: str = "pose") -> Path:
    """The shipped engine `engines/default/NAME.onnx` (its manifest is NAME.json beside it)."""
    path = DEFAULT_DIR / f"{name}.onnx"
    if not path.is_file():
        raise InputError(
            f"no shipped engine named {name!r}; shipped: {', '.join(shipped_engines()) or 'none'}"
        )
    return path


def shipped_engines() -> list[str]:
    """Names of the engines in engines/default (those with both .onnx and .json)."""
    return sorted(p.stem for p in DEFAULT_DIR.glob("*.onnx") if manifest_path_for(p).is_file())


def resolve_engine_path(path_or_name: str | Path) -> Path:
    """A path to an .onnx file, a manifest .json beside one, a folder holding exactly one, or a shipped name."""
    p = Path(path_or_name)
    if p.is_dir():
        found = sorted(p.glob("*.onnx"))
        if len(found) != 1:
            raise InputError(f"{p} holds {len(found)} .onnx files; name one of them")
        return found[0]
    if p.suffix == ".json" and p.with_suffix(".onnx").is_file():
        return p.with_suffix(".onnx")
    if p.is_file():
        if p.suffix != ".onnx":
            raise InputError(f"{p} is not an .onnx engine")
        return p
    if p.suffix or "/" in str(path_or_name) or "\\" in str(path_or_name):
        raise InputError(f"engine {p} not found")
    return default_engine_path(str(path_or_name))


def tensorrt_available() -> tuple[bool, str]:
    """(usable, why not). Usable = tensorrt and pycuda import AND a CUDA device exists."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False, "tensorrt is not installed"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() < 1:
            return False, "no CUDA device"
    except ImportError:
        return False, "pycuda is not installed"
    except Exception as exc:  # pycuda raises LogicError/RuntimeError when the driver is missing
        return False, f"CUDA is not usable ({exc})"
    return True, ""


def choose_backend(backend: str = "auto") -> str:
    """Resolve "auto" (TensorRT when it imports and a CUDA device exists, else ONNX Runtime); refuse an
    unavailable explicit choice with a one-line error saying what to install."""
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "auto":
        ok, why = tensorrt_available()
        chosen = "tensorrt" if ok else "onnxruntime"
        log.info("engine backend auto -> %s%s", chosen, "" if ok else f" (TensorRT: {why})")
        return chosen
    if backend == "tensorrt":
        ok, why = tensorrt_available()
        if not ok:
            raise MissingDependencyError(
                f"TensorRT ({why})", "pip install 'handstream[tensorrt]' on a machine with an NVIDIA GPU"
            )
    elif backend == "onnxruntime":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise MissingDependencyError("onnxruntime", "pip install onnxruntime") from None
    elif backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                "PyTorch (the reference backend)", "pip install 'handstream[train]'"
            ) from None
    return backend


def load_engine(
    path_or_name: str | Path,
    backend: str = "auto",
    threads: int | None = None,
    expect: dict | None = None,
    *,
    optimization: str = "all",
    device: str = "auto",
    precision: str = "fp32",
    checkpoint: str | Path | None = None,
    cache_dir: str | Path | None = None,
    verify: bool = True,
) -> Engine:
    """Load an engine: `path_or_name` is an .onnx (manifest JSON beside it) or a shipped name ("pose").

    backend: "auto" | "onnxruntime" | "tensorrt" | "torch" (auto = TensorRT if usable, else ONNX Runtime;
    the choice is logged and kept in Engine.backend). threads: ONNX Runtime intra-op / torch threads.
    expect: what the pipeline feeds (e.g. {"crop_size": 96, "input_channels": 1}); a contradiction with the
    manifest is a one-line InputError. verify: check the ONNX sha256 against the manifest.
    optimization: ONNX Runtime graph optimization level; device: ONNX Runtime "auto"|"cpu"|"cuda";
    precision: TensorRT fp32|fp16|int8; checkpoint: weights for the torch backend; cache_dir: TensorRT plans.
    """
    onnx_path = resolve_engine_path(path_or_name)
    manifest = load_manifest(manifest_path_for(onnx_path))
    if verify:
        validate(manifest, onnx_path)
    check_expected(manifest, expect)
    chosen = choose_backend(backend)
    if chosen == "onnxruntime":
        from .backends.ort import OrtEngine

        engine: Engine = OrtEngine(
            onnx_path, manifest, threads=threads, optimization=optimization, device=device
        )
    elif chosen == "tensorrt":
        from .backends.trt import TrtEngine

        engine = TrtEngine.from_onnx(onnx_path, manifest, precision=precision, cache_dir=cache_dir)
    else:
        from .backends.torch_eager import TorchEngine

        engine = TorchEngine.from_manifest(manifest, checkpoint=checkpoint, threads=threads, path=onnx_path)
    log.info("loaded %s", engine.describe())
    return engine
