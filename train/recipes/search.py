"""`handstream train search`: the seed's random search over lr, momentum and dropout (train/hpo.py), each
trial a short run of train.trainer from a base run config.

    handstream train search --config configs/search_compact.yaml [--rounds 3 --trials 50 --epochs 5]
    handstream train search --config C.yaml --storage sqlite:///runs/study.db --study-name compact  # per worker

With `--storage` (an RDB URL) and `--study-name`, start the same command on as many processes or machines
as you like: they share one optuna study per round (see train/hpo.py). `key=value` words override fields
of the base config (`data.frames=500`). Search options default to configs/search.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from stream.errors import InputError

from . import register, single_process
from .options import config_with_overrides, parse_with_run_overrides


@register("search", "random search over lr, momentum and dropout; --storage shares it between workers")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="handstream train search",
        description="random search over lr, momentum, dropout (seed §4.4.3)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--config", required=True, help="base run config; each trial overrides lr, momentum, dropout"
    )
    p.add_argument("--rounds", type=int)
    p.add_argument("--trials", type=int, help="trials per round (per worker when the study is shared)")
    p.add_argument("--epochs", type=int, help="epochs per trial")
    p.add_argument("--sampler", choices=("random", "tpe"))
    p.add_argument("--storage", help="optuna RDB URL shared by every worker, e.g. sqlite:///runs/study.db")
    p.add_argument("--study-name", help="the shared study's name (every worker gives the same)")
    p.add_argument("--out", help="write the search result JSON here")
    a, base_overrides = parse_with_run_overrides(p, list(argv or []), "search")
    single_process("search", "scale it out with --storage: one worker per process")
    if a.storage and not a.study_name:  # before minutes of data preparation, not after
        raise InputError("a shared search (--storage) needs a --study-name that every worker gives")
    from dataclasses import replace

    from train.cli_train import build_arrays
    from train.hpo import random_search
    from train.trainer import TrainConfig, split_train_val, train

    base = TrainConfig.from_dict(config_with_overrides(a.config, base_overrides))
    tr = build_arrays(base.data)
    val = build_arrays(base.val_data) if base.val_data else None
    if val is None:
        tr, val = split_train_val(tr, base.val_fraction, base.seed)
    count = [0]

    def objective(params: dict) -> float:
        count[0] += 1
        kw = {**base.model_kwargs, "dropout": params["dropout"]}
        # a shared study's workers each number their own trials: the process id keeps their runs apart
        worker = f"_{os.getpid()}" if a.storage else ""
        cfg = replace(
            base,
            name=f"{base.name}_search/trial{count[0]:03d}{worker}",
            lr=params["lr"],
            momentum=params["momentum"],
            model_kwargs=kw,
            epochs=a.epochs,
            progress=False,
            tensorboard=False,
        )
        return train(cfg, tr, val).best_val_loss

    res = random_search(
        objective,
        rounds=a.rounds,
        trials_per_round=a.trials,
        sampler=a.sampler,
        seed=base.seed,
        storage=a.storage,
        study_name=a.study_name,
    )
    out = {"best_params": res.best_params, "best_val_loss": res.best_value, "rounds": res.rounds}
    if a.storage:
        out.update({"storage": a.storage, "study_name": a.study_name})
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))
    return 0
