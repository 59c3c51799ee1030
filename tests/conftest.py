"""Shared fixtures: where ../shared is, and a skip that says why when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NYU_DIR = SHARED / "data" / "nyu"


@pytest.fixture
def nyu_dir() -> Path:
    if not (NYU_DIR / "nyu_test_groundtruth_label.txt").is_file():
        pytest.skip(f"NYU test material not found at {NYU_DIR} (only present beside a project checkout)")
    return NYU_DIR
