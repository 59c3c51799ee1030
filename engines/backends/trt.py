"""TensorRT backend: build a plan from ONNX (FP32/FP16/INT8), cache it, run it with pycuda.

Written against the TensorRT 10 Python API (tensor-name based I/O: `num_io_tensors`, `get_tensor_name`,
`set_input_shape`, `set_tensor_address`, `execute_async_v3`; `build_serialized_network`). Everything here
imports tensorrt/pycuda inside functions, so this module imports fine on a machine without them; the
GPU-free parts (cache keys, calibration batches, manifest checks) live in trt_cache.py, calibration.py
and manifest.py and are tested there. This file itself can only run on an NVIDIA machine.

CUDA context: the pipeline calls `infer` from its inference thread, not the thread that loaded the
engine, so we retain the device's *primary* context and push/pop it around every CUDA call instead of
relying on pycuda.autoinit (which binds a context to the importing thread only).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stream.errors import HandstreamError, InputError, require

from ..calibration import calibration_batches
from ..manifest import Manifest, sha256_file
from ..trt_cache import PRECISIONS, CacheKey, default_cache_dir, find_plan, make_key, store_plan
from .base import Engine

log = logging.getLogger("handstream.engines")

INSTALL = "pip install 'handstream[tensorrt]' on a machine with an NVIDIA GPU"
DEFAULT_WORKSPACE_MB = 1024
DEFAULT_MAX_BATCH = 8  # upper end of the optimization profile for dynamic-batch engines
CALIBRATION_IMAGES = 256
CALIBRATION_SEED = 0


class TensorRTError(HandstreamError):
    """TensorRT failed to parse, build or load an engine (message: the first parser/builder error)."""


def _modules():
    trt = require("tensorrt", INSTALL, "TensorRT")
    cuda = require("pycuda.driver", INSTALL, "pycuda")
    return trt, cuda


class _CudaContext:
    """The device's primary context, pushed/popped around CUDA work (thread-agnostic)."""

    def __init__(self, device_index: int = 0) -> None:
        _, cuda = _modules()
        cuda.init()
        if cuda.Device.count() <= device_index:
            raise InputError(f"no CUDA device {device_index} (found {cuda.Device.count()})")
        self.device = cuda.Device(device_index)
        self.ctx = self.device.retain_primary_context()

    def __enter__(self):
        self.ctx.push()
        return self

    def __exit__(self, *exc) -> None:
        _, cuda = _modules()
        cuda.Context.pop()

    def detach(self) -> None:
        self.ctx.detach()


def gpu_name(device_index: int = 0) -> str:
    """The GPU's model name, part of the plan cache key (tactics are tuned per GPU model)."""
    _, cuda = _modules()
    cuda.init()
    return cuda.Device(device_index).name()


def trt_version() -> str:
    trt, _ = _modules()
    return str(trt.__version__)


def _dynamic_batch(manifest: Manifest) -> bool:
    return any(isinstance(t.shape[0], str) for t in manifest.inputs)


def cache_key(
    manifest: Manifest,
    onnx_sha256: str,
    precision: str,
    *,
    version: str | None = None,
    gpu: str | None = None,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    max_batch: int = DEFAULT_MAX_BATCH,
    calibration: str = f"synthetic:{CALIBRATION_IMAGES}:{CALIBRATION_SEED}",
) -> CacheKey:
    """The key of the plan for this engine on this machine (version/gpu default to the live ones)."""
    options: dict[str, object] = {"workspace_mb": workspace_mb}
    if _dynamic_batch(manifest):
        options["max_batch"] = max_batch
    if precision == "int8":
        options["calibration"] = calibration
    return make_key(onnx_sha256, version or trt_version(), gpu or gpu_name(), precision, **options)


def make_entropy_calibrator(batches: list[np.ndarray], cache_file: Path | None = None):
    """An IInt8EntropyCalibrator2 that feeds `batches` (each exactly the input shape) one by one from a
    device buffer, and keeps its calibration table in `cache_file` so rebuilds skip calibration."""
    trt, cuda = _modules()
    if not batches:
        raise InputError("INT8 calibration needs at least one batch")

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = batches
            self.index = 0
            self.device_input = cuda.mem_alloc(batches[0].nbytes)
            self.cache_file = cache_file

        def get_batch_size(self) -> int:
            return int(self.batches[0].shape[0])

        def get_batch(self, names):  # noqa: ARG002 - one input; TensorRT passes its name
            if self.index >= len(self.batches):
                return None
            cuda.memcpy_htod(self.device_input, np.ascontiguousarray(self.batches[self.index]))
            self.index += 1
            return [int(self.device_input)]

        def read_calibration_cache(self):
            if self.cache_file is not None and self.cache_file.is_file():
                return self.cache_file.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            if self.cache_file is not None:
                self.cache_file.parent.mkdir(parents=True, exist_ok=True)
                self.cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()


def build_plan(
    onnx_path: str | Path,
    manifest: Manifest,
    precision: str = "fp32",
    *,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    max_batch: int = DEFAULT_MAX_BATCH,
    calibration_crops: np.ndarray | None = None,
    calibration_cache: Path | None = None,
) -> bytes:
    """Parse the ONNX and build a serialized TensorRT plan at `precision` (FP16/INT8 fall back per layer
    to higher precision where TensorRT finds no faster kernel)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    trt, _ = _modules()
    logger = trt.Logger(trt.Logger.WARNING)
    with _CudaContext():
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(Path(onnx_path).read_bytes()):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise TensorRTError(
                f"TensorRT cannot parse {onnx_path}: {errors[0] if errors else 'unknown error'}"
            )
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
        profile = None
        if _dynamic_batch(manifest):
            profile = builder.create_optimization_profile()
            for t in manifest.inputs:
                rest = tuple(int(d) for d in t.shape[1:])
                profile.set_shape(t.name, (1, *rest), (1, *rest), (int(max_batch), *rest))
            config.add_optimization_profile(profile)
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        elif precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            config.set_flag(trt.BuilderFlag.FP16)  # layers INT8 cannot take run in FP16, not FP32
            spec = manifest.inputs[0]
            calib_shape = tuple(1 if isinstance(d, str) else int(d) for d in spec.shape)
            batches = calibration_batches(
                calib_shape, CALIBRATION_IMAGES, seed=CALIBRATION_SEED, crops=calibration_crops
            )
            config.int8_calibrator = make_entropy_calibrator(batches, calibration_cache)
            if profile is not None:
                config.set_calibration_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise TensorRTError(f"TensorRT failed to build {onnx_path} at {precision} (see its log above)")
        return bytes(plan)


class TrtEngine(Engine):
    backend = "tensorrt"

    def __init__(
        self, plan: bytes, manifest: Manifest, path: Path | None = None, max_batch: int = DEFAULT_MAX_BATCH
    ):
        super().__init__(manifest, path)
        trt, cuda = _modules()
        self._cuda = cuda
        self._context = _CudaContext()
        self.precision = "?"
        with self._context:
            self.trt_logger = trt.Logger(trt.Logger.WARNING)
            self.runtime = trt.Runtime(self.trt_logger)
            self.engine = self.runtime.deserialize_cuda_engine(plan)
            if self.engine is None:
                raise TensorRTError(
                    "TensorRT could not load the plan (built by another TensorRT version or GPU?)"
                )
            self.exec_ctx = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            io_in = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            io_out = [n for n in names if n not in io_in]
            if set(io_in) != set(self.input_names) or set(io_out) != set(self.output_names):
                raise InputError(
                    f"plan I/O {io_in} -> {io_out} differs from the manifest's {self.input_names} -> {self.output_names}"
                )
            # Pinned host + device buffers sized for the largest shape (max batch for dynamic engines).
            self.host: dict[str, np.ndarray] = {}
            self.device_mem: dict[str, object] = {}
            for spec in (*manifest.inputs, *manifest.outputs):
                shape = tuple(int(max_batch) if isinstance(d, str) else int(d) for d in spec.shape)
                dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(spec.name)))
                self.host[spec.name] = cuda.pagelocked_empty(int(np.prod(shape)), dtype)
                self.device_mem[spec.name] = cuda.mem_alloc(self.host[spec.name].nbytes)
                self.exec_ctx.set_tensor_address(spec.name, int(self.device_mem[spec.name]))
        self.warmup()

    @classmethod
    def from_onnx(
        cls,
        onnx_path: str | Path,
        manifest: Manifest,
        precision: str = "fp32",
        cache_dir: str | Path | None = None,
        calibration_crops: np.ndarray | None = None,
    ) -> TrtEngine:
        """Load the cached plan for this ONNX/TensorRT/GPU/precision, building and caching it if absent.
        Looks in the ONNX's own folder first (where `handstream build` puts plans), then the user cache."""
        onnx_path = Path(onnx_path)
        key = cache_key(manifest, manifest.onnx_sha256 or sha256_file(onnx_path), precision)
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        found = find_plan(key, onnx_path.stem, [onnx_path.parent, cache])
        if found is None:
            log.info(
                "building TensorRT %s plan for %s (first run on this GPU; cached afterwards)",
                precision,
                onnx_path.name,
            )
            plan = build_plan(
                onnx_path,
                manifest,
                precision,
                calibration_crops=calibration_crops,
                calibration_cache=cache / f"{onnx_path.stem}.{key.digest()[:16]}.calib",
            )
            found = store_plan(key, onnx_path.stem, plan, cache)
        engine = cls(found.read_bytes(), manifest, path=onnx_path)
        engine.precision = precision
        engine.plan_path = found
        return engine

    @property
    def device(self) -> str:
        return f"cuda:0 {self._context.device.name()} {self.precision}"

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda = self._cuda
        with self._context:
            for name, arr in feeds.items():
                host = self.host[name]
                if arr.size > host.size:
                    raise InputError(
                        f"input {name!r} of shape {arr.shape} exceeds the engine's maximum batch"
                    )
                view = host[: arr.size]
                view[:] = arr.reshape(-1)
                self.exec_ctx.set_input_shape(name, arr.shape)
                cuda.memcpy_htod_async(self.device_mem[name], view, self.stream)
            if not self.exec_ctx.execute_async_v3(self.stream.handle):
                raise TensorRTError("TensorRT execution failed")
            shapes = {}
            for name in self.output_names:
                shape = tuple(self.exec_ctx.get_tensor_shape(name))
                shapes[name] = shape
                cuda.memcpy_dtoh_async(
                    self.host[name][: int(np.prod(shape))], self.device_mem[name], self.stream
                )
            self.stream.synchronize()
            return {
                n: self.host[n][: int(np.prod(s))].reshape(s).astype(np.float32, copy=True)
                for n, s in shapes.items()
            }

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        with self._context:
            for mem in self.device_mem.values():
                mem.free()
            self.device_mem.clear()
            self.exec_ctx = None
            self.engine = None
        self._context.detach()
