"""Training recipes behind `handstream train RECIPE`: the registry lists them and names the closest one for a
typo; a recipe's defaults come from configs/RECIPE.yaml, `key=value` words override them and `--flags` win;
a run config takes `key=value` / `a.b=value` overrides; and two search workers share one SQLite study."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stream.cli import main as cli_main
from stream.errors import InputError
from tests.conftest import REPO, write_toy_config, write_toy_crops
from train.recipes import RECIPES, get_recipe, load_all, register
from train.recipes.options import CONFIG_DIR, parse_recipe_args, recipe_defaults, split_overrides


def test_train_help_lists_every_recipe_and_a_typo_names_the_closest(capsys):
    assert cli_main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for name in ("pose", "detector", "search", "diagnose"):
        assert f"\n  {name} " in out
        assert (CONFIG_DIR / f"{name}.yaml").is_file()  # every recipe's defaults live in configs/
    with pytest.raises(InputError, match="did you mean 'detector'"):
        get_recipe("detectr")
    assert cli_main(["train", "posee"]) == 2  # one line on stderr, no traceback
    assert "did you mean 'pose'" in capsys.readouterr().err
    assert cli_main(["eval", "centers"]) == 2
    assert "did you mean 'centres'" in capsys.readouterr().err


def test_register_fills_the_registry_and_refuses_a_second_recipe_of_a_name():
    load_all()
    before = dict(RECIPES)
    try:

        @register("toy_recipe", "a recipe made by the test")
        def toy(argv: list[str]) -> int:
            return len(argv)

        assert get_recipe("toy_recipe").main(["a", "b"]) == 2
        with pytest.raises(ValueError, match="two recipes"):
            register("toy_recipe", "again")(lambda argv: 0)
    finally:
        RECIPES.clear()
        RECIPES.update(before)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float)
    p.add_argument("--name")
    p.add_argument("--data-dir")
    p.add_argument("--out")
    p.add_argument("--resume", action="store_true")
    return p


def test_yaml_defaults_then_key_value_then_flags(tmp_path, monkeypatch):
    import train.recipes.options as options

    (tmp_path / "toy.yaml").write_text("minutes: 35\nname: pose\ndata_dir: data/x\nresume: false\n")
    monkeypatch.setattr(options, "CONFIG_DIR", tmp_path)
    a = parse_recipe_args(_parser(), [], "toy", repo_paths=("data_dir",))
    assert (a.minutes, a.name, a.resume) == (35.0, "pose", False)
    assert a.data_dir == str(REPO / "data" / "x")  # a relative path in the YAML means the repository's
    a = parse_recipe_args(
        _parser(), ["minutes=60", "resume=true", "data-dir=here"], "toy", repo_paths=("data_dir",)
    )
    assert (a.minutes, a.resume, a.data_dir) == (60.0, True, "here")
    a = parse_recipe_args(_parser(), ["minutes=60", "--minutes", "5"], "toy")
    assert a.minutes == 5.0  # an explicit flag wins
    with pytest.raises(InputError, match="did you mean 'minutes'"):
        parse_recipe_args(_parser(), ["minute=60"], "toy")
    with pytest.raises(InputError, match="minutes='soon'"):
        parse_recipe_args(_parser(), ["minutes=soon"], "toy")
    # a word after an option that takes a value is that value, `=` or not
    rest, over = split_overrides(["--out", "a=b.pt", "name=x", "--resume", "lr=1e-3"], _parser())
    assert rest == ["--out", "a=b.pt", "--resume"] and over == {"name": "x", "lr": 1e-3}


def test_shipped_recipe_defaults_match_the_recipes_options():
    """Every key of configs/pose.yaml is an option of its stage (a renamed option cannot go unnoticed)."""
    from train.recipes import pose

    for stage in pose.STAGES:
        parse_recipe_args(pose._stage_parser(stage), _required(stage), "pose", stage)
    assert recipe_defaults("pose", "train")["model"] == "compact_s"


def _required(stage: str) -> list[str]:
    return ["--a", "x.pt", "--b", "y.pt"] if stage == "pair" else []


def _toy_config(tmp_path: Path) -> Path:
    write_toy_crops(tmp_path / "toy.npz", n=24)
    return write_toy_config(tmp_path, tmp_path / "toy.npz")


@pytest.mark.usefixtures("one_torch_thread")
def test_pose_config_run_takes_key_value_overrides(tmp_path, capsys):
    cfg = _toy_config(tmp_path)
    argv = ["train", "pose", "--config", str(cfg), "epochs=2", "model_kwargs.fc_width=8", "name=over"]
    assert cli_main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["epochs"] == 2
    saved = json.loads((tmp_path / "runs" / "over" / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["model_kwargs"] == {"fc_width": 8}
    assert cli_main(["train", "pose", "--config", str(cfg), "learning_rate=1"]) == 2
    assert "unknown config keys" in capsys.readouterr().err


def test_two_search_workers_share_one_sqlite_study(tmp_path):
    """Two processes run `handstream train search` on one SQLite study at once: the study holds both
    workers' trials (tagged by worker) and a best trial, which is the best either worker reports."""
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("torch")
    cfg = _toy_config(tmp_path)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    argv = ["train", "search", "--config", str(cfg), "--storage", url, "--study-name", "toy"]
    argv += ["rounds=1", "trials=2", "epochs=1", f"out_dir={tmp_path / 'runs'}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "stream.cli", *argv]
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    study = optuna.load_study(study_name="toy-round1", storage=url)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4
    workers = {t.user_attrs["worker"] for t in done}
    assert len(workers) == 2  # two trials from each process
    assert sorted(sum(t.user_attrs["worker"] == w for t in done) for w in workers) == [2, 2]
    assert np.isfinite(study.best_value)
    assert study.best_value == pytest.approx(min(r["best_val_loss"] for r in reports))
    # the trials' runs did not overwrite each other: one run directory per trial
    assert len(list((tmp_path / "runs" / "toy_search").iterdir())) == 4
