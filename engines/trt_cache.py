"""On-disk cache of built TensorRT engines (plans).

A TensorRT plan is only valid for the exact ONNX it was built from, the TensorRT version that built it,
the GPU model it was tuned on and the precision asked for -- load it anywhere else and it fails or, worse,
runs slowly with the wrong tactics. So the cache key is all of those; change any and the file name
changes, and a stale plan is simply never found. Pure Python: no TensorRT needed to compute keys.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from stream.errors import InputError

PRECISIONS = ("fp32", "fp16", "int8")
PLAN_SUFFIX = ".plan"


@dataclass(frozen=True)
class CacheKey:
    """Everything a built plan depends on. `builder` holds build options that change the plan
    (workspace size, batch range, calibration set id), as a sorted tuple of (name, value) pairs."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    precision: str
    builder: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not self.onnx_sha256 or not self.trt_version or not self.gpu_name:
            raise InputError(
                f"an engine cache key needs the ONNX hash, TensorRT version and GPU name: {self}"
            )
        object.__setattr__(self, "builder", tuple(sorted((str(k), str(v)) for k, v in self.builder)))

    def digest(self) -> str:
        """sha256 of the canonical JSON of every part (hex)."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def filename(self, stem: str) -> str:
        """e.g. pose.fp16.3f9a0c1d2b4e5f60.plan: readable precision, 64-bit digest of the whole key."""
        return f"{stem}.{self.precision}.{self.digest()[:16]}{PLAN_SUFFIX}"


def make_key(
    onnx_sha256: str, trt_version: str, gpu_name: str, precision: str, **builder_options
) -> CacheKey:
    return CacheKey(onnx_sha256, trt_version, gpu_name, precision, tuple(builder_options.items()))


def default_cache_dir() -> Path:
    """$HANDSTREAM_TRT_CACHE, else $XDG_CACHE_HOME/handstream/tensorrt, else ~/.cache/handstream/tensorrt."""
    if os.environ.get("HANDSTREAM_TRT_CACHE"):
        return Path(os.environ["HANDSTREAM_TRT_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "handstream" / "tensorrt"


def plan_path(key: CacheKey, stem: str, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / key.filename(stem)


def find_plan(key: CacheKey, stem: str, dirs: list[Path]) -> Path | None:
    """The first existing plan for this key in `dirs` (e.g. the engine's folder, then the user cache)."""
    for d in dirs:
        p = Path(d) / key.filename(stem)
        if p.is_file() and p.stat().st_size > 0:
            return p
    return None


def store_plan(key: CacheKey, stem: str, plan: bytes, cache_dir: str | Path | None = None) -> Path:
    """Write the plan atomically (temp file + rename, so a crash never leaves half a plan under the final
    name) with a small JSON beside it recording the key in clear."""
    path = plan_path(key, stem, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_bytes(bytes(plan))
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps({**asdict(key), "digest": key.digest()}, indent=2) + "\n")
    return path
