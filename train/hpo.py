"""Hyper-parameter search (seed 003 §4.4.3) through optuna: learning rate and momentum log-uniform, dropout
uniform, `trials_per_round` trials per round, and after each round every range shrinks to the span of the
best `keep_fraction` of the trials so far (the seed's "iterative range shrinking"; it ran 3 rounds of 50 from
lr (1e-3, 1e-1), momentum (0.8, 1), dropout (0, 0.1)). `sampler="tpe"` uses optuna's TPE instead of random
sampling inside each round's ranges.

Momentum is sampled log-uniformly, as the seed says; its upper bound is kept below 1 (0.999) because SGD
with momentum 1 does not converge.

Several workers (processes, machines) share one search through optuna's storage: give each the same
`storage` (an RDB URL such as sqlite:///study.db or postgresql://...) and `study_name`. Round r is the
study `STUDY_NAME-round{r}` (each round has its own ranges), created by whichever worker comes first and
loaded by the others; every worker runs `trials_per_round` trials of each round and shrinks the ranges
from all the trials the round's study holds, its own and the others'. Each worker's sampler gets its own
seed (seed + process id), or two workers would try the same points."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stream.errors import InputError

DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "lr": (1e-3, 1e-1),
    "momentum": (0.8, 0.999),
    "dropout": (0.0, 0.1),
}
LOG_SCALE = {"lr": True, "momentum": True, "dropout": False}


@dataclass
class SearchResult:
    best_params: dict
    best_value: float
    rounds: list = field(default_factory=list)  # per round: {"ranges": ..., "best": ..., "trials": n}
    study: object = None


def shrink_ranges(trials: list[tuple[dict, float]], ranges: dict, keep_fraction: float) -> dict:
    """New ranges: min..max of each parameter over the best `keep_fraction` of `trials` (value, lower =
    better), never widened beyond the current ranges, and never collapsed to a single point."""
    ok = sorted((t for t in trials if t[1] == t[1]), key=lambda t: t[1])  # drop NaN values
    if not ok:
        return dict(ranges)
    top = ok[: max(2, int(round(keep_fraction * len(ok))))]
    new = {}
    for k, (lo, hi) in ranges.items():
        vals = [p[k] for p, _ in top]
        a, b = max(lo, min(vals)), min(hi, max(vals))
        if b - a < 1e-12 * max(1.0, abs(b)):
            a, b = lo, hi
        new[k] = (a, b)
    return new


def random_search(
    objective: Callable[[dict], float],
    ranges: dict | None = None,
    rounds: int = 3,
    trials_per_round: int = 50,
    keep_fraction: float = 0.2,
    sampler: str = "random",
    seed: int = 0,
    storage: str | None = None,
    study_name: str | None = None,
) -> SearchResult:
    """Minimize objective(params) over the ranges; `params` has the keys of `ranges`. With `storage` the
    rounds' studies live there and are shared with every worker given the same `study_name`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ranges = dict(ranges or DEFAULT_RANGES)
    for k, (lo, hi) in ranges.items():
        if not lo < hi or (LOG_SCALE.get(k, False) and lo <= 0):
            raise InputError(f"bad search range for {k}: ({lo}, {hi})")
    if storage and not study_name:
        raise InputError("a shared search (--storage) needs a --study-name that every worker gives")
    if storage:
        seed = seed + os.getpid()  # workers on one study must not draw the same points
    if sampler == "random":
        samp = optuna.samplers.RandomSampler(seed=seed)
    elif sampler == "tpe":
        samp = optuna.samplers.TPESampler(seed=seed)
    else:
        raise InputError(f"sampler must be 'random' or 'tpe', got {sampler!r}")
    store = open_storage(storage) if storage else None
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def new_study(r: int):
        name = f"{study_name}-round{r + 1}" if storage else None
        return optuna.create_study(
            direction="minimize", sampler=samp, storage=store, study_name=name, load_if_exists=True
        )

    study = new_study(0)
    history: list[tuple[dict, float]] = []
    result = SearchResult({}, float("inf"), [], study)
    for r in range(rounds):
        current = dict(ranges)

        def wrapped(trial, current=current):
            trial.set_user_attr("worker", worker)  # which process ran it, in a study several workers share
            params = {
                k: trial.suggest_float(k, lo, hi, log=LOG_SCALE.get(k, False))
                for k, (lo, hi) in current.items()
            }
            return float(objective(params))

        # optuna's distributions must stay fixed within a study for TPE; a new study per round keeps the
        # shrunk ranges honest while the history carries over for the shrinking itself.
        round_study = new_study(r) if r else study
        round_study.optimize(wrapped, n_trials=trials_per_round)
        done = [
            (t.params, t.value)
            for t in round_study.trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
        ]
        history += done
        best = min(done, key=lambda t: t[1])
        if best[1] < result.best_value:
            result.best_params, result.best_value = dict(best[0]), best[1]
        result.rounds.append(
            {
                "round": r + 1,
                "ranges": current,
                "best": dict(best[0]),
                "best_value": best[1],
                "trials": len(done),
            }
        )
        ranges = shrink_ranges(history, ranges, keep_fraction)
    return result


def open_storage(url: str, attempts: int = 5):
    """optuna's RDB storage at `url`, or a one-line InputError. SQLite waits up to a minute for a lock
    (workers on one file take turns writing) instead of failing at once. Workers started together on a
    new database race to create its tables: the loser's insert of the schema version fails, and a second
    look finds the tables the winner made, so such a clash is retried."""
    import random

    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except (IntegrityError, OperationalError) as exc:
            clash = isinstance(exc, IntegrityError) or "locked" in str(exc) or "already exists" in str(exc)
            if not clash or attempt == attempts - 1:
                raise InputError(
                    f"cannot open the study storage {url!r} ({str(exc).splitlines()[0]})"
                ) from None
            time.sleep(0.2 + random.random())
        except Exception as exc:  # sqlalchemy raises many types for a bad URL or an unreachable server
            raise InputError(f"cannot open the study storage {url!r} ({str(exc).splitlines()[0]})") from None
