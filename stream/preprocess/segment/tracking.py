"""Reuse of the previous frame's result (`prev`): the segmenter is stateless, the caller hands back what it
found last, and a hand near where one was is easier to accept.

- Classic path: a window of +- `track_window_mm` around each previous hand is searched first; the full
  frame only when those windows give fewer tracked hands (pieces within `track_radius_mm` of a previous
  hand) than there were previous hands. A tracked piece's score is raised (`tracked_score`).
- Learned path: a heatmap peak whose hand lies within `track_radius_mm` of a previous hand needs only half
  the presence threshold (`tracked_threshold`): tracking keeps a half-hidden hand. A peak more than
  `track_jump_mm` behind every previous hand loses confidence with the distance (`jump_score`): on a table
  the detector also fires on bottles and jars behind the hand, and a hand does not move half a metre away
  in one frame. The penalty decides which peak becomes the first hand; a second hand is judged on its own
  peak (the user's other hand may lie behind the tracked one). When the tracked hand vanishes (a frame
  without a hand), the next frame has no previous hand and nothing is penalized.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ...frames import CameraIntrinsics
from .measure import view_window

if TYPE_CHECKING:
    from .config import HandDetection, Segmentation
    from .scoring import Candidate

__all__ = [
    "far_behind",
    "jump_score",
    "lost_hands",
    "with_lost",
    "near_previous",
    "previous_centres",
    "tracked_candidates",
    "tracked_score",
    "tracked_threshold",
]

Window = tuple[int, int, int, int]


def previous_centres(prev: Segmentation | None) -> list[np.ndarray]:
    """The previous frame's hand centres (camera mm); empty when there is no previous hand."""
    return [h.com_xyz_mm for h in prev.hands] if prev is not None and prev.found else []


def lost_hands(
    prev: Segmentation | None,
    lost: tuple[tuple[HandDetection, int], ...],
    now: Segmentation,
    radius_mm: float,
    max_age: int,
) -> tuple[tuple[HandDetection, int], ...]:
    """The hands of a two-hand frame not found since, with the frames they have been missing (at most
    `max_age`): `prev` the previous frame's result, `lost` what was lost before it, `now` this frame's.
    A second hand is often missed for a frame or two (a weak peak, a hand across the other); as MediaPipe
    looks again where the previous frame's hand was, its last place still lowers the bar for a peak there
    (`tracked_threshold`). Only hands of two-hand frames are kept: a hand alone that vanishes is not
    looked for, as before."""
    recent = [(h, 0) for h in prev.hands] if prev is not None and len(prev.hands) >= 2 else []
    out = []
    found = now.hands if now.found else ()
    for h, age in recent + list(lost):
        if age + 1 > max_age or any(np.linalg.norm(h.com_xyz_mm - f.com_xyz_mm) < radius_mm for f in found):
            continue
        if any(np.linalg.norm(h.com_xyz_mm - o.com_xyz_mm) < radius_mm for o, _ in out):
            continue  # the same place twice: keep the most recent
        out.append((h, age + 1))
    return tuple(out)


def with_lost(prev: Segmentation | None, lost: tuple[tuple[HandDetection, int], ...]) -> Segmentation | None:
    """`prev` with the recently lost hands of `lost_hands` after its own: the previous hands the
    segmenter tracks."""
    if not lost:
        return prev
    from .config import Segmentation

    own = prev.hands if prev is not None and prev.found else ()
    return Segmentation(hands=own + tuple(h for h, _ in lost))


def near_previous(xyz: np.ndarray, prev_coms: list[np.ndarray], radius_mm: float) -> bool:
    """Whether a 3-D point lies within `radius_mm` of one of the previous hands (it is the same hand)."""
    return any(np.linalg.norm(xyz - p) < radius_mm for p in prev_coms)


def tracked_score(score: float) -> float:
    """A tracked piece's score: raised, so a hand seen last frame survives a frame where it looks worse."""
    return min(1.0, score * 1.2 + 0.15)


def far_behind(xyz: np.ndarray, prev_coms: list[np.ndarray], jump_mm: float) -> bool:
    """Whether a point lies more than `jump_mm` behind every previous hand, the farthest included (False
    without one, or with jump_mm <= 0): farther than any of them moves in one frame. Against the farthest:
    a spurious second hand in front must not pin the first hand to its depth."""
    if not prev_coms or jump_mm <= 0:
        return False
    return float(xyz[2]) - max(float(p[2]) for p in prev_coms) > jump_mm


def jump_score(
    score: float, xyz: np.ndarray, prev_coms: list[np.ndarray], jump_mm: float, falloff_mm: float
) -> float:
    """A candidate's score while tracking: unchanged within `jump_mm` behind the nearest previous hand (or
    anywhere in front of it), then divided by 1 + (excess / falloff_mm). jump_mm <= 0: no penalty."""
    if not prev_coms or jump_mm <= 0:
        return score
    behind = float(xyz[2]) - min(float(p[2]) for p in prev_coms) - jump_mm
    return score / (1.0 + behind / falloff_mm) if behind > 0 else score


def tracked_threshold(need: float, tracked: bool) -> float:
    """The presence a heatmap peak needs: half of `need` near a previous hand."""
    return 0.5 * need if tracked else need


def tracked_candidates(
    find: Callable[[Window], list[Candidate]],
    sintr: CameraIntrinsics,
    prev_coms: list[np.ndarray],
    window_mm: float,
    min_confidence: float,
) -> list[Candidate]:
    """The tracked candidates in windows of +- `window_mm` around each previous hand (`find` searches one
    low-res window), or none when they are fewer than the previous hands: then the caller searches the
    whole frame (a hand lost by the windows must still be found)."""
    cands: list[Candidate] = []
    for pc in prev_coms:
        win = view_window(pc, sintr, window_mm)
        if win is None:
            continue
        cands += [c for c in find(win) if c.tracked and c.score >= min_confidence]
    if len(cands) < len(prev_coms):
        cands = []
    return cands
