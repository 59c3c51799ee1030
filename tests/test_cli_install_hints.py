"""A verb that needs an extra the install lacks says which extra, in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream import cli

# distribution name -> the module it installs, where they differ
_MODULE_OF = {"pyyaml": "yaml", "scikit-learn": "sklearn"}


def test_every_training_extra_points_at_the_train_extras():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[<>=\[ ]", d)[0] for d in meta["dependencies"]}
    for dist in (re.split(r"[<>=\[ ]", d)[0] for d in meta["optional-dependencies"]["train"]):
        if dist in runtime:
            continue  # installed with the runtime: missing means a broken install
        assert cli._install_hint(_MODULE_OF.get(dist, dist)) == "pip install 'handstream[train]'", dist
    assert "pip install -e ." in cli._install_hint("numpy")  # a runtime module: the install is broken


def test_a_missing_training_module_is_one_line_naming_the_extra(monkeypatch, capsys):
    import sys
    import types

    fake = types.ModuleType("handstream_fake_trainer")

    def main(argv):
        raise ModuleNotFoundError("No module named 'yaml'", name="yaml")

    fake.main = main
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setitem(cli.VERBS, "train", (fake.__name__, "train models"))
    assert cli.main(["train", "detector"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["handstream train: error: missing module 'yaml' (pip install 'handstream[train]')"]
