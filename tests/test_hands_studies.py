"""The two-hand studies' own code: the logistic fit behind the handedness combination and the per-frame
causes of a lost second hand."""

from __future__ import annotations

import numpy as np

from train.handedness.synthesis_fit import design, fit_logistic
from train.handedness.why_lost import causes


def test_fit_logistic_recovers_the_weights_of_a_logistic_model():
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(size=(20000, 2)), np.ones(20000)])
    w_true = np.array([1.5, -0.8, 0.3])
    y = (rng.random(20000) < 1 / (1 + np.exp(-x @ w_true))).astype(float)
    w = fit_logistic(x, y, l2=1e-6)
    assert np.allclose(w, w_true, atol=0.08), w


def test_design_puts_the_engine_logit_first_and_scales_the_measures():
    x = design(np.array([0.5, 0.9]), np.array([[0.1, 0.0, -0.2], [0.0, 0.0, 0.0]]))
    assert np.allclose(x[0], [0.0, 1.0, 0.0, -2.0, 1.0]) and np.isclose(x[1, 0], np.log(9.0))


def test_every_frame_with_both_hands_in_view_gets_one_cause():
    rep = causes(4242, 1, 12)
    assert rep["frames_both_visible"] > 0
    assert sum(rep["causes"].values()) == rep["frames_both_visible"]
    assert rep["causes"].get("both found", 0) > 0, rep
