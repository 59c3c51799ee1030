"""Hand segmentation in a depth frame without ground truth: depth-discontinuity components judged by metric
size and shape, forearm cut at the wrist, up to two hands, with tracking and a known-centre (thesis) mode.

Why not "the closest object" (seed 003 §4.3.1 mentions it as the usual shortcut): a desk edge, a chair or the
user's own body can be closer than the hand, and a forearm drags a centroid off the palm. So:

1. Candidates are found on a 1/`downsample` nearest-neighbour view of the frame (a strided slice, no copy).
   Pixels are valid in [min_depth_mm, max_depth_mm]; the *farther* pixel of every neighbour pair whose depth
   jumps by more than `depth_jump_mm` is dropped, so objects at different depths fall apart into separate
   connected components (cv2.connectedComponentsWithStats, 4-connectivity) while the near object keeps its
   whole silhouette. Sensor holes inside a hand only remove pixels; they do not split depth levels.
2. Every component of plausible metric area is measured in camera millimetres (3-D PCA of its points).
   Components much deeper than a hand are cut to their near `hand_depth_band_mm` first (an arm reaching
   towards the camera from the body). Longer than `max_hand_length_mm`: a forearm is attached; the hand end
   is the one that does not touch the image border (arms come from outside) or else the nearer one, and the
   cut goes across the principal axis at the narrowest width between `wrist_search_mm` from the hand tip.
   A component spanning the picture from border to border (a desk edge, a bar) is no hand, nor is one
   whose part just beyond the cut is wider than an arm (a head on a body).
3. The remaining candidate is scored (length, width, area, depth spread, finger-like convexity defects,
   arm attachment, closeness to the previous frame's hands) into a confidence in [0, 1]. A second hand
   needs `second_hand_min_confidence` and a depth within `second_hand_max_depth_gap_mm` of the first.
4. The best hands are refined at full resolution inside their ROI only: the upsampled low-resolution mask,
   dilated by one low-res pixel, intersected with the hand's depth range. The centre of mass is the mean
   3-D point of that mask, pushed `com_depth_offset_mm` back along its ray (the camera sees the front
   surface; the hand's centre lies about half its thickness behind). `palm_uvd` (largest inscribed disc)
   is a finger-independent anchor reported beside it.

Depth input: (H, W) uint16 / float32 / float64 millimetres matching the intrinsics; any other dtype or shape
is an InputError. NaN, inf, zero, negative and absurd (> max_valid_depth_mm) values are *missing pixels*, not
errors: a stream must survive a bad frame (DEVELOPERS.md), it becomes a "no hand" result with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import InputError
from ..frames import CameraIntrinsics
from ..geometry import uvd_to_xyz, xyz_to_uvd

__all__ = ["SegmenterConfig", "HandDetection", "Segmentation", "HandSegmenter", "check_depth"]

_DEPTH_DTYPES = (np.uint16, np.float32, np.float64)


@dataclass(frozen=True)
class SegmenterConfig:
    """Tunables of the segmenter; defaults fit an adult hand at 0.2-1.5 m from a D400/SR300/Kinect camera."""

    min_depth_mm: float = 150.0
    max_depth_mm: float = 1500.0
    max_valid_depth_mm: float = 10000.0  # beyond this a value is absurd for a hand camera: treated as missing
    downsample: int = 4
    depth_jump_mm: float = 30.0
    hand_depth_band_mm: float = 200.0
    min_hand_area_cm2: float = 20.0
    max_blob_area_cm2: float = 1200.0
    min_hand_length_mm: float = 70.0
    max_hand_length_mm: float = 230.0
    wrist_search_mm: tuple[float, float] = (100.0, 230.0)
    max_hand_width_mm: float = 170.0
    max_arm_width_mm: float = 140.0
    mask_depth_margin_mm: float = 25.0
    max_hands: int = 2
    max_components: int = 6  # judge at most this many components, largest first
    min_confidence: float = 0.25
    second_hand_min_confidence: float = 0.5
    second_hand_max_depth_gap_mm: float = 350.0  # both hands of one user lie within ~arm's reach in depth
    com_depth_offset_mm: float = 10.0  # the visible surface lies ~half a hand's thickness before its centre
    track_radius_mm: float = 120.0
    known_cube_mm: float = 250.0  # known-centre mode: the hand is what lies inside this cube

    def __post_init__(self) -> None:
        if not (0 < self.min_depth_mm < self.max_depth_mm <= self.max_valid_depth_mm):
            raise InputError(
                f"need 0 < min_depth_mm < max_depth_mm <= max_valid_depth_mm, got "
                f"{self.min_depth_mm}, {self.max_depth_mm}, {self.max_valid_depth_mm}"
            )
        if int(self.downsample) != self.downsample or not 1 <= self.downsample <= 16:
            raise InputError(f"downsample must be an integer in 1..16, got {self.downsample}")
        if self.max_hands < 1:
            raise InputError(f"max_hands must be >= 1, got {self.max_hands}")


@dataclass(frozen=True, eq=False)
class HandDetection:
    """One hand: full-resolution mask, centre of mass (pixels + depth mm, and camera mm), bbox, confidence."""

    mask: np.ndarray  # (H, W) bool
    com_uvd: np.ndarray  # (3,) float64: u, v pixels, d mm
    com_xyz_mm: np.ndarray  # (3,) float64 camera mm
    bbox_xywh: tuple[int, int, int, int]
    confidence: float
    length_mm: float = 0.0  # extent along the hand's principal axis after the forearm cut
    forearm_cut: bool = False
    # The palm centre (centre of the largest disc inside the mask, pushed back like the CoM): unlike the
    # CoM it does not move with the fingers. The cube stays on the CoM, which keeps extended fingertips
    # inside a 250 mm cube; the palm is for callers that want a pose-independent anchor.
    palm_uvd: np.ndarray | None = None
    palm_xyz_mm: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Segmentation:
    """The hands found in one frame, best first (at most `max_hands`), or an empty tuple and a reason."""

    hands: tuple[HandDetection, ...] = ()
    reason: str = ""
    debug: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def found(self) -> bool:
        return len(self.hands) > 0

    @property
    def best(self) -> HandDetection | None:
        return self.hands[0] if self.hands else None


def check_depth(depth_mm: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """Validate the container (InputError for wrong type, dtype or shape); values are judged later."""
    if not isinstance(depth_mm, np.ndarray):
        raise InputError(f"depth must be a numpy array, got {type(depth_mm).__name__}")
    if depth_mm.dtype not in _DEPTH_DTYPES:
        raise InputError(f"depth must be uint16, float32 or float64 millimetres, got {depth_mm.dtype}")
    if depth_mm.ndim != 2:
        raise InputError(f"depth must be a 2-D (H, W) image, got shape {depth_mm.shape}")
    if depth_mm.size and depth_mm.shape != (intr.height, intr.width):
        raise InputError(
            f"depth shape {depth_mm.shape} does not match intrinsics {(intr.height, intr.width)}"
        )
    return depth_mm


@dataclass
class _Candidate:
    """Internal: one candidate hand at low resolution (pixel coordinates in the low-res view)."""

    ys: np.ndarray
    xs: np.ndarray
    zs: np.ndarray
    pts: np.ndarray  # (N, 3) camera mm
    score: float
    length_mm: float
    width_mm: float
    cut: bool
    com_xyz: np.ndarray


class HandSegmenter:
    """Finds up to `max_hands` hands in a depth frame. Stateless between calls: tracking state is `prev`."""

    def __init__(self, config: SegmenterConfig | None = None):
        self.config = config or SegmenterConfig()

    # ------------------------------------------------------------------ public
    def segment(
        self,
        depth_mm: np.ndarray | None,
        intr: CameraIntrinsics,
        prev: Segmentation | None = None,
        known_com_uvd: np.ndarray | None = None,
    ) -> Segmentation:
        """Segment the hand(s). `prev`: last frame's result (its hands are preferred when near);
        `known_com_uvd`: a dataset-given centre (u, v, d mm): the hand is what lies inside the cube around it."""
        if depth_mm is None or (isinstance(depth_mm, np.ndarray) and depth_mm.size == 0):
            return Segmentation(reason="empty frame")
        depth = check_depth(depth_mm, intr)
        if known_com_uvd is not None:
            return self._segment_known(depth, intr, known_com_uvd)
        return self._segment_search(depth, intr, prev)

    # ------------------------------------------------------------ known centre
    def _segment_known(self, depth: np.ndarray, intr: CameraIntrinsics, com_uvd) -> Segmentation:
        c = np.asarray(com_uvd, dtype=np.float64).reshape(-1)
        if c.shape != (3,) or not np.all(np.isfinite(c)) or c[2] <= 0:
            raise InputError(f"known centre must be (u, v, d mm) with d > 0, got {com_uvd!r}")
        com_xyz = uvd_to_xyz(c, intr)
        half = self.config.known_cube_mm / 2.0
        x0 = int(np.floor(intr.fx * (com_xyz[0] - half) / c[2] + intr.cx))
        x1 = int(np.ceil(intr.fx * (com_xyz[0] + half) / c[2] + intr.cx)) + 1
        y0 = int(np.floor(intr.fy * (com_xyz[1] - half) / c[2] + intr.cy))
        y1 = int(np.ceil(intr.fy * (com_xyz[1] + half) / c[2] + intr.cy)) + 1
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, intr.width), min(y1, intr.height)
        mask = np.zeros(depth.shape, dtype=bool)
        if x1 > x0 and y1 > y0:
            roi = depth[y0:y1, x0:x1]
            with np.errstate(invalid="ignore"):
                mask[y0:y1, x0:x1] = (roi > c[2] - half) & (roi < c[2] + half) & (roi > 0)
        if not mask.any():
            return Segmentation(reason="nothing in range")
        det = HandDetection(
            mask=mask,
            com_uvd=c.copy(),
            com_xyz_mm=com_xyz,
            bbox_xywh=_bbox(mask, (x0, y0, x1, y1)),
            confidence=1.0,
        )
        return Segmentation(hands=(det,))

    # ------------------------------------------------------------------ search
    def _segment_search(
        self, depth: np.ndarray, intr: CameraIntrinsics, prev: Segmentation | None
    ) -> Segmentation:
        cfg = self.config
        s = int(cfg.downsample)
        o = s // 2
        small = depth[o::s, o::s]
        z = small.astype(np.float32)  # small copy (1/s^2 of the frame)
        with np.errstate(invalid="ignore"):
            valid = (z >= cfg.min_depth_mm) & (z <= cfg.max_depth_mm)
        if not valid.any():
            return Segmentation(reason=_why_nothing(depth, cfg))
        z[~valid] = 0.0
        fg = valid & ~_far_side_of_jumps(z, valid, cfg.depth_jump_mm)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.view(np.uint8), connectivity=4)
        if n <= 1:
            return Segmentation(reason="too small")
        # a low-res pixel at depth z covers (s z / fx)(s z / fy) mm^2: components with fewer pixels than a
        # minimal hand at the farthest depth cannot be hands; the rest are measured in their bbox only
        px_cm2_far = (s * cfg.max_depth_mm) ** 2 / (intr.fx * intr.fy) / 100.0
        min_px = max(6, int(cfg.min_hand_area_cm2 / px_cm2_far))
        counts = stats[:, cv2.CC_STAT_AREA].copy()
        counts[0] = 0
        order = np.argsort(-counts)
        # exact low-res intrinsics for a strided view starting at o (pixel i of the view = i*s + o)
        sintr = CameraIntrinsics(
            intr.fx / s, intr.fy / s, (intr.cx - o) / s, (intr.cy - o) / s, small.shape[1], small.shape[0]
        )
        px_cm2 = s * s / (intr.fx * intr.fy) / 100.0
        prev_coms = [h.com_xyz_mm for h in prev.hands] if prev is not None and prev.found else []
        cands: list[_Candidate] = []
        judged = 0
        for k in order[: cfg.max_components]:
            if counts[k] < min_px:
                break
            x, y, w, h = (int(v) for v in stats[k, :4])
            if max(w, h) * s * cfg.max_depth_mm / intr.fx < cfg.min_hand_length_mm:
                continue  # shorter than a hand even at the farthest depth
            sub = labels[y : y + h, x : x + w] == k
            ys, xs = np.nonzero(sub)
            zs = z[y : y + h, x : x + w][sub]
            area = float(np.dot(zs, zs)) * px_cm2
            if area < cfg.min_hand_area_cm2:
                continue
            judged += 1
            if area > cfg.max_blob_area_cm2 and float(zs.std()) < cfg.hand_depth_band_mm / 4:
                continue  # a wall, a table top, a body facing the camera: large and flat, no arm reaching out
            c = self._judge(ys + y, xs + x, zs, sintr, small.shape, prev_coms)
            if c is not None:
                cands.append(c)
        if not cands:
            return Segmentation(reason="too small" if judged == 0 else "no hand shape")
        cands.sort(key=lambda c: -c.score)
        chosen: list[_Candidate] = []
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
        if not chosen:
            return Segmentation(reason="no hand shape", debug={"best_score": cands[0].score})
        hands = tuple(self._refine(c, depth, intr, s, o) for c in chosen)
        return Segmentation(hands=hands)

    def _judge(
        self,
        ys: np.ndarray,
        xs: np.ndarray,
        zs: np.ndarray,
        sintr: CameraIntrinsics,
        shape: tuple[int, int],
        prev_coms: list[np.ndarray],
    ) -> _Candidate | None:
        """Measure one component, cut it to a hand if needed, and score it (None: certainly no hand)."""
        cfg = self.config
        zmin = float(zs.min())
        if float(zs.max()) - zmin > cfg.hand_depth_band_mm:
            # an arm reaching towards the camera out of a body: the hand is in the near band
            keep = zs <= zmin + cfg.hand_depth_band_mm
            ys, xs, zs = _largest_piece(ys[keep], xs[keep], zs[keep])
        if len(zs) < 6:
            return None
        area_cm2 = float(np.dot(zs, zs) / (sintr.fx * sintr.fy) / 100.0)
        if area_cm2 > cfg.max_blob_area_cm2 or area_cm2 < cfg.min_hand_area_cm2:
            return None
        pts = _points(xs, ys, zs, sintr)
        h, w = shape
        border = (xs == 0) | (ys == 0) | (xs == w - 1) | (ys == h - 1)
        mean = pts.mean(axis=0)
        axis, axis2 = _principal_axes(pts - mean)
        t = (pts - mean) @ axis
        lo, hi = _robust_range(t, 0.01)
        length = hi - lo
        cut = False
        attached = False
        if length > cfg.max_hand_length_mm:
            # which end is the hand: the one away from the image border (arms come from outside the
            # picture), else the nearer one (arms reach towards the camera)
            end_lo = t < lo + 40.0
            end_hi = t > hi - 40.0
            b_lo = bool(border[end_lo].any())
            b_hi = bool(border[end_hi].any())
            if b_lo and b_hi:
                return None  # spans the picture: a desk edge, a bar, a body
            if b_lo != b_hi:
                hand_at_lo = b_hi
            else:
                hand_at_lo = float(pts[end_lo, 2].mean()) < float(pts[end_hi, 2].mean())
            dist = (t - lo) if hand_at_lo else (hi - t)  # distance from the hand's tip along the axis
            cut_mm = _wrist_cut(dist, pts @ axis2, cfg.wrist_search_mm)
            keep = dist <= cut_mm
            if keep.sum() < 6:
                return None
            # the width just beyond the cut must be an arm's (the rest of the arm may bend anywhere)
            rest = pts[(dist > cut_mm) & (dist <= cut_mm + 80.0)] @ axis2
            if len(rest) > 4 and 3.46 * float(rest.std()) > cfg.max_arm_width_mm:
                return None  # what hangs off this "hand" is no arm: a head on a body, a chair back
            ys, xs, zs, pts, border = ys[keep], xs[keep], zs[keep], pts[keep], border[keep]
            cut = True
            attached = True
            mean = pts.mean(axis=0)
            axis, axis2 = _principal_axes(pts - mean)
            lo, hi = _robust_range((pts - mean) @ axis, 0.01)
            length = hi - lo
            area_cm2 = float(np.dot(zs, zs) / (sintr.fx * sintr.fy) / 100.0)
        else:
            attached = bool(border.any())  # a hand whose wrist leaves the picture
        lo2, hi2 = _robust_range((pts - mean) @ axis2, 0.02)
        width = hi2 - lo2
        z5, z95 = _robust_range(zs, 0.05)
        score = (
            _tri(length, cfg.min_hand_length_mm, 120.0, 220.0, cfg.max_hand_length_mm + 30.0)
            * _tri(width, 25.0, 60.0, 130.0, cfg.max_hand_width_mm)
            * _tri(area_cm2, cfg.min_hand_area_cm2, 50.0, 220.0, 350.0)
            * _tri(z95 - z5, -1.0, 0.0, 120.0, 220.0)
        )
        tracked = (
            bool(prev_coms) and min(float(np.linalg.norm(mean - p)) for p in prev_coms) < cfg.track_radius_mm
        )
        best_possible = min(1.0, score * 1.2 + 0.15) if tracked else score
        if best_possible < cfg.min_confidence:
            return None  # not worth the contour analysis
        # shape evidence: finger gaps and an attached arm (a box or a head has neither)
        fingers = _finger_defects(ys, xs, zs, sintr)
        score *= 0.4 + 0.3 * min(fingers, 3) / 3.0 + (0.3 if attached else 0.0)
        if tracked:
            score = min(1.0, score * 1.2 + 0.15)
        return _Candidate(ys, xs, zs, pts, float(score), length, width, cut, mean)

    def _refine(
        self, c: _Candidate, depth: np.ndarray, intr: CameraIntrinsics, s: int, o: int
    ) -> HandDetection:
        """Full-resolution mask inside the candidate's ROI, centre of mass from its 3-D points."""
        cfg = self.config
        H, W = depth.shape
        y0l, y1l = int(c.ys.min()) - 1, int(c.ys.max()) + 2
        x0l, x1l = int(c.xs.min()) - 1, int(c.xs.max()) + 2
        low = np.zeros((y1l - y0l, x1l - x0l), dtype=np.uint8)
        low[c.ys - y0l, c.xs - x0l] = 1
        low = cv2.dilate(low, np.ones((3, 3), np.uint8))
        up = cv2.resize(low, (low.shape[1] * s, low.shape[0] * s), interpolation=cv2.INTER_NEAREST)
        # full-res coordinates of the upsampled block: low pixel i covers full pixels i*s+o-s//2 ...
        fy0, fx0 = y0l * s + o - s // 2, x0l * s + o - s // 2
        fy1, fx1 = fy0 + up.shape[0], fx0 + up.shape[1]
        cy0, cx0, cy1, cx1 = max(fy0, 0), max(fx0, 0), min(fy1, H), min(fx1, W)
        up = up[cy0 - fy0 : cy1 - fy0, cx0 - fx0 : cx1 - fx0]
        roi = depth[cy0:cy1, cx0:cx1]
        zlo, zhi = _robust_range(c.zs, 0.01)
        zlo -= cfg.mask_depth_margin_mm
        zhi += cfg.mask_depth_margin_mm
        with np.errstate(invalid="ignore"):
            m = (up > 0) & (roi >= zlo) & (roi <= zhi)
        mask = np.zeros((H, W), dtype=bool)
        mask[cy0:cy1, cx0:cx1] = m
        n_px = cv2.countNonZero(m.view(np.uint8))
        if n_px == 0:  # cannot happen with valid low-res pixels, but stay total
            com_xyz = c.com_xyz.copy()
        else:
            # sums of d, u*d, v*d over the mask from image moments of the masked depth (no index arrays)
            mom = cv2.moments(np.where(m, roi, 0).astype(np.float32))
            sd = mom["m00"]
            com_xyz = np.array(
                [
                    (mom["m10"] + cx0 * sd - intr.cx * sd) / (n_px * intr.fx),
                    (mom["m01"] + cy0 * sd - intr.cy * sd) / (n_px * intr.fy),
                    sd / n_px,
                ]
            )
        # push the surface centroid back along its viewing ray to the inside of the hand
        com_xyz *= (com_xyz[2] + cfg.com_depth_offset_mm) / com_xyz[2]
        com_uvd = xyz_to_uvd(com_xyz, intr)
        palm_uvd = _palm_centre(m, roi, cx0, cy0, cfg.com_depth_offset_mm)
        return HandDetection(
            mask=mask,
            com_uvd=com_uvd,
            com_xyz_mm=com_xyz,
            bbox_xywh=_bbox(mask, (cx0, cy0, cx1, cy1)),
            confidence=float(np.clip(c.score, 0.0, 1.0)),
            length_mm=c.length_mm,
            forearm_cut=c.cut,
            palm_uvd=palm_uvd,
            palm_xyz_mm=None if palm_uvd is None else uvd_to_xyz(palm_uvd, intr),
        )


# ---------------------------------------------------------------------- helpers
def _why_nothing(depth: np.ndarray, cfg: SegmenterConfig) -> str:
    with np.errstate(invalid="ignore"):
        measured = (depth > 0) & (depth <= cfg.max_valid_depth_mm)
    if not measured.any():
        return "all depth missing"
    return "nothing in range"


def _far_side_of_jumps(z: np.ndarray, valid: np.ndarray, jump_mm: float) -> np.ndarray:
    """Mark the farther pixel of each 4-neighbour pair whose depths differ by more than jump_mm."""
    edge = np.zeros_like(valid)
    dx = z[:, 1:] - z[:, :-1]
    both = valid[:, 1:] & valid[:, :-1]
    edge[:, 1:] |= both & (dx > jump_mm)
    edge[:, :-1] |= both & (dx < -jump_mm)
    dy = z[1:, :] - z[:-1, :]
    both = valid[1:, :] & valid[:-1, :]
    edge[1:, :] |= both & (dy > jump_mm)
    edge[:-1, :] |= both & (dy < -jump_mm)
    return edge


def _points(xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    zz = zs.astype(np.float64)
    return np.stack(
        [(xs - intr.cx) * zz / intr.fx, (ys - intr.cy) * zz / intr.fy, zz],
        axis=1,
    )


def _principal_axes(centered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Major axis and the second axis of a centred (N, 3) point set (eigenvectors of its covariance)."""
    cov = centered.T @ centered / max(len(centered), 1)
    _, vecs = np.linalg.eigh(cov)
    return vecs[:, 2], vecs[:, 1]


def _robust_range(a: np.ndarray, frac: float) -> tuple[float, float]:
    """(low, high) order statistics at `frac` and 1 - `frac` (np.partition: cheaper than np.percentile)."""
    n = len(a)
    k = int(frac * (n - 1))
    p = np.partition(a, (k, n - 1 - k))
    return float(p[k]), float(p[n - 1 - k])


def _largest_piece(ys: np.ndarray, xs: np.ndarray, zs: np.ndarray):
    """The largest 4-connected piece of a pixel set (a band cut can leave several)."""
    if len(ys) < 6:
        return ys, xs, zs
    y0, x0 = int(ys.min()), int(xs.min())
    m = np.zeros((int(ys.max()) - y0 + 1, int(xs.max()) - x0 + 1), np.uint8)
    m[ys - y0, xs - x0] = 1
    n, lab = cv2.connectedComponents(m, connectivity=4)
    if n <= 2:
        return ys, xs, zs
    piece = lab[ys - y0, xs - x0]
    best = 1 + int(np.argmax(np.bincount(piece, minlength=n)[1:]))
    keep = piece == best
    return ys[keep], xs[keep], zs[keep]


def _wrist_cut(dist: np.ndarray, t2: np.ndarray, search: tuple[float, float]) -> float:
    """Distance from the hand tip at which to cut: the narrowest 10 mm slice inside the search range."""
    lo, hi = search
    if dist.max() <= lo:
        return float(dist.max())
    bins = np.floor(np.clip(dist, 0.0, None) / 10.0).astype(np.int64)
    nb = int(bins.max()) + 1
    # width of each slice from the spread of the second-axis coordinate (robust to holes: std, not range)
    cnt = np.bincount(bins, minlength=nb).astype(np.float64)
    s1 = np.bincount(bins, weights=t2, minlength=nb)
    s2 = np.bincount(bins, weights=t2 * t2, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = s2 / cnt - (s1 / cnt) ** 2
    width = np.sqrt(np.clip(np.nan_to_num(var, nan=np.inf), 0, None))
    b0, b1 = int(lo // 10), min(int(hi // 10), nb - 1)
    if b1 < b0:
        return hi
    k = b0 + int(np.argmin(width[b0 : b1 + 1]))
    return float(k * 10 + 5)


def _palm_centre(m: np.ndarray, roi: np.ndarray, x0: int, y0: int, offset_mm: float) -> np.ndarray | None:
    """(u, v, d) of the point deepest inside the mask; d = median depth of the disc around it + offset."""
    if not m.any():
        return None
    dt = cv2.distanceTransform(m.view(np.uint8), cv2.DIST_L2, 3)
    _, r, _, (pu, pv) = cv2.minMaxLoc(dt)
    k = max(int(r * 0.5), 1)
    sub_m = m[max(pv - k, 0) : pv + k + 1, max(pu - k, 0) : pu + k + 1]
    sub_d = roi[max(pv - k, 0) : pv + k + 1, max(pu - k, 0) : pu + k + 1]
    d = float(np.median(sub_d[sub_m])) + offset_mm
    return np.array([pu + x0, pv + y0, d], dtype=np.float64)


def _finger_defects(ys: np.ndarray, xs: np.ndarray, zs: np.ndarray, sintr: CameraIntrinsics) -> int:
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


def _tri(x: float, a: float, b: float, c: float, d: float) -> float:
    """Trapezoid membership: 0 below a, rising to 1 at b, 1 until c, falling to 0 at d."""
    if x <= a or x >= d:
        return 0.0
    if x < b:
        return (x - a) / (b - a)
    if x > c:
        return (d - x) / (d - c)
    return 1.0


def _bbox(mask: np.ndarray, roi: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the mask's pixels, searched inside roi = (x0, y0, x1, y1) only."""
    x0, y0, x1, y1 = roi
    sub = mask[y0:y1, x0:x1]
    if not sub.any():
        return (0, 0, 0, 0)
    x, y, w, h = cv2.boundingRect(sub.view(np.uint8))
    return (int(x + x0), int(y + y0), int(w), int(h))
