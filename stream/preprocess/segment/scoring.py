"""How much a candidate looks like a hand, and which candidates are kept.

Classic path: metric length, width, area, depth spread, finger-like convexity defects, an arm hanging off
the cut (and reaching a larger surface), the hand nearer than its arm, closeness to the previous frame's
hands (tracking.py). Candidates well behind the nearest plausible arm end lose confidence (clutter, chairs,
the body lie behind the user's hand). A second hand needs `second_hand_min_confidence` and a depth within
`second_hand_max_depth_gap_mm` of the first.

Learned path, classic fallback: when no heatmap peak reaches the presence threshold, the classic method runs
and its hands are kept only where a weak peak (>= `classic_fallback_presence`) vouches for them, i.e. lies
inside their mask: on real frames unlike the synthetic training data (the NYU test frame) the detector still
points at the hand with a low score, and the rules cut it out. Only the strongest `fallback_vouch_peaks`
weak peaks count: the lesser ones often sit on the occluder or the body, and a classic blob there passed
with all of them. Engines with a hand-depth output also require the hand's depth to agree with the depth
the detector predicts at the peak (`fallback_depth_gate_mm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ...frames import CameraIntrinsics
from .config import HandDetection, SegmenterConfig
from .measure import principal_axes, robust_range
from .tracking import near_previous, tracked_score

if TYPE_CHECKING:
    from ..detect import DetectorOutput, Peak

__all__ = ["Candidate", "choose", "finger_defects", "penalize_behind", "score_piece", "tri", "vouched_hands"]


@dataclass
class Candidate:
    """One candidate hand at low resolution (pixel coordinates in the low-res view)."""

    ys: np.ndarray
    xs: np.ndarray
    zs: np.ndarray
    pts: np.ndarray  # (N, 3) camera mm
    score: float
    length_mm: float
    width_mm: float
    cut: bool
    com_xyz: np.ndarray
    tracked: bool = False
    arm: bool = False  # cut off an arm, or its arm reaches a larger surface or the image border


def score_piece(
    cfg: SegmenterConfig,
    ys: np.ndarray,
    xs: np.ndarray,
    zs: np.ndarray,
    pts: np.ndarray,
    att: np.ndarray,
    sintr: CameraIntrinsics,
    prev_coms: list[np.ndarray],
    cut: bool,
    arm_attached: bool,
    dz_mm: float,
) -> Candidate | None:
    """Confidence in [0, 1] that a (cut) piece is a hand, from metric size and shape."""
    area_cm2 = float(np.dot(zs, zs) / (sintr.fx * sintr.fy) / 100.0)
    mean = pts.mean(axis=0)
    axis, axis2 = principal_axes(pts - mean)
    lo, hi = robust_range((pts - mean) @ axis, 0.01)
    length = hi - lo
    lo2, hi2 = robust_range((pts - mean) @ axis2, 0.02)
    width = hi2 - lo2
    z5, z95 = robust_range(zs, 0.05)
    score = (
        tri(length, cfg.min_hand_length_mm * 0.7, 100.0, 220.0, cfg.max_hand_length_mm + 30.0)
        * tri(width, 20.0, 45.0, 130.0, cfg.max_hand_width_mm)
        * tri(area_cm2, cfg.min_hand_area_cm2, 40.0, 220.0, 350.0)
        * tri(z95 - z5, -1.0, 0.0, 130.0, 220.0)
    )
    tracked = near_previous(mean, prev_coms, cfg.track_radius_mm)
    best_possible = tracked_score(score) if tracked else score
    if best_possible < cfg.min_confidence:
        return None  # not worth the contour analysis
    fingers = finger_defects(ys, xs, zs, sintr)
    arm = 0.3 if (cut and arm_attached) else 0.2 if cut else 0.1 if arm_attached else 0.0
    near = 0.1 if dz_mm < -10.0 else 0.0
    score *= 0.35 + 0.25 * min(fingers, 3) / 3.0 + arm + near
    if tracked:
        score = tracked_score(score)
    return Candidate(
        ys, xs, zs, pts, float(min(score, 1.0)), length, width, cut, mean, tracked, cut or arm_attached
    )


def penalize_behind(cfg: SegmenterConfig, cands: list[Candidate]) -> None:
    """The user's hand is usually the nearest hand-like thing (clutter, chairs and the body lie behind
    it): candidates well behind the nearest plausible one lose confidence (in place), but are not ruled
    out."""
    ref = [c for c in cands if c.score >= cfg.min_confidence * 0.5]
    ref = [c for c in ref if c.arm] or ref  # an arm's end is the better reference than a box
    z_near = min((float(c.com_xyz[2]) for c in ref), default=0.0)
    for c in cands:
        behind = max(0.0, float(c.com_xyz[2]) - z_near - cfg.near_slack_mm)
        c.score /= 1.0 + behind / cfg.near_falloff_mm


def choose(cfg: SegmenterConfig, cands: list[Candidate]) -> list[Candidate]:
    """The hands among the candidates, best first: at least `min_confidence`; a second hand also
    `second_hand_min_confidence` and a depth near the first's (one user's two hands); never two within
    80 mm (the two ends of one piece, or one hand found twice)."""
    cands = sorted(cands, key=lambda c: -c.score)
    chosen: list[Candidate] = []
    for c in cands:
        if c.score < cfg.min_confidence:
            break
        if chosen and (
            c.score < cfg.second_hand_min_confidence
            or abs(c.com_xyz[2] - chosen[0].com_xyz[2]) > cfg.second_hand_max_depth_gap_mm
        ):
            continue
        if any(np.linalg.norm(c.com_xyz - o_.com_xyz) < 80.0 for o_ in chosen):
            continue
        chosen.append(c)
        if len(chosen) >= cfg.max_hands:
            break
    return chosen


def vouched_hands(
    cfg: SegmenterConfig,
    hands: tuple[HandDetection, ...],
    weak: list[Peak],
    out: DetectorOutput,
    depth_scale_mm: float,
) -> list[HandDetection]:
    """The classic fallback's hands that a weak heatmap peak vouches for (see the module docstring): the
    detector still says where the hand is; the rules say what its pixels are."""
    gate_m = cfg.fallback_depth_gate_mm / depth_scale_mm
    keep = []
    for h in hands:
        hits = [
            p
            for p in weak[: cfg.fallback_vouch_peaks]
            if h.mask[
                min(max(int(round(p.frame_uv[1])), 0), h.mask.shape[0] - 1),
                min(max(int(round(p.frame_uv[0])), 0), h.mask.shape[1] - 1),
            ]
        ]
        if hits and out.hand_depth_m is not None and gate_m > 0:
            # the detector's hand depth at the peak: a piece of the occluder, the arm or the body that
            # reaches the peak lies at another depth than the hand the detector saw there
            z_m = float(h.com_xyz_mm[2] - cfg.com_depth_offset_mm) / depth_scale_mm
            hits = [
                p for p in hits if abs(float(out.hand_depth_m[p.cell_uv[1], p.cell_uv[0]]) - z_m) <= gate_m
            ]
        if hits:
            keep.append(h)
    return keep


def finger_defects(ys: np.ndarray, xs: np.ndarray, zs: np.ndarray, sintr: CameraIntrinsics) -> int:
    """Number of convexity defects deeper than ~12 mm: the gaps between spread fingers."""
    if len(xs) < 10:
        return 0
    x0, y0 = int(xs.min()), int(ys.min())
    m = np.zeros((int(ys.max()) - y0 + 3, int(xs.max()) - x0 + 3), dtype=np.uint8)
    m[ys - y0 + 1, xs - x0 + 1] = 255
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 0
    cnt = max(contours, key=cv2.contourArea)
    if len(cnt) < 5:
        return 0
    hull = cv2.convexHull(cnt, returnPoints=False)
    try:
        defects = cv2.convexityDefects(cnt, hull)
    except cv2.error:  # self-intersecting hull on tiny contours
        return 0
    if defects is None:
        return 0
    mm_per_px = float(np.median(zs)) / sintr.fx
    depth_px = defects.reshape(-1, 4)[:, 3] / 256.0
    return int(np.sum(depth_px * mm_per_px > 12.0))


def tri(x: float, a: float, b: float, c: float, d: float) -> float:
    """Trapezoid membership: 0 below a, rising to 1 at b, 1 until c, falling to 0 at d."""
    if x <= a or x >= d:
        return 0.0
    if x < b:
        return (x - a) / (b - a)
    if x > c:
        return (d - x) / (d - c)
    return 1.0
