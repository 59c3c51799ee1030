"""One Euro filter (Casiez, Roussel & Vogel, CHI 2012), vectorized over any array shape.

Per sample, with period Te = t - t_prev (seconds):

    alpha(fc)   = 1 / (1 + tau / Te),   tau = 1 / (2 pi fc)
    dx          = (x - x_hat_prev) / Te
    dx_hat      = alpha(d_cutoff) * dx + (1 - alpha(d_cutoff)) * dx_hat_prev
    fc          = min_cutoff + beta * |dx_hat|
    x_hat       = alpha(fc) * x + (1 - alpha(fc)) * x_hat_prev

The first sample (and the first after `reset()`) passes through unchanged with dx_hat = 0. Every element
gets its own cutoff (so a still wrist stays smooth while a fast fingertip follows), which is what the
paper's per-coordinate filters do; here it is one numpy expression for all 21x3 joint coordinates.

`angular=True` filters angles in radians: differences are wrapped to (-pi, pi] and the output is
wrapped back, so a heading crossing +-pi does not swing the long way round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError

_TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class OneEuroConfig:
    """Filter parameters. Units: cutoffs in Hz; `beta` in 1 / (unit of x), so it depends on what is
    filtered. The defaults suit joint positions in millimetres at 30 fps (`handstream eval smoothing`)."""

    min_cutoff_hz: float = 1.0
    beta: float = 0.02
    d_cutoff_hz: float = 1.0
    fallback_rate_hz: float = 30.0  # used when two samples share a timestamp (Te <= 0)

    def __post_init__(self) -> None:
        for name in ("min_cutoff_hz", "d_cutoff_hz", "fallback_rate_hz"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"One Euro {name} must be a positive number, got {v!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise InputError(f"One Euro beta must be >= 0, got {self.beta!r}")


def smoothing_factor(cutoff_hz: np.ndarray | float, te_s: float) -> np.ndarray | float:
    """alpha = 1 / (1 + tau / Te) with tau = 1 / (2 pi fc) (the paper's eq. for an exponential smoother)."""
    return 1.0 / (1.0 + 1.0 / (_TWO_PI * cutoff_hz * te_s))


def wrap_angle(a: np.ndarray | float) -> np.ndarray | float:
    """Wrap radians to (-pi, pi]."""
    return np.pi - np.mod(np.pi - a, _TWO_PI)


class OneEuroFilter:
    """Stateful One Euro filter over arrays of a fixed shape (or scalars). Call it with (x, t_s)."""

    def __init__(self, config: OneEuroConfig | None = None, *, angular: bool = False) -> None:
        self.config = config or OneEuroConfig()
        self.angular = angular
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float = 0.0
        cfg = self.config
        self._min_cutoff = float(cfg.min_cutoff_hz)
        self._beta = float(cfg.beta)
        self._d_cutoff = float(cfg.d_cutoff_hz)

    @property
    def initialized(self) -> bool:
        return self._x is not None

    def reset(self) -> None:
        """Forget the history (the hand was lost): the next sample passes through unchanged."""
        self._x = None
        self._dx = None

    def __call__(self, x, t_s: float):
        """Filter one sample taken at time `t_s` (seconds). Returns float64 of x's shape (a float for a
        scalar input)."""
        scalar = np.ndim(x) == 0
        xa = np.array(x, dtype=np.float64)  # a copy: the state never aliases the caller's array
        if self._x is None or self._x.shape != xa.shape:
            self._x = wrap_angle(xa) if self.angular else xa
            self._dx = np.zeros_like(xa)
            self._t = float(t_s)
            return float(self._x) if scalar else self._x.copy()
        te = float(t_s) - self._t
        if not te > 0:
            te = 1.0 / self.config.fallback_rate_hz
        self._t = float(t_s)
        diff = xa - self._x
        if self.angular:
            diff = wrap_angle(diff)
        a_d = smoothing_factor(self._d_cutoff, te)
        dx = self._dx + a_d * (diff / te - self._dx)
        cutoff = self._min_cutoff + self._beta * np.abs(dx)
        a = smoothing_factor(cutoff, te)
        x_hat = self._x + a * diff  # == a * x + (1 - a) * x_prev, written on the (wrapped) difference
        if self.angular:
            x_hat = wrap_angle(x_hat)
        self._x, self._dx = x_hat, dx
        return float(x_hat) if scalar else x_hat.copy()
