"""Export a named model of train/ (optionally with a checkpoint) as a pose engine: the one code path behind
`handstream export` and tools/build_default_engines.py, so both write identical engines + manifests."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stream.errors import InputError

from .backends.torch_eager import build_model, load_checkpoint
from .export import export_onnx
from .manifest import JOINT_COUNTS, pose_preprocessing, sha256_file

log = logging.getLogger("handstream.engines")

DEFAULT_CUBE_MM = 250.0  # stream.preprocess.crop_cube's default; the thesis does not fix one

# train.models task -> the manifest's preprocessing.input
TASK_INPUT = {"pose-depth": "depth", "pose-rgb": "rgb", "pose-rgbd": "rgbd"}

# Where a checkpoint's meta may record the model and its construction arguments (training code varies).
MODEL_NAME_KEYS = ("model_name", "model", "arch", "architecture")
MODEL_KWARGS_KEYS = ("model_kwargs", "model_args", "model_config")


def _meta_model(meta: dict) -> tuple[str | None, dict]:
    name = next((meta[k] for k in MODEL_NAME_KEYS if isinstance(meta.get(k), str)), None)
    kwargs = next((dict(meta[k]) for k in MODEL_KWARGS_KEYS if isinstance(meta.get(k), dict)), {})
    cfg = meta.get("config")
    if isinstance(cfg, dict):
        name = name or next((cfg[k] for k in MODEL_NAME_KEYS if isinstance(cfg.get(k), str)), None)
        if not kwargs:
            kwargs = next((dict(cfg[k]) for k in MODEL_KWARGS_KEYS if isinstance(cfg.get(k), dict)), {})
    return name, kwargs


def model_spec(model_name: str):
    """train.models' spec for a model name (any spelling create_model accepts); one-line error if unknown."""
    try:
        from train.models import MODEL_SPECS, canonical_name
    except ImportError as exc:
        raise InputError(
            f"exporting needs train.models ({exc}); install with `pip install -e '.[train]'`"
        ) from None
    try:
        return MODEL_SPECS[canonical_name(model_name)]
    except KeyError as exc:
        raise InputError(str(exc.args[0]) if exc.args else f"unknown model {model_name!r}") from None


def export_model(
    model_name: str | None,
    out_dir: str | Path,
    *,
    name: str | None = None,
    checkpoint: str | Path | None = None,
    crop_size: int | None = None,
    num_joints: int | None = None,
    input_kind: str | None = None,
    cube_mm: float | None = None,
    joint_layout: str | None = None,
    model_kwargs: dict | None = None,
    opset: int = 17,
    dynamic_batch: bool = False,
    simplify: bool = True,
    parity_inputs: np.ndarray | None = None,
    version: str = "0.1.0",
    metrics: dict | None = None,
    training: dict | None = None,
    default_model: str | None = None,
    num_parity: int = 8,
) -> Path:
    """Build `model_name` via train.models.create_model, load `checkpoint` if given, export it.

    Settings come, in order of precedence, from the arguments, the checkpoint's meta (model name/kwargs,
    metrics), then defaults (`default_model`, crop 128, 21 joints). Without a checkpoint the weights are random: the
    manifest then says `metrics.trained = false` so nobody mistakes it for a real engine.
    """
    meta: dict = {}
    state = None
    if checkpoint is not None:
        state, meta = load_checkpoint(checkpoint)
        meta_name, meta_kwargs = _meta_model(meta)
        model_name = model_name or meta_name
        model_kwargs = {**meta_kwargs, **(model_kwargs or {})}
    model_name = model_name or default_model
    if not model_name:
        raise InputError(
            "which model? name one (see `handstream models`) or use a checkpoint that records it"
        )
    spec = model_spec(model_name)
    kwargs = dict(model_kwargs or {})
    # train/trainer.py's checkpoint_meta records the crop size, joints, layout and cube beside the kwargs
    if "crop_size" in meta:
        kwargs.setdefault("input_size", int(meta["crop_size"]))
    if "num_joints" in meta:
        kwargs.setdefault("num_joints", int(meta["num_joints"]))
    if joint_layout is None and meta.get("joint_layout") in JOINT_COUNTS:
        joint_layout = meta["joint_layout"]
    if num_joints is not None:
        kwargs["num_joints"] = int(num_joints)
    if crop_size is not None:
        kwargs["input_size"] = int(crop_size)
    # Resolve the model's own defaults now, so the manifest records exactly what was built (the torch
    # reference backend rebuilds the model from these kwargs).
    kwargs.setdefault("num_joints", 21)
    kwargs.setdefault("input_size", spec.default_input_size)
    channels = spec.in_channels
    kind = TASK_INPUT.get(spec.task, "depth")
    if input_kind is not None and input_kind != kind:
        raise InputError(f"model {spec.name!r} takes {kind} input, not {input_kind}")
    model = build_model(spec.name, kwargs)
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(
                f"checkpoint {checkpoint} does not fit {spec.name!r} with {kwargs}: {str(exc).splitlines()[0]}"
            ) from None
    size = int(kwargs["input_size"])
    joints = int(kwargs["num_joints"])
    if cube_mm is None:
        cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
        cube_mm = meta.get("cube_mm", cfg.get("cube_mm", DEFAULT_CUBE_MM))
    train_info = {"model": spec.name, "model_kwargs": kwargs}
    if checkpoint is not None:
        train_info["checkpoint"] = Path(checkpoint).name
        train_info["checkpoint_sha256"] = sha256_file(checkpoint)
        for key in ("epoch", "data", "dataset", "steps", "seed", "git"):
            if key in meta and isinstance(meta[key], (str, int, float, list, dict)):
                train_info[key] = meta[key]
    train_info.update(training or {})
    found_metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    all_metrics = {**found_metrics, "trained": checkpoint is not None, **(metrics or {})}
    fields = {
        "version": version,
        "task": "pose",
        "preprocessing": pose_preprocessing(size, joints, float(cube_mm), kind, joint_layout),
        "training": train_info,
        "metrics": all_metrics,
    }
    return export_onnx(
        model,
        out_dir,
        name or spec.name,
        (1, channels, size, size),
        fields,
        opset=opset,
        dynamic_batch=dynamic_batch,
        simplify=simplify,
        parity_inputs=parity_inputs,
        num_parity=num_parity,
    )
