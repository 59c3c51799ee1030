"""Engine-level timing: one engine on fixed crops, bare ONNX Runtime sessions, backends side by side.

These time `Engine.infer` on the very crops the preprocessing produced (or any (N, C, S, S) float32
stack), so backends and model variants are compared on the same input. `engines` is imported inside the
functions: `stream` must stay importable without it, and the torch backend pulls torch in only when timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import HandstreamError, InputError
from .stats import summarize


def time_calls(fn: Callable[[int], object], n: int, warmup: int) -> np.ndarray:
    """Per-call wall ms of fn(i) for i in warmup..warmup+n-1, after `warmup` untimed calls."""
    if n < 1 or warmup < 0:
        raise InputError(f"need n >= 1 and warmup >= 0, got n={n}, warmup={warmup}")
    for i in range(warmup):
        fn(i)
    out = np.empty(n, np.float64)
    for k in range(n):
        t0 = time.perf_counter_ns()
        fn(warmup + k)
        out[k] = (time.perf_counter_ns() - t0) / 1e6
    return out


def fit_crops(crops: np.ndarray, shape: Sequence[int | str]) -> np.ndarray:
    """Crops shaped for an engine input (1, C, S, S): resized/channel-padded when the variant differs
    from the crops the pipeline made (latency depends on the shape, not on the pixel values)."""
    c, s = int(shape[1]), int(shape[2])
    x = np.asarray(crops, np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.shape[2] != s or x.shape[3] != s:
        import cv2

        x = np.stack(
            [np.stack([cv2.resize(ch, (s, s), interpolation=cv2.INTER_NEAREST) for ch in f]) for f in x]
        )
    if x.shape[1] < c:
        x = np.concatenate([x, np.repeat(x[:, :1], c - x.shape[1], axis=1)], axis=1)
    return np.ascontiguousarray(x[:, :c], np.float32)


def time_engine(engine, crops: np.ndarray, n: int, warmup: int) -> np.ndarray:
    """Per-frame ms of engine.infer on crops[i % N][None] (batch 1, like the pipeline)."""
    spec = engine.manifest.inputs[0]
    x = fit_crops(crops, spec.shape)
    return time_calls(lambda i: engine.infer(x[i % len(x)][None]), n, warmup)


def time_bare_ort(
    onnx_path: str | Path, crops: np.ndarray, n: int, warmup: int, threads: int | None
) -> np.ndarray:
    """The floor: a plain onnxruntime.InferenceSession.run on the same crops, no wrapper, no checks."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = fit_crops(crops, inp.shape)
    name = inp.name
    return time_calls(lambda i: sess.run(None, {name: x[i % len(x)][None]}), n, warmup)


def backend_entries(
    engine_ref: str | Path, crops: np.ndarray, n: int, warmup: int, backends: Sequence[str]
) -> dict[str, dict]:
    """Time the same engine on each backend name: onnxruntime_t1, onnxruntime_t2, ..., torch, tensorrt.

    A backend that cannot run here (no torch, no GPU, no checkpoint) becomes {"skipped": why}. Returns the
    raw samples under "samples_ms" too (dropped before writing JSON by the caller if unwanted)."""
    import engines

    out: dict[str, dict] = {}
    for b in backends:
        kind, _, thr = b.partition("_t")
        threads = int(thr) if thr else None
        note = ""
        try:
            if kind == "tensorrt":
                ok, why = engines.tensorrt_available()
                if not ok:
                    out[b] = {"skipped": why}
                    continue
            try:
                eng = engines.load_engine(engine_ref, backend=kind, threads=threads)
            except InputError as exc:
                if kind != "torch" or "checkpoint" not in str(exc):
                    raise
                eng = _torch_without_checkpoint(engine_ref, threads)
                note = "initial weights (no checkpoint here): latency only"
        except (HandstreamError, ImportError) as exc:
            out[b] = {"skipped": str(exc).splitlines()[0]}
            continue
        device = eng.device
        try:
            ms = time_engine(eng, crops, n, warmup)
        finally:
            eng.close()
        out[b] = {
            "backend": kind,
            "threads": threads,
            "device": device,
            "infer_ms": summarize(ms).to_dict(),
            "samples_ms": ms.tolist(),
        }
        if note:
            out[b]["note"] = note
    return out


def _torch_without_checkpoint(engine_ref: str | Path, threads: int | None):
    """PyTorch eager of the manifest's architecture with its initial weights: the same graph and cost as
    the trained one, so its latency is real even where the checkpoint (git-ignored) is absent."""
    import engines
    from engines.backends.torch_eager import TorchEngine, build_model

    path = engines.resolve_engine_path(engine_ref)
    manifest = engines.load_manifest(path.with_suffix(".json"))
    if not manifest.model:
        raise InputError(f"engine {manifest.name!r} names no training.model; torch eager cannot rebuild it")
    model = build_model(manifest.model, manifest.training.get("model_kwargs"))
    return TorchEngine(model, manifest, threads=threads, path=path)


def engine_vs_bare(engine_ref: str | Path, crops: np.ndarray, n: int, warmup: int, threads: int) -> dict:
    """Our engine wrapper vs a bare ONNX Runtime session on the same file and input, calls interleaved
    frame by frame so both see the same machine noise (a shared VM drifts between back-to-back blocks).

    Two measures against order effects: which call goes first alternates (ABBA), and the run is split in
    two halves with the sessions created in opposite order -- on this VM a Net6-sized session created
    second ran ~10 % faster than an identical one created first (where its 600 MB of weights landed), which
    would otherwise be billed to whichever side was created first."""
    import onnxruntime as ort

    import engines

    def bare_session(path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.log_severity_level = 3
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])

    path = engines.resolve_engine_path(engine_ref)
    ours, bare = [], []
    for half, ours_first in ((n - n // 2, True), (n // 2, False)):
        if half < 1:
            continue
        if ours_first:
            eng = engines.load_engine(path, backend="onnxruntime", threads=threads)
            sess = bare_session(path)
        else:
            sess = bare_session(path)
            eng = engines.load_engine(path, backend="onnxruntime", threads=threads)
        try:
            name = sess.get_inputs()[0].name
            x = fit_crops(crops, eng.manifest.inputs[0].shape)
            calls = (lambda xi, e=eng: e.infer(xi), lambda xi, s=sess, k=name: s.run(None, {k: xi}))
            for i in range(warmup + half):
                xi = x[i % len(x)][None]
                first = i % 2  # alternate which goes first: the second of a pair runs on warmer caches
                t0 = time.perf_counter_ns()
                calls[first](xi)
                t1 = time.perf_counter_ns()
                calls[1 - first](xi)
                t2 = time.perf_counter_ns()
                if i >= warmup:
                    a, b = (t1 - t0) / 1e6, (t2 - t1) / 1e6
                    ours.append(a if first == 0 else b)
                    bare.append(b if first == 0 else a)
        finally:
            eng.close()
            del sess
    s_ours, s_bare = summarize(ours), summarize(bare)
    return {
        "engine": str(path),
        "threads": threads,
        "engine_ms": s_ours.to_dict(),
        "bare_session_ms": s_bare.to_dict(),
        "ratio_p50": s_ours.p50 / s_bare.p50,
    }
