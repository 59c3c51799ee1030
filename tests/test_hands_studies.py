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
    # the same frames binned twice (palm distance, the less visible hand's pixels), and the found ones agree
    by = rep["both_found_by"]
    for kind in ("palms_apart_mm", "fewer_pixels"):
        rows = [v for k, v in by.items() if k.startswith(kind + " ")]
        assert sum(v["frames"] for v in rows) == rep["frames_both_visible"]
        found = sum(round(v["both_found"] * v["frames"]) for v in rows)
        assert found == rep["causes"]["both found"]


def test_the_fit_cue_study_collects_hand_frames_of_both_sides_and_its_design_is_the_log_ratio():
    from train.handedness.fit_cue import collect
    from train.handedness.fit_cue import design as cue_design

    x = cue_design(np.array([0.0, 1.5, -0.25]))
    assert np.allclose(x, [[0.0, 1.0], [1.5, 1.0], [-0.25, 1.0]])
    e, left = collect(4242, 1, frames=12)
    assert len(e) == len(left) > 0 and np.all(np.isfinite(e))
    assert set(left.tolist()) == {0, 1}  # both hands of the pair, each judged by the generator hand it is on


def test_bins_name_their_edges():
    from train.handedness.why_lost import _bin

    assert _bin("x", 50, (80, 120)) == "x 0-80"
    assert _bin("x", 80, (80, 120)) == "x 80-120"
    assert _bin("x", 500, (80, 120)) == "x 120+"


def test_the_two_hand_evaluation_judges_hands_by_their_centre_and_by_their_drawn_skeleton():
    from train.handedness.evaluate import evaluate

    rep = evaluate(1, 12, 4242)
    assert rep["frames_both_visible"] > 0
    for key in ("both_found", "both_found_within_80mm", "both_found_by_skeleton"):
        assert 0.0 < rep[key] <= 1.0, (key, rep[key])
    assert rep["both_found_within_80mm"] >= rep["both_found"]  # a looser rule on the same centres
    assert rep["both_found_matched_by_skeleton"] >= rep["both_found_by_skeleton"]  # no 80 mm rule
    assert 0 < rep["frames_both_clear"] <= rep["frames"]
    for key in ("clear_both_found", "clear_both_found_by_skeleton", "clear_both_found_matched_by_skeleton"):
        assert 0.0 <= rep[key] <= 1.0, (key, rep[key])


def test_found_hands_are_paired_with_generator_hands_one_to_one():
    from train.handedness.evaluate import matched

    joints = lambda x: np.tile(np.array([x, 0.0, 500.0]), (21, 1))  # noqa: E731 - palm at (x, 0, 500)
    truth = {"right": joints(0.0), "left": joints(90.0)}  # palms 90 mm apart: touching hands
    at = lambda x: np.array([x, 0.0, 500.0])  # noqa: E731
    assert matched(truth, [at(10.0), at(80.0)]) == 2  # each within 45 mm of its own palm
    assert matched(truth, [at(80.0), at(10.0)]) == 2  # in either order
    assert matched(truth, [at(45.0), at(46.0)]) == 1  # both between: one of them pairs
    assert matched(truth, [at(10.0)]) == 1 and matched(truth, []) == 0
    assert matched(truth, [at(10.0), at(20.0), at(85.0)]) == 2  # a third found hand changes nothing
