"""`handstream train pose --config FILE [--resume]` and `handstream train search --config FILE ...`.

A config is YAML or JSON with the fields of train.trainer.TrainConfig. `data` (and optionally `val_data`)
say where crops come from:

    data: {kind: synthetic, path: data/synth_train, limit: 0,            # a `handstream synth` directory
           size: 128, cube_mm: 250, centre: mask, jitter_mm: 10, crops_per_frame: 2}
    data: {kind: generate, frames: 5000, seed: 1000, subject_offset: 1000, ...}   # stream.synth in memory
    data: {kind: nyu, path: NYU/train}        # raw NYU layout (joint_data.mat + depth PNGs), 14 joints
    data: {kind: folder, path: DIR}           # labels.txt + camera.json + 16-bit PNGs
    data: {kind: crops, path: data/x.npz}     # crops saved by PoseArrays.save

Without `val_data` a uniform random `val_fraction` (25 %) of the training crops is held out (seed §4.4.3).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stream.errors import InputError

CROP_KEYS = (
    "size",
    "cube_mm",
    "centre",
    "jitter_mm",
    "crops_per_frame",
    "use_mask",
    "seed",
    "min_visible_px",
    "max_abs_norm",
)


def build_arrays(spec: dict):
    """Crops (train.data.PoseArrays) for one `data` mapping of a config."""
    from .data import PoseArrays, load_frames, make_crops, synthetic_frames

    if not isinstance(spec, dict) or "kind" not in spec:
        raise InputError(
            "config `data` must be a mapping with a `kind` (synthetic, generate, nyu, folder, crops)"
        )
    kind = spec["kind"]
    if kind == "crops":
        return PoseArrays.load(spec["path"])
    if kind == "generate":
        frames = synthetic_frames(
            int(spec.get("frames", 1000)),
            int(spec.get("seed", 1000)),
            subject_offset=int(spec.get("subject_offset", 1000)),
        )
    else:
        if "path" not in spec:
            raise InputError(f"data kind {kind!r} needs a `path`")
        frames = load_frames(kind, spec["path"], int(spec.get("limit", 0)))
    kw = {k: spec[k] for k in CROP_KEYS if k in spec}
    return make_crops(frames, progress=True, **kw)


def _main_pose(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="handstream train pose", description="train a pose network from a config"
    )
    p.add_argument("--config", required=True, help="YAML or JSON run config (fields of TrainConfig)")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.pt of this config's run")
    p.add_argument("--device", help="override the config's device (cpu, cuda, auto)")
    p.add_argument("--max-minutes", type=float, help="override the config's wall-clock budget")
    a = p.parse_args(argv)
    from dataclasses import replace

    from .trainer import TrainConfig, train

    cfg = TrainConfig.from_file(a.config)
    if a.device:
        cfg = replace(cfg, device=a.device)
    if a.max_minutes is not None:
        cfg = replace(cfg, max_minutes=a.max_minutes)
    tr = build_arrays(cfg.data)
    val = build_arrays(cfg.val_data) if cfg.val_data else None
    res = train(cfg, tr, val, resume=a.resume)
    print(
        json.dumps(
            {
                "run_dir": str(res.run_dir),
                "best_checkpoint": str(res.best_checkpoint),
                "best_val_loss": res.best_val_loss,
                "best_val_mm": res.best_val_mm,
                "epochs": res.epochs_run,
                "stopped": res.stopped,
            }
        )
    )
    return 0


def _main_search(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="handstream train search", description="random search over lr, momentum, dropout (seed §4.4.3)"
    )
    p.add_argument(
        "--config", required=True, help="base run config; each trial overrides lr, momentum, dropout"
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--trials", type=int, default=50, help="trials per round")
    p.add_argument("--epochs", type=int, default=5, help="epochs per trial")
    p.add_argument("--sampler", choices=("random", "tpe"), default="random")
    p.add_argument("--out", help="write the search result JSON here")
    a = p.parse_args(argv)
    from dataclasses import replace

    from .hpo import random_search
    from .trainer import TrainConfig, split_train_val, train

    base = TrainConfig.from_file(a.config)
    tr = build_arrays(base.data)
    val = build_arrays(base.val_data) if base.val_data else None
    if val is None:
        tr, val = split_train_val(tr, base.val_fraction, base.seed)
    count = [0]

    def objective(params: dict) -> float:
        count[0] += 1
        kw = {**base.model_kwargs, "dropout": params["dropout"]}
        cfg = replace(
            base,
            name=f"{base.name}_search/trial{count[0]:03d}",
            lr=params["lr"],
            momentum=params["momentum"],
            model_kwargs=kw,
            epochs=a.epochs,
            progress=False,
            tensorboard=False,
        )
        return train(cfg, tr, val).best_val_loss

    res = random_search(
        objective, rounds=a.rounds, trials_per_round=a.trials, sampler=a.sampler, seed=base.seed
    )
    out = {"best_params": res.best_params, "best_val_loss": res.best_value, "rounds": res.rounds}
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    modes = {"pose": _main_pose, "search": _main_search}
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: handstream train {pose,search} --config FILE ...   (handstream train MODE --help)")
        return 0
    if argv[0] not in modes:
        raise InputError(f"unknown training task {argv[0]!r}; choose from {', '.join(modes)}")
    return modes[argv[0]](argv[1:])
