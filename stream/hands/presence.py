"""Hand presence: which of the segmenter's candidates is a hand, from the crop the pose engine reads.

The detector's heatmap also peaks on things that are not hands -- a ball or box held between the camera and
the hand, a jar or cup on a table, a sleeve -- and sometimes higher than on the hand itself. Then the pose
engine and the fit run on the object and the skeleton lands 100-500 mm off: on the generator's frontal
tuning frames such frames are 1-2 % of the found ones but a quarter of the fitted mean error. MediaPipe's
landmark model answers the same question with a hand-presence score on its crop; the `presence` engine
(train/presence/: the handedness engine's tiny CNN, trained on detector candidates of generator frames
labelled hand or not) gives P(hand) for a normalized depth crop.

When a hand is not tracked (a new track: tracking keeps the hand it has), the segmenter also cuts the other
peaks (`Segmentation.alternatives`); each candidate is cropped as the pose engine's input and scored by
log-odds of P(hand) plus `peak_weight` times its detector peak, and an alternative becomes the first hand
when it beats the segmenter's own first hand by `margin` (whose rules -- tracking, look-behind, the shape
check -- sometimes chose a lower peak for a reason the score does not see). When the segmenter found no
hand, it cuts the peaks of at least `SegmenterConfig.weak_first_presence` all the same, and the best of them
becomes the hand when its score reaches `lone_score`: most clearly visible hands the detector misses still
peak at 0.25-0.4 on the hand, and at 17 (P(hand) near 1 and a peak of at least 0.31) the generator's
frontal tuning frames (seeds 78 / 77) gained 1.2 and 0.8 points of success at 20 mm after the fit: 16
frames taken, none on an object. The check runs only on frames without a tracked hand that offer a choice,
so a settled stream pays nothing.

`min_score` (off by default) also drops a found hand scoring under it. With no hand in view the detector
still fires on boxes and cups; on independent frames of such scenes a floor of 10 cut the frames with a
reported hand from 19 to 7 % (frontal) and from 43 to 9 % (mixed scene kinds), but it also refused a
quarter of the egocentric hands' first frames, and in sequences, where a track once started on an object
is kept, it lowered the egocentric hands found from 74 to 68 % (BENCHMARKS.md, "Hand presence").

A tracked hand is checked too (`track_floor`, on by default). MediaPipe's landmark model scores hand
presence on every tracked frame and lets the track go when it drops; here the preprocess stage scores the
first hand on a track's first frame and every `track_every`-th after it (one presence call is 0.22 ms, so a
tracked frame's median cost does not move), and when the mean score over the checked frames falls under
the floor the hand is not reported and the track is let go: the next frame's candidates are judged afresh.
Without it, once a track started on a box or a cup, tracking kept it for as long as it was in view: with no
hand in view the pipeline named a hand in 58 % of egocentric and desk frames and 30 % of frontal ones. The
engine was retrained for it on the crops the runtime tracks (train.presence.data --tracked), where the one
trained on new tracks' candidates separated egocentric hands from objects with a ROC AUC of 0.68 (now
0.88). The score is the log-odds of P(hand) plus 5 x the detector's peak: on P(hand) alone (floor -4)
more of the generated objects were refused, but so was the real NYU hand, to which an engine that has seen
only generated hands gives P(hand) 0.006 (the engine before: 0.18); its detector peak of 0.9 keeps it now.
The floor (-3), the peak's weight and a check every 6th frame were chosen on the close-range tuning
sequences (seeds 9200, 9300): with no hand in view 10-60 % fewer frames name one, and the frames with a
visible hand found on it within 0.8 points of before (BENCHMARKS.md, "Hand presence of tracked hands").

The two numbers were chosen on the generator's frontal tuning frames (seeds 78 and 77, 1 600 and 400
independent frames; BENCHMARKS.md, "Hand presence"): the fitted mean error over found frames fell from
11.18 to 9.90 mm and from 11.76 to 11.23 mm with 25 and 3, on a plateau of 20-25 and 3-4.

A checked frame whose P(hand) is under `rescue_below` (0.1) also asks the segmenter's rescue detector
(`HandSegmenter.rescue_candidates`) for the hand: a track started on a table object is kept by tracking while
the main detector does not see the hand, and the rescue detector, fine-tuned on close-range scenes, sees it
on most such frames of the close-range tuning sets. A candidate at least 80 mm away with P(hand) >=
`rescue_p_hand` (0.9) becomes the hand, as a new track (BENCHMARKS.md, "The rescue detector in tracking").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .odds import log_odds

# A first hand that the segmenter set aside because its mask was as convex as a jar (a hand-shaped peak beside
# it took its place; segmenter._prefer_hand_shape) becomes the second hand when P(hand) on its crop is at
# least this (and it lies within SegmenterConfig.weak_second_max_depth_gap_mm of the first hand in depth).
# That rule drops the jars, cups and bottles the detector fires on beside a hand, but a fist is as convex: in
# the frontal two-hand tuning sequences of seed 5151 it set aside a true hand 80 mm or more from the new first
# on 44 frames, 43 of them with P(hand) >= 0.95, against 2 of 4 other things. The objects it set aside in the
# one-hand close-range tuning sequences (egocentric 9200, desk and egocentric 9300) had P(hand) 0-0.79; one at
# 0.99 in independent egocentric frames lay 200 mm behind the hand (BENCHMARKS.md, "Second hands that no
# longer pass through the first; a fist set aside as an object")
DOUBTED_P_HAND = 0.95
# A second-hand candidate the detector does not vouch for (`Segmentation.second_candidates`: a lost hand of
# the previous two-hand frame cut again where it was, or a weak peak's hand) becomes the second hand when
# P(hand) on its crop is at least this, by the "presence_second" engine (the presence engine fine-tuned on
# such candidates: ROC AUC 0.876 on their validation crops, the presence engine's own 0.804). Chosen on the
# two-hand tuning sequences (seeds 4242, 5151, 7373, 8484; weak peaks cut on every frame) against the second
# hands reported off every hand in one-hand tuning sequences (egocentric 9200 / 9400, desk 9300 / 9500,
# frontal 4242): at 0.8 / 0.9 / 0.95 both hands were drawn in 81.3 / 81.2 / 81.0 % of the frames (78.5 %
# without candidates) for 234 / 226 / 221 such frames of 2 400 (211 without). A user with one hand sees the
# phantoms; the gains differ by 4 frames (BENCHMARKS.md, "Second hands the detector barely sees")
SECOND_P_HAND = 0.95


# A tracked first hand whose P(hand) on a checked frame is under RESCUE_BELOW_P_HAND is doubted: the rescue
# detector's candidates are cut and one with P(hand) >= RESCUE_P_HAND, at least 80 mm away, becomes the hand
# (a new track). Chosen on the close-range tuning sequences (BENCHMARKS.md, "The rescue detector in tracking").
RESCUE_BELOW_P_HAND: float | None = 0.1
RESCUE_P_HAND = 0.9


class TrackPresence:
    """The running presence of one track: the mean of its score (PresenceCheck.track_score) over its checked
    frames (its first, then every `every`-th), so that one poorly seen frame of a hand does not end it and a
    few frames of an object that looked like one do not keep it."""

    def __init__(self, every: int = 6) -> None:
        if int(every) < 1:
            raise ValueError(f"a track is checked every 1 or more frames, got {every}")
        self.every = int(every)
        self.total = 0.0
        self.checked = 0
        self.age = 0

    def update(self, new_track: bool, score_now: Callable[[], float]) -> float:
        """The track's mean after this frame; `score_now()` is called only on the frames checked."""
        if new_track:
            self.total, self.checked, self.age = 0.0, 0, 0
        if self.checked == 0 or self.age % self.every == 0:
            self.total += float(score_now())
            self.checked += 1
        self.age += 1
        return self.total / self.checked


class PresenceCheck:
    """Chooses the first hand among a segmentation's hands[0] and its alternatives by P(hand)."""

    def __init__(
        self,
        engine,
        peak_weight: float = 25.0,
        margin: float = 3.0,
        min_score: float | None = None,
        lone_score: float | None = 17.0,
        track_floor: float | None = -3.0,
        track_every: int = 6,
        track_peak_weight: float = 5.0,
        doubted_p_hand: float | None = DOUBTED_P_HAND,
        second_p_hand: float | None = SECOND_P_HAND,
        second_engine=None,
    ) -> None:
        """`engine`: the shipped "presence" engine (or one with the same contract); `peak_weight`: how much a
        detector peak counts against the presence log-odds (a peak 0.1 higher is worth 2.5 units at 25);
        `margin`: how much an alternative must beat the segmenter's first hand by; `min_score`: the score a
        found hand needs to start a track (None: any); `lone_score`: the score a weak candidate needs to
        become the hand of a frame where the segmenter found none (None: never); `track_floor`: the mean
        over a track's checked frames (its first, then every `track_every`-th) of `track_score` under which
        the preprocess stage stops reporting it and lets the track go (None: a track is never checked);
        `track_peak_weight`: the detector peak's weight in that score. Without the floor a track started on a
        cup or a box keeps it for as long as it is in view. `doubted_p_hand`: the P(hand) at which a first
        hand the segmenter set aside as convex as a jar (`Segmentation.doubted`) becomes the second hand
        (None: never; see DOUBTED_P_HAND); `second_p_hand`: the same for a second-hand candidate the
        detector does not vouch for (`Segmentation.second_candidates`; see SECOND_P_HAND), judged by
        `second_engine` when given (the shipped "presence_second": the same network trained on such
        candidates), else by `engine`."""
        self.engine = engine
        self.peak_weight = float(peak_weight)
        self.margin = float(margin)
        self.min_score = None if min_score is None else float(min_score)
        self.lone_score = None if lone_score is None else float(lone_score)
        self.track_floor = None if track_floor is None else float(track_floor)
        self.track_every = TrackPresence(track_every).every  # checked there, where it is used
        self.track_peak_weight = float(track_peak_weight)
        self.rescue_below = RESCUE_BELOW_P_HAND
        self.rescue_p_hand = RESCUE_P_HAND
        self.rescue_min_distance_mm = 80.0
        self.doubted_p_hand = None if doubted_p_hand is None else float(doubted_p_hand)
        self.second_p_hand = None if second_p_hand is None else float(second_p_hand)
        self._out = engine.output_names[0]
        pre = dict(getattr(engine.manifest, "preprocessing", {}) or {})
        self.size = int(pre.get("crop_size") or 64)
        self.second_engine = second_engine

    def track_score_of(self, p_hand: float, peak: float) -> float:
        """`track_score` from a P(hand) already computed."""
        return log_odds(p_hand) + self.track_peak_weight * float(peak)

    def doubts_tracked(self, p_hand: float) -> bool:
        """Whether a tracked hand's P(hand) this checked frame is low enough to look for the hand with the
        rescue detector (`rescue_below` None: never)."""
        return self.rescue_below is not None and p_hand < self.rescue_below

    def track_score(self, depth: np.ndarray, peak: float) -> float:
        """A tracked hand's score this frame: log-odds of P(hand) on its crop plus `track_peak_weight` x its
        detector peak (the real NYU hand, P(hand) 0.006 from an engine that has seen only generated hands,
        peaks at 0.9; the objects the detector fires on, at 0.4-0.6)."""
        return self.track_score_of(self.p_hand(depth), peak)

    def track(self) -> TrackPresence:
        """A new track's running presence, checked at this check's `track_every`."""
        return TrackPresence(self.track_every)

    def p_hand(self, depth: np.ndarray, engine=None) -> float:
        """P(hand) of one normalized (S, S) crop (resized to the engine's size when it differs), by `engine`
        (default this check's own; another must read the same crop size)."""
        x = depth
        if x.shape[0] != self.size:
            import cv2

            x = cv2.resize(x, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        e = engine or self.engine
        out = e.infer(np.ascontiguousarray(x, np.float32).reshape(1, 1, self.size, self.size))
        return float(np.asarray(out[self._out if e is self.engine else e.output_names[0]]).flat[0])

    def keeps_doubted(self, depth: np.ndarray) -> bool:
        """Whether a set-aside first hand (`Segmentation.doubted`) with this crop is a hand after all."""
        return self.doubted_p_hand is not None and self.p_hand(depth) >= self.doubted_p_hand

    def keeps_second(self, depth: np.ndarray) -> bool:
        """Whether a second-hand candidate (`Segmentation.second_candidates`) with this crop is a hand."""
        return self.second_p_hand is not None and self.p_hand(depth, self.second_engine) >= self.second_p_hand

    def score(self, p_hand: float, peak: float) -> float:
        """The candidate's score: log-odds of P(hand) plus `peak_weight` x its detector peak."""
        return log_odds(p_hand) + self.peak_weight * peak

    def judge(self, seg, crops: list) -> tuple[object, int]:
        """(segmentation, index of its first hand among [*hands, *alternatives], or -1 for none), on a frame
        without a tracked hand. `crops`: the normalized crop depths of those candidates, in that order (None
        = no crop: it cannot win, and is dropped only by a floor). Every candidate is scored, and:
        - a found hand scoring under `min_score` is dropped: with no hand in view the detector still peaks
          on boxes, cups and sleeves, and a track started there draws a skeleton on them;
        - the first hand is the segmenter's first surviving one unless an alternative beats it by `margin`
          (its rules -- tracking, look-behind, the shape check -- sometimes chose a lower peak for a reason
          the score does not see); then the alternative replaces it;
        - with no hand left, the best candidate scoring at least `lone_score` is taken: a clearly visible
          hand whose peak stayed under the detector's threshold.
        Other hands stay unless they lie within 80 mm of the first."""
        cands = [*seg.hands, *seg.alternatives]
        n = len(seg.hands)
        raw = np.array(
            [
                -np.inf if c is None else self.score(self.p_hand(c), float(h.confidence))
                for h, c in zip(cands, crops, strict=True)
            ]
        )
        first, keep = self.pick(raw, n)
        if first < 0:
            reason = "no candidate looks like a hand" if n else (seg.reason or "no hand")
            return replace(seg, hands=(), reason=reason), -1
        win = cands[first]
        rest = [cands[i] for i in keep if np.linalg.norm(cands[i].com_xyz_mm - win.com_xyz_mm) >= 80.0]
        return replace(seg, hands=(win, *rest), reason=""), first

    def pick(self, raw: np.ndarray, n: int) -> tuple[int, list[int]]:
        """`judge`'s rule on the candidates' scores `raw` ([*hands, *alternatives], the first `n` found
        hands): (index of the first hand or -1, indices of the other found hands kept)."""
        floor = -np.inf if self.min_score is None else self.min_score
        keep = [i for i in range(n) if raw[i] >= floor]
        if keep:
            first = keep[0]
            alt = [i for i in range(n, len(raw)) if raw[i] >= floor]
            if alt:
                best = max(alt, key=lambda i: raw[i])
                if raw[best] - self.margin > raw[first]:
                    return best, keep[1:]  # the hand it replaces looked less like one
            return first, keep[1:]
        if self.lone_score is not None and len(raw) > n:
            best = n + int(np.argmax(raw[n:]))
            if raw[best] >= self.lone_score:
                return best, []
        return -1, []
