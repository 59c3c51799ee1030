"""Shared fixtures: where ../shared is, and a skip that says why when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NYU_DIR = SHARED / "data" / "nyu"


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
