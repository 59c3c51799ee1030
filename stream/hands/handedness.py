"""Handedness: is this hand a left or a right one, from its normalized depth crop.

A tiny network (train/handedness/) reads the same cube crop the pose engine reads and gives P(left). It
never assumes a mirrored image (a selfie view): the crop is the camera's own view, and chirality is in the
hand's 3-D shape (which side the thumb is on for the side the palm faces, which way the fingers curl).

One frame can be ambiguous (a flat hand seen edge-on), so the pipeline averages P(left) over a track's
frames, and when the two hands of a pair come out on the same side, the less sure one takes the other side
(`resolve_pair`): one person's two hands are a left and a right. A hand alone is weighed against a prior
that it is a right hand (`settle_sides`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..stage_registry import register_stage
from ..stages import POSE_OUTPUTS, FrameState, Stage, engine_identity
from .odds import log_odds

LEFT, RIGHT = "left", "right"
# the share of left hands among hands seen alone, weighed against a hand alone's track-mean P(left). While
# the engine was weak (71-74 % of held-out crops) a right hand taken for a left one was mirrored into the
# pose engine (11.5 -> 15.1 mm mean joint error on one seed), so a hand alone was called left only at a mean
# P(left) of 0.97 (a prior of 0.03), and most lone left hands went through unmirrored. With the articulated
# fit's cue (fit_side.py) the sides are clear enough to need no prior: on the tuning seeds 4242 / 5151
# (`train.handedness.evaluate --one-hand [--mirror-frames]`), lone left hands right on 26 / 59 % of frames
# at 0.03, 78 / 75 % at 0.1, 100 / 76 % at 0.25 and 100 / 94 % at 0.5, lone right hands on 100 / 100 % up to
# 0.25 and 100 / 98.5 % at 0.5 (mean joint error 13.80 -> 14.02 mm on 5151); two hands 98.3-98.6 % on 4242
# whatever the prior. So a hand alone is judged like any other
LONE_PRIOR_LEFT = 0.5


@register_stage("handedness", tasks=("handedness",))
class HandednessStage(Stage):
    """Left or right hand, with a score, from the normalized depth crop (per frame; the pipeline averages
    it over each track)."""

    reads = ("crop",)
    writes = ("handedness", "handedness_score")
    engine = "handedness"
    needs_engine = True

    def __init__(self, engine, name: str = "handedness", synthesis: bool = True, fit: bool = True) -> None:
        """`synthesis`: add the analysis-by-synthesis cue (`stream.hands.synthesis`: the shipped pose
        engine on the crop and its mirror), combined with the engine's P(left) by `COMBINE`; its weights
        were fitted with the shipped engines, so it applies only when this engine is the shipped one.
        `fit` (with `synthesis`): add the articulated fit's cue (`stream.hands.fit_side`: the hand model
        fitted as a right and as a left hand from those two readings), combined by `COMBINE_FIT`."""
        super().__init__(engine, name)
        self._out = engine.output_names[0]
        pre = dict(getattr(engine.manifest, "preprocessing", {}) or {})
        self.size = int(pre.get("crop_size") or 64)
        self.pose = None
        self.fit_side = None
        if synthesis and getattr(engine.manifest, "name", "") == "handedness" and self.size == 64:
            from engines.registry import load_engine

            # the shipped pose engine on this engine's backend; the torch backend needs a checkpoint the
            # shipped engines do not carry, so it gets ONNX Runtime
            backend = getattr(engine, "backend", "onnxruntime")
            backend = backend if backend in ("onnxruntime", "tensorrt") else "onnxruntime"
            self.pose = load_engine("pose", backend=backend, threads=1)
            if fit:
                from .fit_side import FitSide

                self.fit_side = FitSide()

    def run(self, st: FrameState) -> None:
        crop = st.crop
        if crop is None:
            return
        x = crop.depth
        if crop.size != self.size:
            import cv2

            x = cv2.resize(x, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        p_left = float(
            np.asarray(self.engine.infer(x.reshape(1, 1, self.size, self.size))[self._out]).flat[0]
        )
        if not np.isfinite(p_left):
            return
        if self.pose is not None:
            from .synthesis import chirality_with_outputs

            features, own, mir = chirality_with_outputs(self.pose, x)
            p_left = combine(p_left, features)
            if self.fit_side is not None and getattr(st.frame, "depth_mm", None) is not None:
                p_left = combine_fit(p_left, self.fit_side.energy_difference(st, own, mir))
            if x is crop.depth:  # the pose stage's own input: it reuses the output it needs, if same engine
                st.fields[POSE_OUTPUTS] = (engine_identity(self.pose), own, mir)
        side = side_of(p_left)
        st.fields["handedness"] = side.label
        st.fields["handedness_score"] = side.score

    def record_fields(self, st: FrameState) -> dict:
        if "handedness" not in st.fields:
            return {}
        return {
            "handedness": st.fields["handedness"],
            "handedness_score": round(float(st.fields["handedness_score"]), 3),
        }


# P(left) from the engine's logit and the three analysis-by-synthesis measures (x10), by a logistic fit
# on 3 000 training crops (/work/runs-hands/train_crops.npz, seed 100): [engine logit, off-hand share,
# depth misfit, in front of the surface, bias]. Held-out crops (seed 4242, 2 843): 70.8 % -> 73.8 %.
COMBINE = np.array([1.519, 1.74, 8.08, 8.14, -0.031])


def combine(p_left: float, features: np.ndarray) -> float:
    """P(left) from the engine's P(left) and `chirality_features` (see COMBINE)."""
    z = COMBINE[0] * log_odds(p_left) + float(COMBINE[1:4] @ np.asarray(features)) + COMBINE[4]
    return float(1.0 / (1.0 + np.exp(-z)))


# P(left) from `combine`'s P(left) and the fit cue (the right-hand fit's depth energy per point minus the
# left-hand fit's, mm^2; fit_side.CUE_FIT), by a logistic fit on 576 hands of 300 two-hand frontal generator
# frames (seed 100, hands cut with their true masks): [log-odds, energy difference, bias]; 92.2 % of them on
# the right side, against 78.0 % for `combine` alone.
COMBINE_FIT = np.array([0.462, 0.127, 0.126])


def combine_fit(p_left: float, energy_difference: float) -> float:
    """P(left) from a P(left) and `FitSide.energy_difference` (see COMBINE_FIT)."""
    z = COMBINE_FIT[0] * log_odds(p_left) + COMBINE_FIT[1] * float(energy_difference) + COMBINE_FIT[2]
    return float(1.0 / (1.0 + np.exp(-z)))


@dataclass(frozen=True)
class TrackSide:
    """A side and how sure: `score` is the probability of `label` (0.5-1)."""

    label: str
    score: float

    @property
    def p_left(self) -> float:
        return self.score if self.label == LEFT else 1.0 - self.score


def side_of(p_left: float) -> TrackSide:
    """The side a P(left) says (0.5 counts as right) and its probability."""
    p = float(np.clip(p_left, 0.0, 1.0))
    return TrackSide(LEFT, p) if p > 0.5 else TrackSide(RIGHT, 1.0 - p)


def with_prior(p_left: float, prior_left: float) -> float:
    """P(left) from an engine trained on as many left as right hands, for hands of which a fraction
    `prior_left` are left (Bayes' rule on the odds)."""
    p = float(np.clip(p_left, 1e-6, 1 - 1e-6))
    odds = p / (1 - p) * prior_left / (1 - prior_left)
    return odds / (1 + odds)


def settle_sides(
    p_lefts: Sequence[float | None], lone_prior_left: float = LONE_PRIOR_LEFT
) -> list[TrackSide | None]:
    """The sides of one frame's hands from their tracks' mean P(left). Two hands: each its own side,
    then `resolve_pair` (one person's hands are a left and a right). A hand alone: weighed against the
    prior `lone_prior_left` (see LONE_PRIOR_LEFT: 0.5, no lean either way, since the fit cue)."""
    if len(p_lefts) == 1:
        p = p_lefts[0]
        return [None if p is None else side_of(with_prior(p, lone_prior_left))]
    return resolve_pair([None if p is None else side_of(p) for p in p_lefts])


def resolve_pair(sides: Sequence[TrackSide | None], sure: float = 0.9) -> list[TrackSide | None]:
    """Two hands on the same side: the less sure one takes the other side (score: its own probability of
    that side), unless both are at least `sure` (two people's right hands can be in view). None (a hand
    without a handedness yet) and one or more than two hands are left as they are."""
    out = list(sides)
    if len(out) != 2 or out[0] is None or out[1] is None or out[0].label != out[1].label:
        return out
    if min(out[0].score, out[1].score) >= sure:
        return out
    k = 0 if out[0].score < out[1].score else 1
    other = LEFT if out[k].label == RIGHT else RIGHT
    out[k] = TrackSide(other, 1.0 - out[k].score)
    return out
