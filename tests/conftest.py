"""Shared fixtures: where ../shared is, and a skip that says why when it is absent."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NYU_DIR = SHARED / "data" / "nyu"


def write_toy_crops(path: Path, n: int, size: int = 32) -> None:
    """`n` tiny pose crops (a noisy blob, two joints) saved as train.data.PoseArrays, for training tests."""
    import numpy as np

    from train.data import PoseArrays

    rng = np.random.default_rng(0)
    depth = np.ones((n, size, size), np.float32)
    depth[:, 8:24, 10:22] = rng.uniform(-0.5, 0.5, (n, 16, 12))
    j = rng.uniform(-0.5, 0.5, (n, 2, 3)).astype(np.float32)
    PoseArrays(depth, j, np.zeros((n, 3)), j * 150.0, 300.0, {"toy": True}).save(path)


def write_toy_config(folder: Path, crops: Path, **fields) -> Path:
    """A tiny `handstream train pose` run config (JSON) over a crops file, one thread, no logging, written
    as folder/cfg.json; `fields` override the defaults."""
    import json

    cfg = {
        "name": "toy",
        "model": "compact_gap",
        "model_kwargs": {"fc_width": 16},
        "data": {"kind": "crops", "path": str(crops)},
        "epochs": 1,
        "batch_size": 8,
        "threads": 1,
        "tensorboard": False,
        "progress": False,
        "out_dir": str(folder / "runs"),
    } | fields
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def load_tool(name: str):
    """A script of tools/ (not a package) imported as a module, so a test can call its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def nyu_dir() -> Path:
    if not (NYU_DIR / "nyu_test_groundtruth_label.txt").is_file():
        pytest.skip(f"NYU test material not found at {NYU_DIR} (only present beside a project checkout)")
    return NYU_DIR


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: on the shared 2-core machine a second torch thread only adds contention (10x slower)."""
    torch = pytest.importorskip("torch", reason="training tests need torch (the `train` or `dev` extra)")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---- running the CLI subject to file permissions, as root -------------------------------------------


def _drop_file_capabilities() -> None:
    """Run as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: file modes then apply to us, as to
    any user (the venv's python may not be reachable for `nobody`). PR_CAPBSET_DROP = 24."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.fixture
def unprivileged(tmp_path):
    """A preexec_fn that makes the CLI subject to file permissions, or a skip saying why it cannot."""
    if os.geteuid() != 0:
        return None  # already an ordinary user: modes apply
    probe = tmp_path / "probe"
    probe.write_text("x")
    probe.chmod(0)
    r = subprocess.run(
        [sys.executable, "-c", f"open({str(probe)!r}).read()"],
        preexec_fn=_drop_file_capabilities,
        capture_output=True,
        text=True,
    )
    if "PermissionError" not in r.stderr:
        pytest.skip(
            f"cannot drop root's file capabilities here: {r.stderr.strip()[-200:] or 'probe readable'}"
        )
    return _drop_file_capabilities
