"""One Euro filter against the paper's equations, computed by hand here (Casiez et al. 2012)."""

import math

import numpy as np
import pytest

from stream.errors import InputError
from stream.smoothing import OneEuroConfig, OneEuroFilter, wrap_angle


def _alpha(fc, te):
    tau = 1.0 / (2.0 * math.pi * fc)
    return 1.0 / (1.0 + tau / te)


def test_matches_reference_equations_step_by_step():
    cfg = OneEuroConfig(min_cutoff_hz=1.0, beta=0.5, d_cutoff_hz=2.0)
    f = OneEuroFilter(cfg)
    # sample 0 passes through, derivative estimate 0
    assert f(0.0, 0.0) == 0.0
    # sample 1 at t = 0.1 s
    te = 0.1
    dx1 = (1.0 - 0.0) / te  # 10
    edx1 = _alpha(2.0, te) * dx1 + (1 - _alpha(2.0, te)) * 0.0
    fc1 = 1.0 + 0.5 * abs(edx1)
    x1 = _alpha(fc1, te) * 1.0 + (1 - _alpha(fc1, te)) * 0.0
    assert f(1.0, 0.1) == pytest.approx(x1, rel=1e-12)
    # sample 2 at t = 0.25 s (uneven period)
    te = 0.15
    dx2 = (1.5 - x1) / te
    edx2 = _alpha(2.0, te) * dx2 + (1 - _alpha(2.0, te)) * edx1
    fc2 = 1.0 + 0.5 * abs(edx2)
    x2 = _alpha(fc2, te) * 1.5 + (1 - _alpha(fc2, te)) * x1
    assert f(1.5, 0.25) == pytest.approx(x2, rel=1e-12)
    assert 0 < x1 < 1.0 and x1 < x2 < 1.5


def test_vectorized_equals_independent_scalar_filters():
    rng = np.random.default_rng(0)
    xs = rng.normal(0, 5, (12, 21, 3)).cumsum(0)
    cfg = OneEuroConfig(min_cutoff_hz=1.5, beta=0.05)
    vec = OneEuroFilter(cfg)
    scal = [[OneEuroFilter(cfg) for _ in range(3)] for _ in range(21)]
    for k, x in enumerate(xs):
        t = k / 30.0
        out = vec(x, t)
        ref = np.array([[scal[j][c](x[j, c], t) for c in range(3)] for j in range(21)])
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_reset_passes_next_sample_through_and_output_is_not_aliased():
    f = OneEuroFilter()
    a = np.zeros((21, 3))
    f(a, 0.0)
    out = f(a + 100.0, 1 / 30)
    assert np.all(out < 100.0)  # smoothed, lags behind the jump
    f.reset()
    assert not f.initialized
    b = np.full((21, 3), 7.0)
    np.testing.assert_array_equal(f(b, 2 / 30), b)
    b[:] = 0  # the filter's state must not be the caller's array
    assert np.all(f(np.full((21, 3), 7.0), 3 / 30) == 7.0)


def test_reduces_jitter_on_a_noisy_still_signal():
    rng = np.random.default_rng(1)
    x = 100.0 + rng.normal(0, 3.0, 300)
    f = OneEuroFilter(OneEuroConfig(min_cutoff_hz=1.0, beta=0.0))
    y = np.array([f(v, k / 30) for k, v in enumerate(x)])
    assert np.std(np.diff(y[30:])) < 0.3 * np.std(np.diff(x[30:]))
    assert abs(np.mean(y[30:]) - 100.0) < 1.0


def test_angles_wrap_around_pi():
    f = OneEuroFilter(OneEuroConfig(min_cutoff_hz=1.0, beta=0.0), angular=True)
    f(math.pi - 0.05, 0.0)
    y = f(-math.pi + 0.05, 1 / 30)  # +0.1 rad across the seam, not -6.18
    assert abs(abs(y) - math.pi) < 0.06
    # a non-wrapping filter on the same input swings through 0
    g = OneEuroFilter(OneEuroConfig(min_cutoff_hz=1.0, beta=0.0))
    g(math.pi - 0.05, 0.0)
    assert abs(g(-math.pi + 0.05, 1 / 30)) < 2.5
    assert wrap_angle(3 * math.pi / 2) == pytest.approx(-math.pi / 2)


def test_scalar_in_scalar_out_and_equal_timestamps():
    f = OneEuroFilter()
    assert isinstance(f(1.0, 0.0), float)
    assert math.isfinite(f(2.0, 0.0))  # same timestamp: falls back to the configured rate, no div by 0


@pytest.mark.parametrize("kw", [{"min_cutoff_hz": 0}, {"beta": -1}, {"d_cutoff_hz": float("nan")}])
def test_bad_parameters_are_one_line_errors(kw):
    with pytest.raises(InputError):
        OneEuroConfig(**kw)
