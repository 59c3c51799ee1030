"""Handedness: is this hand a left or a right one, from its normalized depth crop and the depth around it.

Nothing here assumes a mirrored image (a selfie view): the crop is the camera's own view, and chirality is
in the hand's 3-D shape (which side the thumb is on for the side the palm faces, which way the fingers
curl). The answer comes from the articulated fit's cue (fit_side.py: the hand model fitted to the depth as a
right and as a left hand, from the pose engine's readings of the crop and of its mirror; FIT_CUE). Where
that cue has no evidence (a reading not finite, too few hand pixels to fit, no depth frame), a tiny network
(train/handedness/) reading the same cube crop gives P(left), with the analysis-by-synthesis cue
(synthesis.py, `combine`).

One frame can be ambiguous (a flat hand seen edge-on), so the pipeline averages P(left) over a track's
frames, and when the two hands of a pair come out on the same side, the less sure one takes the other side
(`resolve_pair`): one person's two hands are a left and a right. A hand alone is weighed against a prior
(`settle_sides`; even odds since the fit cue).
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
    # the fit cue's log energy ratio where it had evidence: for evaluation (fit_cue.py)
    writes = ("handedness", "handedness_score", "handedness_fit_log_ratio")
    engine = "handedness"
    needs_engine = True

    def __init__(self, engine, name: str = "handedness", synthesis: bool = True, fit: bool = True) -> None:
        """`synthesis`: add the analysis-by-synthesis cue (`stream.hands.synthesis`: the shipped pose
        engine on the crop and its mirror), combined with the engine's P(left) by `COMBINE`; its weights
        were fitted with the shipped engines, so it applies only when this engine is the shipped one.
        `fit` (with `synthesis`): the articulated fit's cue (`stream.hands.fit_side`: the hand model
        fitted as a right and as a left hand from those two readings) answers alone where it has evidence
        (`FIT_CUE`); this engine and the synthesis cue answer where it has none."""
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
        if self.pose is None:
            p_left = self._engine_p_left(x)
        else:
            from .synthesis import both_readings, fit_difference

            own, mir = both_readings(self.pose, x)
            if x is crop.depth:  # the pose stage's own input: it reuses the output it needs, if same engine
                st.fields[POSE_OUTPUTS] = (engine_identity(self.pose), own, mir)
            ratio = None
            if self.fit_side is not None and getattr(st.frame, "depth_mm", None) is not None:
                ratio = self.fit_side.energy_log_ratio(st, own, mir)
            if ratio is not None:
                # the fit cue alone where it has evidence (FIT_CUE): the engine need not run
                st.fields["handedness_fit_log_ratio"] = ratio
                p_left = fit_p_left(ratio)
            else:
                p_left = self._engine_p_left(x)
                p_left = combine(p_left, fit_difference(x, own, mir))
        if not np.isfinite(p_left):
            return
        side = side_of(p_left)
        st.fields["handedness"] = side.label
        st.fields["handedness_score"] = side.score

    def _engine_p_left(self, x: np.ndarray) -> float:
        """The handedness engine's P(left) of a crop of its own size."""
        return float(np.asarray(self.engine.infer(x.reshape(1, 1, self.size, self.size))[self._out]).flat[0])

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


# P(left) from the fit cue alone (fit_side.FitSide.energy_log_ratio, r = log((E_R + 1) / (E_L + 1)), E the
# right-hand and the left-hand fit's depth energy per point, mm^2): sigmoid(FIT_CUE[0] * r + FIT_CUE[1]), by a
# logistic fit on the runtime's own hand-frames (`python -m train.handedness.fit_cue`: frontal two-hand
# generator sequences of seeds 100-400, each hand-frame where the stage ran judged by the generator hand it
# lies on). Before it, the cue was the energies' difference on a log scale, sign(e) log(1 + |e|) (89.8 % of
# the tuning hand-frames right against 87.1 % for the earlier combination with the handedness engine and the
# synthesis cue, which add nothing to either). The ratio names as many single frames (88.7 % on the six
# frontal tuning seeds either way), but a gap between two poor fits (a crop that holds another object, a
# reading upside down) weighs less than the same gap between two good ones, so a track's mean leans on its
# good frames: through the runtime, 96.2 -> 96.5 % of frontal tuning hand-frames and 1 805 -> 1 833 of 1 971
# close-range ones right (BENCHMARKS.md, "Two hands")
FIT_CUE = np.array([2.244, 0.095])


def fit_p_left(log_ratio: float) -> float:
    """P(left) from `FitSide.energy_log_ratio` (see FIT_CUE)."""
    z = FIT_CUE[0] * float(log_ratio) + FIT_CUE[1]
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
