"""Hand tracks: which hand of this frame is which hand of the last frames.

Each hand the segmenter finds is matched to a track by the distance of its 3-D centre to the track's last
centre: the closest pairs first (greedy; with two hands it gives the same answer as the Hungarian method
except in ties), never beyond a gate that widens a little for every frame the track was not seen. A hand
matched to no track starts a new one with the next id. A track unseen for `max_missed` frames ends, and
with it the per-hand copies of the stateful stages it owned (`Stage.fork`).

Why centres and not masks: two hands of one person cross and touch, but their palms stay a hand's width
apart (the segmenter keeps hands >= 80 mm apart); a frame-to-frame move at 30 FPS is a few centimetres.

Where centres cannot tell: hands that overlap in view are one blob with one centre, so one of the two
tracks goes unseen while the other holds the blob, and when they part the unseen track takes whichever hand
is nearest its old place -- the other hand, if they crossed. A track's handedness is settled over its first
frames and then kept, so such a track would carry the other hand's side for the rest of its life. Hence
when a track comes back after `reopen_missed` or more unseen frames, during which another track's centre
came within `reopen_near_mm` of its last place (one blob over both hands), while another hand is in view,
the hands' handedness evidence starts over (`p_left_sum`, `p_left_n`) and the handedness stage runs on them
again. The old mean stays as a few frames' worth of evidence (`reopen_keep_frames`): where the hands did
not cross, the first noisy frames after they part no longer flip a side for a moment, and where they did,
the fresh frames outweigh it within a few frames. The side settles again after `reopen_decide_frames` (12)
fresh frames rather than a new track's 24 more: the question is only whether the two crossed, and both
hands' frames answer it. On a 300-frame two-hand sequence the hands are one blob every few seconds, and
with a full second of re-decision each time the handedness stage ran on two thirds of the hand-frames;
with 12 the stage ran 13 % fewer times over the six frontal tuning sequences (seeds 4242, 5151, 7373, 8484,
9494, 1717), and the hands' side was right as often on each, more often on three (95.5 -> 96.2 % on
average; 6 frames: 95.5 %, 3: 93.1 %; BENCHMARKS.md, "Two hands"). Without the nearness condition a
spurious second track (an object) that flickers beside a lone hand re-opened that hand's settled side as
well. On the two-hand tuning sequences (seeds 4242, 5151, 7373, 8484) the handedness of found hands went
from 95.7 / 96.0 / 90.9 / 94.3 % to 96.1 / 96.6 / 97.5 / 98.0 % of frames (BENCHMARKS.md, "Two hands").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class HandTrack:
    """One tracked hand: its id, its own stage copies, and what handedness its frames said so far."""

    id: int
    stages: list
    com_xyz_mm: np.ndarray
    frames_seen: int = 1
    missed: int = 0  # consecutive frames without it
    p_left_sum: float = 0.0  # sum of the handedness engine's P(left) over the frames it ran
    p_left_n: int = 0
    # the frames of evidence after which the side is settled (None: the pipeline's SIDE_SETTLED_FRAMES);
    # set when a reopening starts the side over
    settle_frames: int | None = None
    # of p_left_n, the frames' worth of evidence kept from before a reopening (0: all of it is fresh)
    kept_frames: int = 0
    # while unseen: the nearest another seen track's centre came to this one's last centre
    near_while_missed_mm: float = float("inf")

    @property
    def p_left(self) -> float | None:
        """The mean P(left) over the track's frames, None before the first."""
        return self.p_left_sum / self.p_left_n if self.p_left_n else None


class HandTracker:
    """Assigns each frame's hands to tracks. `make_stages()` builds a new track's own stage copies."""

    def __init__(
        self,
        make_stages: Callable[[], list],
        gate_mm: float = 150.0,
        gate_growth_mm: float = 40.0,
        max_missed: int = 10,
        reopen_missed: int | None = 2,
        reopen_near_mm: float = 150.0,
        reopen_keep_frames: int = 6,
        reopen_decide_frames: int | None = 12,
    ) -> None:
        """`reopen_missed`, `reopen_near_mm`: a track back after this many unseen frames, during which another
        track's centre came this near its last one, with another hand in view, starts the hands' handedness
        over (None: never), its old mean kept as `reopen_keep_frames` frames' worth of evidence (see the
        module's docstring). `reopen_decide_frames`: the fresh frames of evidence after which a reopened
        side is settled again (None: as many as a new track's, less the kept ones)."""
        self.make_stages = make_stages
        self.gate_mm = float(gate_mm)
        self.gate_growth_mm = float(gate_growth_mm)
        self.max_missed = int(max_missed)
        self.reopen_missed = None if reopen_missed is None else max(1, int(reopen_missed))
        self.reopen_near_mm = float(reopen_near_mm)
        self.reopen_keep_frames = max(0, int(reopen_keep_frames))
        self.reopen_decide_frames = (
            None if reopen_decide_frames is None else max(1, int(reopen_decide_frames))
        )
        self.tracks: list[HandTrack] = []
        self._next_id = 1

    def clear(self) -> None:
        """Forget every track (a new sequence); ids go on counting, so an old id never names a new hand."""
        self.tracks = []

    def assign(self, coms: Sequence[np.ndarray]) -> list[HandTrack]:
        """The track of each hand (same order as `coms`), matching, starting and ending tracks. A track
        not seen this frame has its stages reset (as one hand's stages are when that hand is lost)."""
        pairs = match(
            [t.com_xyz_mm for t in self.tracks], coms, [self._gate(t) for t in self.tracks]
        )  # (track index, hand index)
        out: list[HandTrack | None] = [None] * len(coms)
        used = set()
        back = False  # a track seen again after `reopen_missed` unseen frames
        for ti, hi in pairs:
            t = self.tracks[ti]
            back = back or (
                self.reopen_missed is not None
                and t.missed >= self.reopen_missed
                and t.near_while_missed_mm <= self.reopen_near_mm
            )
            t.near_while_missed_mm = float("inf")
            t.com_xyz_mm = np.asarray(coms[hi], np.float64)
            t.frames_seen += 1
            t.missed = 0
            out[hi] = t
            used.add(ti)
        keep = []
        seen = [np.asarray(c, np.float64) for c in coms]
        for ti, t in enumerate(self.tracks):
            if ti not in used:
                near = min((float(np.linalg.norm(c - t.com_xyz_mm)) for c in seen), default=float("inf"))
                t.near_while_missed_mm = min(t.near_while_missed_mm, near)
                t.missed += 1
                if t.missed > self.max_missed:
                    continue  # the track ends: its stage copies go with it
                if t.missed == 1:
                    for s in t.stages:
                        s.reset()
            keep.append(t)
        self.tracks = keep
        for hi, c in enumerate(coms):
            if out[hi] is None:
                t = HandTrack(self._next_id, self.make_stages(), np.asarray(c, np.float64))
                self._next_id += 1
                self.tracks.append(t)
                out[hi] = t
        if back and len(out) >= 2:
            # their hands may have crossed while one went unseen: both sides are decided again, the old
            # mean kept as `reopen_keep_frames` frames' worth of evidence
            frames = self.reopen_keep_frames
            for t in out:
                mean = t.p_left
                t.p_left_n = frames if mean is not None else 0
                t.p_left_sum = mean * frames if mean is not None else 0.0
                t.kept_frames = t.p_left_n
                if self.reopen_decide_frames is not None and mean is not None:
                    t.settle_frames = t.p_left_n + self.reopen_decide_frames
        return out  # type: ignore[return-value]

    def lost(self, track: HandTrack) -> None:
        """A hand's chain failed on this frame: reset its stages, keep its id."""
        for s in track.stages:
            s.reset()

    def _gate(self, t: HandTrack) -> float:
        return self.gate_mm + self.gate_growth_mm * t.missed


def match(
    previous: Sequence[np.ndarray], current: Sequence[np.ndarray], gates: Sequence[float]
) -> list[tuple[int, int]]:
    """(previous index, current index) pairs, the closest first, each at most its previous point's gate
    apart in 3-D; each point in at most one pair."""
    if not len(previous) or not len(current):
        return []
    p = np.asarray(previous, np.float64).reshape(-1, 3)
    c = np.asarray(current, np.float64).reshape(-1, 3)
    d = np.linalg.norm(p[:, None, :] - c[None, :, :], axis=-1)
    order = np.argsort(d, axis=None, kind="stable")
    pairs, pi_used, ci_used = [], set(), set()
    for flat in order:
        pi, ci = divmod(int(flat), len(c))
        if pi in pi_used or ci in ci_used or d[pi, ci] > gates[pi]:
            continue
        pairs.append((pi, ci))
        pi_used.add(pi)
        ci_used.add(ci)
    return pairs
