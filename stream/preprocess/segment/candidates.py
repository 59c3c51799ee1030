"""Where a hand might be: pieces of the classic search and the depth under a detector peak.

Classic path, on a low-resolution view of the frame (a strided slice; step `downsample`, or automatic: about
`work_width_px` wide):

1. Pixels are valid in [min_depth_mm, max_depth_mm]; the *farther* pixel of every neighbour pair whose depth
   jumps by more than max(depth_jump_mm, depth_jump_frac * depth) is dropped, so objects at different depths
   fall apart while the near object keeps its whole silhouette. Deliberate deviation from the originally
   planned 15 mm / 3 %: 35 mm / 5 % -- on the synthetic scenes the finer split cut fingers off the palm
   (self-occlusion jumps) and lowered candidate recall (72 -> 77 %).
2. Thick surfaces are removed: the opening of the foreground by a disc of `thick_radius_mm` (distance
   transform, metric radius per pixel; a pixel belongs to a thick surface only near a core pixel of its own
   connected surface at a similar depth). A hand's largest inscribed disc is < 50 mm (measured on the
   generator), a torso, head, desk or wall is thicker. What remains are thin pieces (arms with hands,
   cups, bars), labelled with cv2.connectedComponentsWithStats; a piece touching a thick surface or the
   image border is "attached".
3. A piece no longer than a hand is judged whole. A longer one is an arm: BOTH ends are candidates (the
   scores decide which end is the hand). For each end, the part connected to the tip within
   `local_radius_mm` is taken (a folded arm's upper arm lies beside its forearm), the axis runs from the
   tip into it, and the cut goes at the wrist: the narrowest 10 mm slice after the widest (the palm),
   within `wrist_search_mm` of the tip. An end cut by the image border counts little (the object goes on).

Each piece (or cut end) is scored by scoring.py.

Learned path: a heatmap peak is a candidate hand, and `peak_depth` says at which depth. An occluder in front
of the hand (box, cup, ball) or the arm and body behind it lie under the same coarse heatmap peak and
predicted mask; taking their depth cut out the wrong object in ~6 % of the pose scenes. Engines with a
"depth" output (the network's estimate of the hand's surface depth at the peak) fix the peak's depth to the
measured pixels within +- `hand_depth_snap_mm` of that estimate; without it, the median of the measured
depth under the predicted mask near the peak (robust to holes and to a closer object at the peak).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ...frames import CameraIntrinsics
from .config import SegmenterConfig
from .measure import pixel_points, principal_axes, quantile, robust_range
from .scoring import Candidate, penalize_behind, score_piece

if TYPE_CHECKING:
    from ..detect import DetectorOutput

__all__ = ["far_side_of_jumps", "find_candidates", "judge_piece", "peak_depth", "wrist_cut"]

_K3 = np.ones((3, 3), np.uint8)


def find_candidates(
    cfg: SegmenterConfig,
    z_full: np.ndarray,
    valid_full: np.ndarray,
    missing_full: np.ndarray,
    sintr: CameraIntrinsics,
    win: tuple[int, int, int, int] | None,
    prev_coms: list[np.ndarray],
    seeds: list[tuple[int, int]] | None = None,
) -> tuple[list[Candidate], str]:
    """Candidates in the low-res view (or a window of it): thin pieces of depth-continuous surfaces.
    With `seeds` ((row, col) in the whole low-res view), only pieces within 2 pixels of a seed."""
    if win is None:
        y0, y1, x0, x1 = 0, z_full.shape[0], 0, z_full.shape[1]
    else:
        y0, y1, x0, x1 = win
    z = z_full[y0:y1, x0:x1]
    valid = valid_full[y0:y1, x0:x1]
    missing = missing_full[y0:y1, x0:x1]
    fg = valid & ~far_side_of_jumps(z, valid, cfg.depth_jump_mm, cfg.depth_jump_frac)
    fg8 = fg.view(np.uint8)
    rf = np.float32(cfg.thick_radius_mm * sintr.fx)
    # thick cores: pixels deeper than thick_radius_mm inside their surface (isolated missing pixels
    # are filled first: a speckle hole must not make a torso thin)
    closed = cv2.morphologyEx(fg8, cv2.MORPH_CLOSE, _K3)
    solid = fg8 | (closed & missing.view(np.uint8))
    dt = cv2.distanceTransform(solid, cv2.DIST_L2, 3)
    with np.errstate(over="ignore", invalid="ignore"):  # absurd depths (1e38) are simply not cores
        core = (dt * z) > rf
    if core.any():
        _, cc = cv2.connectedComponents(fg8, connectivity=4)
        d2, lab2 = cv2.distanceTransformWithLabels(
            (~core).view(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
        )
        lut = np.concatenate([[0], cc[core]]).astype(np.int32)
        lutz = np.concatenate([[0], z[core]]).astype(np.float32)
        zc = lutz[lab2]
        # the opening of each surface by a disc of thick_radius_mm: within the disc of one of its own
        # core pixels, on the same surface (a hand held in front of the torso is not part of it)
        thick = fg & (d2 * zc <= rf) & (np.abs(z - zc) < 2.0 * cfg.thick_radius_mm) & (lut[lab2] == cc)
        thin = fg & ~thick
        touch = cv2.dilate(thick.view(np.uint8), _K3).view(bool)
    else:
        thin = fg
        touch = np.zeros_like(fg)
    if win is None:
        touch[0, :] = touch[-1, :] = True
        touch[:, 0] = touch[:, -1] = True
    else:
        H, W = z_full.shape
        touch[0, :] |= y0 == 0
        touch[-1, :] |= y1 == H
        touch[:, 0] |= x0 == 0
        touch[:, -1] |= x1 == W
    n, lab, stats, _ = cv2.connectedComponentsWithStats(thin.view(np.uint8), connectivity=4)
    if n <= 1:
        return [], "no hand shape" if fg.any() else "too small"
    px_cm2_far = (cfg.max_depth_mm / sintr.fx) * (cfg.max_depth_mm / sintr.fy) / 100.0
    min_px = max(6, int(cfg.min_hand_area_cm2 / px_cm2_far))
    counts = stats[:, cv2.CC_STAT_AREA].copy()
    counts[0] = 0
    if seeds is not None:
        near = np.zeros(n, bool)
        for sy, sx in seeds:
            ly, lx = sy - y0, sx - x0
            near[lab[max(ly - 2, 0) : max(ly + 3, 0), max(lx - 2, 0) : max(lx + 3, 0)]] = True
        counts[~near] = 0
    order = np.argsort(-counts)
    cands: list[Candidate] = []
    judged = 0
    for k in order[: cfg.max_components]:
        if counts[k] < min_px:
            break
        x, y, w, h = (int(v) for v in stats[k, :4])
        if max(w, h) * cfg.max_depth_mm / sintr.fx < cfg.min_hand_length_mm:
            continue  # shorter than a hand even at the farthest depth
        sub = lab[y : y + h, x : x + w] == k
        ys, xs = np.nonzero(sub)
        zs = z[y : y + h, x : x + w][sub]
        att = touch[y : y + h, x : x + w][sub]
        judged += 1
        cands += judge_piece(cfg, ys + (y + y0), xs + (x + x0), zs, att, sintr, prev_coms)
    if not cands:
        return [], "too small" if judged == 0 else "no hand shape"
    penalize_behind(cfg, cands)
    return cands, ""


def judge_piece(
    cfg: SegmenterConfig,
    ys: np.ndarray,
    xs: np.ndarray,
    zs: np.ndarray,
    att: np.ndarray,
    sintr: CameraIntrinsics,
    prev_coms: list[np.ndarray],
) -> list[Candidate]:
    """Measure one thin piece. A piece longer than a hand is an arm with the hand at one end: both
    ends are cut at their wrist and judged (which end is the hand is decided by the scores). In the
    fallback both are judged as well: judging only the end nearer the weak peak was tried and lost
    0.4 points of detection (500 synthetic frames), as the peak often sits off the hand."""
    area_cm2 = float(np.dot(zs, zs) / (sintr.fx * sintr.fy) / 100.0)
    if area_cm2 > cfg.max_blob_area_cm2 or area_cm2 < cfg.min_hand_area_cm2:
        return []
    pts = pixel_points(xs, ys, zs, sintr)
    mean = pts.mean(axis=0)
    axis, _ = principal_axes(pts - mean)
    t = (pts - mean) @ axis
    lo, hi = robust_range(t, 0.01)
    if hi - lo <= cfg.max_hand_length_mm:
        c = score_piece(cfg, ys, xs, zs, pts, att, sintr, prev_coms, False, bool(att.any()), 0.0)
        return [] if c is None else [c]
    out = []
    view = mean / np.linalg.norm(mean)
    y0, x0 = int(ys.min()), int(xs.min())
    shape = (int(ys.max()) - y0 + 1, int(xs.max()) - x0 + 1)
    on_border = (xs <= 0) | (ys <= 0) | (xs >= sintr.width - 1) | (ys >= sintr.height - 1)
    for i_tip, end in ((int(np.argmin(t)), t < lo + 20.0), (int(np.argmax(t)), t > hi - 20.0)):
        tip = pts[i_tip]
        # an end cut by the image border: the object goes on outside, this is not where it ends
        cut_off = bool(on_border[end].any())
        # the part of the piece connected to the tip within a hand and a half of it: a folded arm's
        # upper arm lying beside its forearm is farther than that along the piece
        d3 = np.einsum("ij,ij->i", pts - tip, pts - tip)
        loc = d3 < cfg.local_radius_mm**2
        m = np.zeros(shape, np.uint8)
        m[ys[loc] - y0, xs[loc] - x0] = 1
        _, lab = cv2.connectedComponents(m, connectivity=8)
        lab_l = lab[ys - y0, xs - x0]
        loc &= lab_l == lab_l[i_tip]
        idx = np.flatnonzero(loc)
        lp = pts[idx]
        near = d3[idx] < 150.0**2
        d = lp[near].mean(axis=0) - tip
        nd = float(np.linalg.norm(d))
        ax = d / nd if nd > 1e-6 else axis
        side = np.cross(ax, view)
        ns = float(np.linalg.norm(side))
        if ns < 1e-6:
            continue
        side /= ns
        dist = (lp - tip) @ ax
        dz = 0.0
        if float(dist.max()) <= cfg.max_hand_length_mm:
            hand = idx
        else:
            cut_mm, arm_width = wrist_cut(dist, lp @ side, cfg.wrist_search_mm)
            if arm_width > cfg.max_arm_width_mm:
                continue  # what hangs off this "hand" is no arm
            hand = idx[dist <= cut_mm]
            if len(hand) < 6:
                continue
            rest = (dist > cut_mm) & (dist <= cut_mm + 80.0)
            if rest.any():
                dz = float(pts[hand, 2].mean() - lp[rest, 2].mean())
        is_hand = np.zeros(len(pts), bool)
        is_hand[hand] = True
        cut = len(hand) < len(pts)
        rest_att = bool(att[~is_hand].any()) if cut else bool(att.any())
        c = score_piece(
            cfg, ys[hand], xs[hand], zs[hand], pts[hand], att[hand], sintr, prev_coms, cut, rest_att, dz
        )
        if c is not None:
            if cut_off:
                c.score *= 0.3
            out.append(c)
    return out


def wrist_cut(dist: np.ndarray, t2: np.ndarray, search: tuple[float, float]) -> tuple[float, float]:
    """(distance from the hand tip at which to cut, width of the arm just beyond the cut), from the width
    profile along the hand's axis in 10 mm slices: the palm is the widest slice within 150 mm of the tip,
    the wrist the narrowest one between the palm and search[1] (not before search[0]); the forearm widens
    again towards the elbow. Widths come from the spread of the side coordinate (robust to holes)."""
    lo, hi = search
    bins = np.floor(np.clip(dist, 0.0, None) / 10.0).astype(np.int64)
    nb = int(bins.max()) + 1
    cnt = np.bincount(bins, minlength=nb).astype(np.float64)
    s1 = np.bincount(bins, weights=t2, minlength=nb)
    s2 = np.bincount(bins, weights=t2 * t2, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = s2 / cnt - (s1 / cnt) ** 2
    width = 3.46 * np.sqrt(np.clip(var, 0, None))
    width[cnt < 2] = np.nan
    palm = 3 + int(np.nanargmax(np.nan_to_num(width[3:16], nan=-1.0))) if nb > 3 else 0
    b0 = max(palm + 2, int(lo // 10))
    b1 = min(int(hi // 10), nb - 1)
    if b1 < b0:
        return hi, 0.0
    seg = np.nan_to_num(width[b0 : b1 + 1], nan=np.inf)
    # the first slice within 8 mm of the narrowest: where the forearm is as narrow as the wrist for a
    # while (a sleeve, a drawn bar), the cut stays at the wrist end of that stretch
    k = b0 + int(np.argmax(seg <= seg.min() + 8.0))
    rest = width[k + 1 : k + 9]
    rest = rest[np.isfinite(rest)]
    return float(k * 10 + 5), float(np.median(rest)) if len(rest) else 0.0


def far_side_of_jumps(z: np.ndarray, valid: np.ndarray, jump_mm: float, frac: float) -> np.ndarray:
    """Mark the farther pixel of each 4-neighbour pair whose depths differ by more than
    max(jump_mm, frac * nearer depth): the near object keeps its whole silhouette."""
    edge = np.zeros_like(valid)
    for a, b, ea, eb in (
        (z[:, :-1], z[:, 1:], edge[:, :-1], edge[:, 1:]),
        (z[:-1, :], z[1:, :], edge[:-1, :], edge[1:, :]),
    ):
        d = b - a
        thr = np.maximum(np.minimum(a, b) * np.float32(frac), np.float32(jump_mm))
        both = (a > 0) & (b > 0)
        eb |= both & (d > thr)
        ea |= both & (d < -thr)
    return edge


def peak_depth(
    out: DetectorOutput, cell_uv: tuple[int, int], lo_m: float, hi_m: float, snap_m: float = 0.0
) -> float:
    """Depth (detector units, m) of the hand at a heatmap peak. With the engine's hand-depth output and
    snap_m > 0: the median of the in-range input pixels within +- 2 cells of the peak that lie within
    +- snap_m of the predicted hand depth (the measured surface the network calls the hand). Otherwise
    (engines without that output), or when no pixel lies that close: the median of the in-range input
    pixels under the predicted mask within +- 1 cell of the peak; where the mask is empty there, the 25th
    percentile of the in-range pixels of a +- 2 cell window (the hand is in front of what surrounds it).
    0 when nothing in range is near the peak."""
    geo = out.geometry
    s = geo.stride
    cu, cv = cell_uv
    x = out.input_m
    if snap_m > 0 and out.hand_depth_m is not None:
        zp = float(out.hand_depth_m[cv, cu])
        win = x[max((cv - 2) * s, 0) : (cv + 3) * s, max((cu - 2) * s, 0) : (cu + 3) * s]
        lo, hi = max(lo_m, zp - snap_m), min(hi_m, zp + snap_m)
        vals = win[(win >= lo) & (win <= hi)]
        if len(vals) >= 3:
            return quantile(vals, 0.5)
    for r, use_mask in ((1, True), (2, False)):
        ys0, xs0 = max((cv - r) * s, 0), max((cu - r) * s, 0)
        win = x[ys0 : (cv + r + 1) * s, xs0 : (cu + r + 1) * s]
        ok = (win >= lo_m) & (win <= hi_m)
        if use_mask:
            cells = out.mask_logits[max(cv - r, 0) : cv + r + 1, max(cu - r, 0) : cu + r + 1] > 0
            ok &= np.repeat(np.repeat(cells, s, 0), s, 1)[: win.shape[0], : win.shape[1]]
            vals = win[ok]
            if len(vals) >= 3:
                return quantile(vals, 0.5)
        else:
            vals = win[ok]
            if len(vals):
                return quantile(vals, 0.25)
    return 0.0
