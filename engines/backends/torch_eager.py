"""PyTorch eager backend: the reference every exported engine is compared against.

It rebuilds the model from the manifest's `training.model` (+ `training.model_kwargs`) through
`train.models.create_model` and loads a checkpoint's weights. torch and train/ are imported here only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stream.errors import InputError, require

from ..manifest import Manifest
from .base import Engine

# Keys under which training code commonly nests the weights inside a checkpoint dict.
STATE_KEYS = ("model", "state_dict", "model_state", "model_state_dict", "weights")


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """(state_dict, meta) from a checkpoint file: either a bare state_dict or a dict holding one under a
    usual key, with everything else (model name, kwargs, metrics, epoch, ...) returned as meta."""
    torch = require("torch", "pip install 'handstream[train]'", "PyTorch")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} not found")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise InputError(
            f"cannot read checkpoint {path}: {str(exc).splitlines()[0] if str(exc) else exc}"
        ) from None
    if not isinstance(obj, dict):
        if isinstance(obj, torch.nn.Module):
            return obj.state_dict(), {}
        raise InputError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    for key in STATE_KEYS:
        if isinstance(obj.get(key), dict):
            return obj[key], {k: v for k, v in obj.items() if k != key}
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    raise InputError(f"checkpoint {path}: no weights found (looked for a state dict or keys {STATE_KEYS})")


def build_model(model_name: str, model_kwargs: dict | None = None):
    """train.models.create_model(name, **kwargs), with a one-line error when train/ is unavailable."""
    try:
        from train.models import create_model
    except ImportError as exc:
        raise InputError(
            f"the torch backend needs train.models ({exc}); install with `pip install -e '.[train]'`"
        ) from None
    try:
        return create_model(model_name, **(model_kwargs or {}))
    except (KeyError, ValueError) as exc:
        raise InputError(f"cannot build model {model_name!r}: {exc}") from None


class TorchEngine(Engine):
    backend = "torch"

    def __init__(
        self, model, manifest: Manifest, threads: int | None = None, path: Path | None = None
    ) -> None:
        super().__init__(manifest, path)
        self.torch = require("torch", "pip install 'handstream[train]'", "PyTorch")
        if threads is not None:
            self.torch.set_num_threads(int(threads))
        self.model = model.eval().to("cpu").float()

    @classmethod
    def from_manifest(
        cls,
        manifest: Manifest,
        checkpoint: str | Path | None = None,
        threads: int | None = None,
        path: Path | None = None,
    ) -> TorchEngine:
        """The model the manifest names, with weights from `checkpoint` (default: training.checkpoint)."""
        if not manifest.model:
            raise InputError(
                f"engine {manifest.name!r}: manifest names no training.model; the torch backend cannot rebuild it"
            )
        ckpt = checkpoint or manifest.training.get("checkpoint")
        if not ckpt:
            raise InputError(
                f"the torch backend needs the checkpoint of {manifest.name!r} (pass checkpoint=...)"
            )
        ckpt = _find_checkpoint(Path(ckpt), path, manifest.name)
        state, _ = load_checkpoint(ckpt)
        model = build_model(manifest.model, manifest.training.get("model_kwargs"))
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(
                f"checkpoint {ckpt} does not fit model {manifest.model!r}: {str(exc).splitlines()[0]}"
            ) from None
        return cls(model, manifest, threads=threads, path=path)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        args = [torch.from_numpy(feeds[n]) for n in self.input_names]
        with torch.inference_mode():
            out = self.model(*args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        elif isinstance(out, dict):
            out = tuple(out[n] for n in self.output_names)
        return {n: o.detach().cpu().numpy() for n, o in zip(self.output_names, out)}

    def close(self) -> None:
        super().close()
        self.model = None


def _find_checkpoint(ckpt: Path, engine_path: Path | None, name: str) -> Path:
    """Where a manifest's (usually relative) checkpoint name lives: as given, beside the engine, or in the
    repository's git-ignored checkpoints/ folder where `handstream train pose train` writes it."""
    if ckpt.is_absolute():
        candidates = [ckpt]
    else:
        candidates = [ckpt]
        if engine_path is not None:
            candidates.append(Path(engine_path).parent / ckpt)
        candidates.append(Path(__file__).resolve().parents[2] / "checkpoints" / ckpt.name)
    for c in candidates:
        if c.is_file():
            return c
    raise InputError(
        f"the torch backend needs the training checkpoint of {name!r} ({ckpt.name}; looked in "
        f"{', '.join(str(c.parent) for c in candidates)}); pass checkpoint=... or use --backend onnxruntime"
    )
