"""The user file: a calibrated hand size in JSON, written by `handstream calibrate`, read by `run --user`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..outputs import writing_failed
from .calibrator import PLAUSIBLE_MM


def save_user(path: str | Path, size_mm, confidence: float, frames: int, source: str) -> Path:
    p = Path(path)
    doc = {
        "hand_size_mm": [round(float(x), 2) for x in size_mm],
        "hand_size_confidence": round(float(confidence), 4),
        "frames": int(frames),
        "source": str(source),
        "quantities": ["hand length (wrist crease to middle fingertip)", "palm width across the MCPs"],
    }
    try:
        p.write_text(json.dumps(doc, indent=1) + "\n")
    except OSError as exc:
        raise writing_failed(p, exc) from None
    return p


def load_user(path: str | Path) -> np.ndarray:
    """(2,) float32 hand length and palm width in mm from a user file; a bad file is one InputError line."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        size = np.asarray(doc["hand_size_mm"], np.float64)
    except FileNotFoundError:
        raise InputError(f"--user: {p} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--user: {p} is not a user file (hand_size_mm: [length, width]): {exc}") from None
    if size.shape != (2,) or not np.isfinite(size).all():
        raise InputError(f"--user: {p}: hand_size_mm must be two numbers [length, width]")
    for v, (lo, hi), what in zip(size, PLAUSIBLE_MM, ("length", "width")):
        if not lo <= v <= hi:
            raise InputError(f"--user: {p}: a hand {what} of {v:g} mm is outside {lo:g}-{hi:g} mm")
    return size.astype(np.float32)
