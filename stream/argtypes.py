"""Typed, range-checked argparse types shared by every verb: a bad value is one line that names the option,
the value and the valid range, before anything is loaded or allocated.

They raise `InputError`, not argparse's ArgumentTypeError: argparse would print its usage block and a
second line, where the CLI prints a HandstreamError as one line (`handstream VERB: error: ...`).

    ap.add_argument("--fps", type=fps_type("--fps"), default=None)
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .errors import InputError

FPS_RANGE: tuple[float, float] = (0.1, 1000.0)  # slower than one frame in 10 s or faster than 1 kHz is a typo
SEED_MAX = 2**63 - 1


def _typed(
    option: str, parse: Callable[[str], float | int], kind: str, lo, hi
) -> Callable[[str], float | int]:
    """An argparse `type` that parses with `parse` and requires lo <= value <= hi (either may be None)."""

    def fmt(v) -> str:
        return str(v) if isinstance(v, int) else f"{v:g}"

    if lo is not None and hi is not None:
        valid = f"between {fmt(lo)} and {fmt(hi)}"
    elif lo is not None:
        valid = f">= {fmt(lo)}"
    else:
        valid = f"<= {fmt(hi)}"

    def check(text: str):
        try:
            value = parse(str(text).strip())
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"{option} {text!r} is not {kind}; valid values are {valid}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{option} {text!r} is not finite; valid values are {valid}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise InputError(f"{option} {text!r} is out of range; valid values are {valid}")
        return value

    check.__name__ = kind.replace(" ", "_")  # argparse names the type in its own messages
    return check


def int_type(option: str, lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An integer in [lo, hi]."""
    return _typed(option, int, "an integer", lo, hi)


def float_type(option: str, lo: float | None = None, hi: float | None = None) -> Callable[[str], float]:
    """A finite number in [lo, hi]."""
    return _typed(option, float, "a number", lo, hi)


def fps_type(option: str = "--fps") -> Callable[[str], float]:
    """A frame rate: finite, within FPS_RANGE."""
    return float_type(option, *FPS_RANGE)


def frames_type(option: str = "--frames") -> Callable[[str], int]:
    """A number of frames: >= 1 (0 is no sequence, not a default)."""
    return int_type(option, 1)


def seed_type(option: str = "--seed") -> Callable[[str], int]:
    """A generator seed: numpy's SeedSequence takes integers >= 0 only."""
    return int_type(option, 0, SEED_MAX)


def _as_text(value) -> str:
    """An API value as the text argparse would have seen: integral floats as integers, so that
    frames=300.0 passes and frames=2.5 is refused by the int parser."""
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return str(int(value))
    return str(value)


def check_fps(value: float, option: str = "--fps") -> float:
    """The same check as fps_type for a value that did not come through argparse (the Python API)."""
    return fps_type(option)(str(value))


def check_frames(value: int, option: str = "--frames") -> int:
    """The same check as frames_type for a value from the Python API."""
    return frames_type(option)(_as_text(value))


def check_seed(value: int, option: str = "seed") -> int:
    """The same check as seed_type for a value from the Python API (synthetic:SEED)."""
    return seed_type(option)(_as_text(value))
