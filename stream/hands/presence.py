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
check -- sometimes chose a lower peak for a reason the score does not see). The check runs only on frames
with alternatives and no tracked hand, so a settled stream pays nothing.

The two numbers were chosen on the generator's frontal tuning frames (seeds 78 and 77, 1 600 and 400
independent frames; BENCHMARKS.md, "Hand presence"): the fitted mean error over found frames fell from
11.18 to 9.90 mm and from 11.76 to 11.23 mm with 25 and 3, on a plateau of 20-25 and 3-4.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np


class PresenceCheck:
    """Chooses the first hand among a segmentation's hands[0] and its alternatives by P(hand)."""

    def __init__(self, engine, peak_weight: float = 25.0, margin: float = 3.0) -> None:
        """`engine`: the shipped "presence" engine (or one with the same contract); `peak_weight`: how much a
        detector peak counts against the presence log-odds (a peak 0.1 higher is worth 2.5 units at 25);
        `margin`: how much an alternative must beat the segmenter's first hand by."""
        self.engine = engine
        self.peak_weight = float(peak_weight)
        self.margin = float(margin)
        self._out = engine.output_names[0]
        pre = dict(getattr(engine.manifest, "preprocessing", {}) or {})
        self.size = int(pre.get("crop_size") or 64)

    def p_hand(self, depth: np.ndarray) -> float:
        """P(hand) of one normalized (S, S) crop (resized to the engine's size when it differs)."""
        x = depth
        if x.shape[0] != self.size:
            import cv2

            x = cv2.resize(x, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        out = self.engine.infer(np.ascontiguousarray(x, np.float32).reshape(1, 1, self.size, self.size))
        return float(np.asarray(out[self._out]).flat[0])

    def score(self, p_hand: float, peak: float) -> float:
        """The candidate's score: log-odds of P(hand) plus `peak_weight` x its detector peak."""
        p = float(np.clip(p_hand, 1e-4, 1 - 1e-4))
        return float(np.log(p / (1 - p)) + self.peak_weight * peak)

    def choose(self, seg, crops: list) -> tuple[object, int]:
        """(segmentation with the winner first, index of the winner among [hands[0], *alternatives]).
        `crops`: the normalized crop depths of those candidates, in that order (None = no crop). An
        alternative wins when its score beats hands[0]'s by `margin`; it then replaces hands[0] (which looked
        less like a hand than it); the other hands stay unless they lie within 80 mm of the winner."""
        cands = [seg.hands[0], *seg.alternatives]
        scores = [
            -np.inf
            if c is None
            else self.score(self.p_hand(c), float(h.confidence)) - (self.margin if i else 0.0)
            for i, (h, c) in enumerate(zip(cands, crops, strict=True))
        ]
        best = int(np.argmax(scores))
        if best == 0 or not np.isfinite(scores[best]):
            return seg, 0
        win = cands[best]
        rest = [h for h in seg.hands[1:] if np.linalg.norm(h.com_xyz_mm - win.com_xyz_mm) >= 80.0]
        return replace(seg, hands=(win, *rest)), best
