"""`HandSegmenter`: which path runs on a frame, and in which order the parts are asked.

- `known_com_uvd` given (a dataset's centre, the thesis mode): the hand is what lies inside the
  `known_cube_mm` cube around it.
- Learned path (`SegmenterConfig.method`: "auto" (default) uses the shipped detector engine
  (engines/default/detector.onnx, see stream/preprocess/detect.py and train/detector.py) when it loads, else
  the classic path; "learned" requires it; "classic" never loads it). Each heatmap peak >=
  `presence_threshold` is a hand (candidates.peak_depth, refine.learned_hand, refine.look_behind); a mask
  that runs onto a forearm reaching towards the camera is cut at about the wrist (refine.cut_arm); a held
  object's piece of it can be left out (pieces.drop_object_pieces, off by default). When
  none is, a second detector trained mostly on close-range scenes is asked the same way, if one is set
  (`rescue_detector_engine`), and when that finds none either, the classic search runs around the first
  detector's weak peaks and keeps what they vouch for (scoring.py).
  While tracking, a peak far behind the tracked hand loses confidence (tracking.jump_score), look_behind
  does not carry the first hand far behind it (`behind_keeps_track`), and where the hands would leave the
  previous first hand, the second detector's hand near it keeps the track (`rescue_keeps_track`:
  close-range hands the first detector loses); a first hand
  whose mask is as convex as a jar or box gives way to a hand-shaped peak beside it (`_prefer_hand_shape`):
  over a table the detector also fires on the objects there. Where a second hand has room, the hands the
  detector does not vouch for are cut as candidates (`_second_candidates`: a lost hand of the previous
  two-hand frame where it was, the weak peaks' hands) for the preprocess stage's second-hand check to keep
  or refuse (`Segmentation.second_candidates`).
- Classic path: candidates on a low-resolution view (candidates.py), scored and chosen (scoring.py), the
  chosen ones refined at full resolution (refine.py); with `prev`, around the previous hands first
  (tracking.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ...errors import HandstreamError, InputError
from ...frames import CameraIntrinsics
from ...geometry import uvd_to_xyz
from .candidates import find_candidates, peak_depth
from .config import HandDetection, Segmentation, SegmenterConfig, check_depth
from .measure import mask_bbox, merge_windows, view_window
from .pieces import compile_piece_kernels
from .refine import compile_arm_kernels, learned_hand, look_behind, refine_candidate, solidity
from .scoring import Candidate, choose, vouched_hands
from .tracking import (
    far_behind,
    jump_score,
    near_previous,
    previous_centres,
    tracked_candidates,
    tracked_threshold,
)

if TYPE_CHECKING:
    from ..detect import DetectorOutput, HandDetector

__all__ = ["HandSegmenter"]


class HandSegmenter:
    """Finds up to `max_hands` hands in a depth frame. Stateless between calls: tracking state is `prev`.

    The detector engines (learned method) are loaded once here, not per frame. `method` says which path
    runs ("learned" or "classic"); `detector_error` why "auto" fell back to classic or runs without its
    rescue detector (empty otherwise)."""

    def __init__(self, config: SegmenterConfig | None = None):
        self.config = config or SegmenterConfig()
        self.detector = None
        self.rescue = None  # the second detector (`SegmenterConfig.rescue_detector_engine`), if any
        self.detector_error = ""
        self.method = "classic"
        if self.config.method != "classic":
            from ..detect import HandDetector

            try:
                self.detector = HandDetector(self.config.detector_engine, self.config.detector_threads)
                self.method = "learned"
            except HandstreamError as exc:
                if self.config.method == "learned":
                    raise
                self.detector_error = str(exc)
        if self.detector is not None and self.config.rescue_detector_engine:
            from ..detect import HandDetector

            try:
                self.rescue = HandDetector(self.config.rescue_detector_engine, self.config.detector_threads)
            except HandstreamError as exc:
                if self.config.method == "learned":
                    raise
                self.detector_error = f"rescue detector: {exc}"  # "auto": the detector alone, as before
        if self.detector is not None and self.config.arm_min_share < 1.0:
            compile_arm_kernels()  # here, not on a stream's first frame
        if self.detector is not None and self.config.object_piece_logit > -1e9:
            compile_piece_kernels()

    # ------------------------------------------------------------------ public
    def segment(
        self,
        depth_mm: np.ndarray | None,
        intr: CameraIntrinsics,
        prev: Segmentation | None = None,
        known_com_uvd: np.ndarray | None = None,
        alternatives: bool = False,
        weak_seconds: bool = True,
    ) -> Segmentation:
        """Segment the hand(s). `prev`: last frame's result (its hands are preferred when near);
        `known_com_uvd`: a dataset-given centre (u, v, d mm): the hand is what lies inside the cube around it;
        `alternatives`: also cut the other detector peaks when not tracking (`Segmentation.alternatives`);
        `weak_seconds`: the weak peaks' hands among the second-hand candidates (the lost hands always)."""
        if depth_mm is None or (isinstance(depth_mm, np.ndarray) and depth_mm.size == 0):
            return Segmentation(reason="empty frame")
        depth = check_depth(depth_mm, intr)
        if known_com_uvd is not None:
            return self._segment_known(depth, intr, known_com_uvd)
        if self.detector is not None:
            return self._segment_learned(depth, intr, prev, alternatives, weak_seconds)
        return self._segment_search(depth, intr, prev)

    # ------------------------------------------------------------------ learned
    def _segment_learned(
        self,
        depth: np.ndarray,
        intr: CameraIntrinsics,
        prev: Segmentation | None,
        alternatives: bool = False,
        weak_seconds: bool = True,
    ) -> Segmentation:
        """Heatmap peaks -> robust depth -> ROI mask (predicted mask AND depth band) -> CoM; where the
        detector's peaks make no hand, the rescue detector's (if any), then the classic fallback."""
        cfg = self.config
        det = self.detector
        out = det.run(depth, cfg.max_valid_depth_mm)
        x = out.input_m
        lo_m, hi_m = cfg.min_depth_mm / det.depth_scale_mm, cfg.max_depth_mm / det.depth_scale_mm
        measured = x > 0
        if not measured.any():
            return Segmentation(reason="all depth missing")
        if not ((x >= lo_m) & (x <= hi_m)).any():
            return Segmentation(reason="nothing in range")
        prev_coms = previous_centres(prev)
        alternatives = alternatives and not prev_coms
        seg = self._learned_hands(det, out, depth, intr, prev, alternatives, weak_seconds=weak_seconds)
        if (
            seg is not None
            and self.rescue is not None
            and cfg.rescue_keeps_track
            and self._leaves_first(seg, prev_coms)
        ):
            # the track would leave the previous first hand: where the rescue detector still sees a hand
            # there, it stays, and the main detector's hands follow it (the user's other hand coming into
            # view, or a second hand of the previous frame)
            kept = self._rescue_hands(depth, intr, prev, alternatives, weak_seconds)
            if kept is not None and near_previous(
                kept.hands[0].com_xyz_mm, prev_coms[:1], cfg.track_radius_mm
            ):
                first = kept.hands[0]
                others = [
                    h
                    for h in seg.hands
                    if not near_previous(h.com_xyz_mm, [first.com_xyz_mm], cfg.track_radius_mm)
                ]
                seg = replace(
                    seg, hands=(first, *others)[: cfg.max_hands], debug={**seg.debug, "rescue": True}
                )
        if seg is None and self.rescue is not None:
            seg = self._rescue_hands(depth, intr, prev, alternatives, weak_seconds)
            if seg is not None:
                seg = replace(seg, debug={**seg.debug, "rescue": True})
        if seg is None:
            return self._none_found(depth, intr, prev, out, alternatives)
        return seg

    def _leaves_first(self, seg: Segmentation, prev_coms: list[np.ndarray]) -> bool:
        """Whether `seg` leaves the previous frame's first hand: its first hand is not there, and (with
        two previous hands) none of its hands is. A hand the main detector loses at close range is often
        lost with the other previous hand still found: a spurious second hand at the table's depth then
        held the track while the hand itself, 150 mm nearer, went unseen (egocentric tuning seed 9800)."""
        if not prev_coms:
            return False
        first, r = prev_coms[:1], self.config.track_radius_mm
        if near_previous(seg.hands[0].com_xyz_mm, first, r):
            return False
        return len(prev_coms) == 1 or not any(near_previous(h.com_xyz_mm, first, r) for h in seg.hands[1:])

    def _rescue_hands(
        self,
        depth: np.ndarray,
        intr: CameraIntrinsics,
        prev,
        alternatives: bool,
        weak_seconds: bool = True,
        own_threshold: bool = True,
    ) -> Segmentation | None:
        """The hands the rescue detector's peaks make, tracked as the main detector's are; None when none
        does. `own_threshold`: its first hand's peak judged by `rescue_presence_threshold` (else by
        `presence_threshold`, as the main detector's)."""
        out = self.rescue.run(depth, self.config.max_valid_depth_mm)
        presence = self.config.rescue_presence_threshold if own_threshold else None
        return self._learned_hands(self.rescue, out, depth, intr, prev, alternatives, presence, weak_seconds)

    def rescue_candidates(self, depth_mm: np.ndarray, intr: CameraIntrinsics) -> tuple[HandDetection, ...]:
        """The hands and other candidates the rescue detector finds in this frame, untracked (empty without
        one): for a caller that doubts the hand it tracks (the preprocess stage's presence check)."""
        if self.rescue is None:
            return ()
        seg = self._rescue_hands(check_depth(depth_mm, intr), intr, None, True, own_threshold=False)
        return () if seg is None else (*seg.hands, *seg.alternatives)

    def _learned_hands(
        self,
        det: HandDetector,
        out: DetectorOutput,
        depth: np.ndarray,
        intr: CameraIntrinsics,
        prev: Segmentation | None,
        alternatives: bool,
        presence: float | None = None,
        weak_seconds: bool = True,
    ) -> Segmentation | None:
        """The hands `det`'s output `out` gives (its peaks, tracking, the shape rules), or None when no
        peak makes a hand; `presence`: the first hand's threshold (default `presence_threshold`);
        `weak_seconds`: see `segment`."""
        cfg = self.config
        presence = cfg.presence_threshold if presence is None else presence
        prev_coms = previous_centres(prev)
        second = min(cfg.second_hand_threshold, cfg.weak_second_threshold)
        low = tracked_threshold(min(presence, second), bool(prev_coms))
        peaks = det.peaks(out, min(low, cfg.object_swap_presence), cfg.max_hands + 2)
        if not peaks:
            return None
        # each peak's 3-D centre and its score while tracking (a peak far behind the tracked hand loses
        # confidence), best first; without a previous hand the order is the heatmap's
        cands = []
        for pk in peaks:
            if pk.score < low:
                continue  # cannot pass even if tracked: skip its depth (same result, less work)
            c_xyz = self._peak_xyz(det, out, pk, intr)
            if c_xyz is None:
                continue
            tracked = near_previous(c_xyz, prev_coms, cfg.track_radius_mm)
            score = jump_score(pk.score, c_xyz, prev_coms, cfg.track_jump_mm, cfg.track_jump_falloff_mm)
            cands.append((score, pk.score, c_xyz, tracked, pk.frame_uv))
        cands.sort(key=lambda c: -c[0])
        hands: list[HandDetection] = []
        from_behind = False  # the first hand was taken from behind a convex peak (look_behind)
        for score, raw, c_xyz, tracked, uv in cands:
            # the first hand must pass with its tracking score; a second hand is judged on its own peak (the
            # user's other hand may lie behind the tracked one: the depth-gap rule below bounds it)
            if hands:
                score = raw
            need = presence if not hands else second
            if score < tracked_threshold(need, tracked):
                continue
            # the other peaks that may be hands: a mask piece holding one of them is that hand's
            others = [
                pk.frame_uv for pk in peaks if pk.frame_uv is not uv and pk.score >= cfg.split_peak_presence
            ]
            h = learned_hand(cfg, depth, intr, out, score, c_xyz, hands, others)
            if h is None:
                continue
            seen = h
            h = look_behind(cfg, depth, intr, out, score, h, hands)
            if (
                h is not seen
                and not hands
                and cfg.behind_keeps_track
                and far_behind(h.com_xyz_mm, prev_coms, cfg.track_jump_mm)
            ):
                h = seen  # what lies behind a tracked hand's occluder is too far for the hand to have gone
            if (
                hands
                and not tracked
                and score < cfg.second_hand_threshold
                and not weak_hand(cfg, h, hands[0], intr)
            ):
                continue
            if hands and (
                abs(h.com_xyz_mm[2] - hands[0].com_xyz_mm[2]) > cfg.second_hand_max_depth_gap_mm
                or any(np.linalg.norm(h.com_xyz_mm - o.com_xyz_mm) < 80.0 for o in hands)
            ):
                continue
            if not hands:
                from_behind = h is not seen
            hands.append(h)
            if len(hands) >= cfg.max_hands:
                break
        if not hands:
            return None
        hands, doubted = self._prefer_hand_shape(det, depth, intr, out, peaks, hands, from_behind)
        alts = self._alternatives(det, depth, intr, out, hands) if alternatives else ()
        seconds = self._second_candidates(det, depth, intr, out, prev, hands, weak_seconds)
        return Segmentation(hands=tuple(hands), alternatives=alts, doubted=doubted, second_candidates=seconds)

    def _second_candidates(
        self,
        det: HandDetector,
        depth: np.ndarray,
        intr: CameraIntrinsics,
        out: DetectorOutput,
        prev: Segmentation | None,
        hands: list[HandDetection],
        weak: bool = True,
    ) -> tuple[HandDetection, ...]:
        """Where a second hand has room: the lost hands of the previous two-hand frame cut again where they
        were (`_revisit`), then (`weak`) the hands of the weak peaks no rule took (>= `second_candidate_presence`;
        a peak more than 50 mm beyond `weak_second_max_depth_gap_mm` from the first hand in depth is not cut),
        at most `max_second_candidates`, each 80 mm from every hand and within
        `weak_second_max_depth_gap_mm` of the first in depth. Whether one is a hand is for the caller's check
        to say: the detector does not vouch for them."""
        cfg = self.config
        n = int(cfg.max_second_candidates)
        if not hands or len(hands) >= cfg.max_hands or n < 1:
            return ()
        found: list[HandDetection] = []

        def take(h: HandDetection | None) -> bool:
            if h is None or any(np.linalg.norm(h.com_xyz_mm - o.com_xyz_mm) < 80.0 for o in (*hands, *found)):
                return False
            if abs(float(h.com_xyz_mm[2] - hands[0].com_xyz_mm[2])) > cfg.weak_second_max_depth_gap_mm:
                return False
            found.append(h)
            return len(found) >= n

        own = [(float(h.com_uvd[0]), float(h.com_uvd[1])) for h in hands]
        grow = cfg.second_candidate_grow_mm
        if cfg.revisit_lost_hands:
            for c_xyz, peak in self._revisit(depth, intr, out, prev, hands):
                if take(learned_hand(cfg, depth, intr, out, peak, c_xyz, hands, own, grow)):
                    return tuple(found)
        if weak and cfg.second_candidate_presence > 0:
            for pk in det.peaks(out, cfg.second_candidate_presence, cfg.max_hands + 2 + n):
                c_xyz = self._peak_xyz(det, out, pk, intr)
                if c_xyz is None:
                    continue
                if any(np.linalg.norm(c_xyz - o.com_xyz_mm) < 80.0 for o in (*hands, *found)):
                    continue  # a hand's own peak
                if abs(float(c_xyz[2] - hands[0].com_xyz_mm[2])) > cfg.weak_second_max_depth_gap_mm + 50.0:
                    continue  # its hand would lie too far behind or before the first: spare the cut
                if take(learned_hand(cfg, depth, intr, out, pk.score, c_xyz, hands, own, grow)):
                    break
        return tuple(found)

    def _revisit(
        self,
        depth: np.ndarray,
        intr: CameraIntrinsics,
        out: DetectorOutput,
        prev: Segmentation | None,
        hands: list[HandDetection],
    ) -> list[tuple[np.ndarray, float]]:
        """(surface point mm, heatmap there) of each hand of the previous two-hand frame that none of
        `hands` lies near (`track_radius_mm`): where to cut it again. The surface point is the median of the
        measured depths within `hand_depth_snap_mm` of its old surface depth, within 20 mm of its old centre
        in the image; none where nothing is measured there. MediaPipe's tracker likewise looks again where
        the previous frame's hand was, and keeps it while its landmark model still calls it a hand."""
        cfg = self.config
        if prev is None or len(prev.hands) < 2:
            return []
        H, W = depth.shape
        hm = out.heatmap
        places = []
        for p in prev.hands:
            if any(np.linalg.norm(p.com_xyz_mm - h.com_xyz_mm) < cfg.track_radius_mm for h in hands):
                continue
            u, v, d = (float(x) for x in p.com_uvd)
            z = d - cfg.com_depth_offset_mm  # back from the centre to the surface it was pushed from
            iu, iv = round(u), round(v)
            if not (0 <= iu < W and 0 <= iv < H):
                continue
            r = max(1, round(20.0 * intr.fx / z))
            win = depth[max(iv - r, 0) : iv + r + 1, max(iu - r, 0) : iu + r + 1].astype(np.float32)
            near = win[(win > 0) & (np.abs(win - z) <= cfg.hand_depth_snap_mm)]
            if near.size == 0:
                continue
            cu, cv = out.geometry.frame_to_cell(u, v)
            ci, cj = int(np.clip(round(cv), 0, hm.shape[0] - 1)), int(np.clip(round(cu), 0, hm.shape[1] - 1))
            peak = float(hm[max(ci - 1, 0) : ci + 2, max(cj - 1, 0) : cj + 2].max())
            places.append((uvd_to_xyz(np.array([u, v, float(np.median(near))]), intr), peak))
        return places

    def _peak_xyz(
        self, det: HandDetector, out: DetectorOutput, pk, intr: CameraIntrinsics
    ) -> np.ndarray | None:
        """A heatmap peak's 3-D point (camera mm): its pixel at the robust depth near it
        (candidates.peak_depth: within the depth range, snapped to the predicted hand depth), or None where
        nothing near it is measured."""
        cfg = self.config
        s = det.depth_scale_mm
        lo_m, hi_m, snap_m = cfg.min_depth_mm / s, cfg.max_depth_mm / s, cfg.hand_depth_snap_mm / s
        d_mm = peak_depth(out, pk.cell_uv, lo_m, hi_m, snap_m) * s
        if not d_mm > 0:
            return None
        return uvd_to_xyz(np.array([pk.frame_uv[0], pk.frame_uv[1], d_mm]), intr)

    def _none_found(
        self,
        depth: np.ndarray,
        intr: CameraIntrinsics,
        prev: Segmentation | None,
        out: DetectorOutput,
        alternatives: bool,
    ) -> Segmentation:
        """No peak made a hand: the classic fallback's hands, else (`alternatives`) no hand but the weak
        peaks' cuts (>= `weak_first_presence`) for the presence check to judge."""
        seg = self._classic_fallback(depth, intr, prev, out)
        if seg.found or not alternatives or self.config.weak_first_presence <= 0:
            return seg
        weak = self._alternatives(self.detector, depth, intr, out, [], self.config.weak_first_presence)
        return replace(seg, alternatives=weak)

    def _alternatives(
        self,
        det: HandDetector,
        depth: np.ndarray,
        intr: CameraIntrinsics,
        out: DetectorOutput,
        hands: list,
        floor: float | None = None,
    ) -> tuple[HandDetection, ...]:
        """The hands the other peaks (>= `alternative_presence`, 80 mm from every hand and from each other)
        would give, strongest first, at most `max_alternatives`: candidates for a check that can tell a hand
        from an object better than the heatmap's height (the detector also fires on held objects, balls and
        jars, sometimes above the hand itself). `floor`: another lowest peak than `alternative_presence`."""
        cfg = self.config
        floor = cfg.alternative_presence if floor is None else float(floor)
        taken = [h.com_xyz_mm for h in hands]
        alts: list[HandDetection] = []
        if cfg.max_alternatives < 1:
            return ()
        for pk in det.peaks(out, floor, cfg.max_hands + 2 + cfg.max_alternatives):
            if len(alts) >= cfg.max_alternatives or pk.score < floor:
                break
            c_xyz = self._peak_xyz(det, out, pk, intr)
            if c_xyz is None:
                continue
            if any(np.linalg.norm(c_xyz - t) < 80.0 for t in taken):
                continue
            h = learned_hand(cfg, depth, intr, out, pk.score, c_xyz, [])
            if h is None or any(np.linalg.norm(h.com_xyz_mm - t) < 80.0 for t in taken):
                continue
            alts.append(h)
            taken.append(h.com_xyz_mm)
        return tuple(alts)

    def _prefer_hand_shape(
        self,
        det: HandDetector,
        depth: np.ndarray,
        intr: CameraIntrinsics,
        out: DetectorOutput,
        peaks: list,
        hands: list,
        from_behind: bool = False,
    ) -> tuple[list[HandDetection], tuple[HandDetection, ...]]:
        """(hands, the first hand given way, if any): `hands`, or -- when the first hand is in doubt and
        another peak of at least `object_swap_presence`, not behind it, gives a hand-shaped mask (solidity
        < `hand_solidity`) -- that one first. In doubt: its mask is as convex as a jar, cup or box
        (solidity >= `object_solidity`; on a table the detector also fires on the objects beside the hand,
        and a convex blob is seldom a hand with its fingers), or (`from_behind`, with `behind_verify`) it
        was taken from behind a convex peak by `look_behind`: a hand-shaped peak beside that object says
        the hand was never hidden behind it, and what lay behind was the table or another object. The first
        hand given way is returned apart (`Segmentation.doubted`) when it lies 80 mm or more from the new
        one and a second hand has room: as convex as a jar is also what a fist is, and a check that tells
        the two apart may keep it."""
        cfg = self.config
        first = hands[0]
        doubt = from_behind and cfg.behind_verify
        if cfg.object_solidity >= 1.0 or (
            not doubt and solidity(first.mask, first.bbox_xywh) < cfg.object_solidity
        ):
            return hands, ()
        for pk in peaks:
            if pk.score < cfg.object_swap_presence:
                break
            c_xyz = self._peak_xyz(det, out, pk, intr)
            if c_xyz is None:
                continue
            if np.linalg.norm(c_xyz - first.com_xyz_mm) < 80.0 or c_xyz[2] > first.com_xyz_mm[2] + 100.0:
                continue  # the first hand's own peak, or something behind it
            h = learned_hand(cfg, depth, intr, out, pk.score, c_xyz, [])
            if h is not None and solidity(h.mask, h.bbox_xywh) < cfg.hand_solidity:
                rest = [o for o in hands[1:] if np.linalg.norm(o.com_xyz_mm - h.com_xyz_mm) >= 80.0]
                room = 1 + len(rest) < cfg.max_hands
                apart = np.linalg.norm(first.com_xyz_mm - h.com_xyz_mm) >= 80.0
                return [h] + rest, (first,) if room and apart else ()
        return hands, ()

    def _classic_fallback(
        self, depth: np.ndarray, intr: CameraIntrinsics, prev: Segmentation | None, out: DetectorOutput
    ) -> Segmentation:
        """No confident learned hand: classic candidates, kept only where a weak heatmap peak lies inside
        their mask (the detector still says where; the rules say what the hand's pixels are)."""
        cfg = self.config
        hmax = float(out.heatmap.max())
        none = Segmentation(reason="no hand detected", debug={"heatmap_max": hmax})
        if cfg.classic_fallback_presence <= 0 or hmax < cfg.classic_fallback_presence:
            return none
        weak = self.detector.peaks(out, cfg.classic_fallback_presence, 4)
        det = self.detector
        around = []
        for p in weak[: cfg.max_hands]:
            c_xyz = self._peak_xyz(det, out, p, intr)
            if c_xyz is not None:
                around.append(c_xyz)
        if not around:
            return none
        seg = self._segment_search(depth, intr, prev, around)
        keep = vouched_hands(cfg, seg.hands, weak, out, det.depth_scale_mm)
        if not keep:
            return none
        return Segmentation(hands=tuple(keep), debug={"heatmap_max": hmax, "fallback": "classic"})

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
            bbox_xywh=mask_bbox(mask, (x0, y0, x1, y1)),
            confidence=1.0,
        )
        return Segmentation(hands=(det,))

    # ------------------------------------------------------------------ search
    def step(self, intr: CameraIntrinsics) -> int:
        """The low-resolution step: `downsample`, or (0) the one that brings the width near work_width_px."""
        cfg = self.config
        if cfg.downsample:
            return int(cfg.downsample)
        return max(1, int(round(intr.width / cfg.work_width_px)))

    def _segment_search(
        self,
        depth: np.ndarray,
        intr: CameraIntrinsics,
        prev: Segmentation | None,
        around_xyz: list[np.ndarray] | None = None,
    ) -> Segmentation:
        """The classic search; with `around_xyz` (the learned path's weak peaks) only in windows of
        +- fallback_window_mm around those points, never the whole frame."""
        cfg = self.config
        s = self.step(intr)
        o = s // 2
        z = depth[o::s, o::s].astype(np.float32)  # small copy (1/s^2 of the frame)
        with np.errstate(invalid="ignore"):
            valid = (z >= cfg.min_depth_mm) & (z <= cfg.max_depth_mm)
            # no measurement (0, NaN, negative, absurd): unlike a far pixel, not a silhouette boundary
            missing = ~((z > 0) & (z <= cfg.max_valid_depth_mm))
        if not valid.any():
            return Segmentation(reason=why_nothing(depth, cfg))
        z[~valid] = 0.0
        # exact low-res intrinsics for a strided view starting at o (pixel i of the view = i*s + o)
        sintr = CameraIntrinsics(
            intr.fx / s, intr.fy / s, (intr.cx - o) / s, (intr.cy - o) / s, z.shape[1], z.shape[0]
        )
        prev_coms = previous_centres(prev)
        cands: list[Candidate] = []
        reason = ""
        if around_xyz is not None:
            wins = merge_windows(
                [
                    w
                    for w in (view_window(c, sintr, cfg.fallback_window_mm) for c in around_xyz)
                    if w is not None
                ]
            )
            # the low-res pixels of the peaks: only the thin pieces that reach them are judged (a hand
            # is kept only where a weak peak lies in its mask, so no other piece could be kept)
            seeds = [
                (int(round(c[1] * sintr.fy / c[2] + sintr.cy)), int(round(c[0] * sintr.fx / c[2] + sintr.cx)))
                for c in around_xyz
            ]
            reason = "no hand shape"
            for win in wins:
                found, why = find_candidates(cfg, z, valid, missing, sintr, win, prev_coms, seeds)
                cands += found
                reason = why or reason
            if not cands:
                return Segmentation(reason=reason)
        elif prev_coms and cfg.track_window_mm > 0:
            # tracking: search a window around the previous hands first, the whole frame only if that fails
            cands = tracked_candidates(
                lambda win: find_candidates(cfg, z, valid, missing, sintr, win, prev_coms)[0],
                sintr,
                prev_coms,
                cfg.track_window_mm,
                cfg.min_confidence,
            )
        if not cands:
            cands, reason = find_candidates(cfg, z, valid, missing, sintr, None, prev_coms)
        if not cands:
            return Segmentation(reason=reason)
        chosen = choose(cfg, cands)
        if not chosen:
            return Segmentation(reason="no hand shape", debug={"best_score": max(c.score for c in cands)})
        hands = tuple(refine_candidate(cfg, c, depth, intr, s, o) for c in chosen)
        return Segmentation(hands=hands)


def weak_hand(cfg: SegmenterConfig, h: HandDetection, first: HandDetection, intr: CameraIntrinsics) -> bool:
    """Whether a second hand from a weak peak (see `SegmenterConfig.weak_second_threshold`) looks like one:
    a hand-sized mask with fingers, near the first hand in depth."""
    z = float(h.com_xyz_mm[2])
    area_cm2 = np.count_nonzero(h.mask) * (z / intr.fx) * (z / intr.fy) / 100.0
    return (
        area_cm2 >= cfg.weak_second_min_area_cm2
        and abs(z - float(first.com_xyz_mm[2])) <= cfg.weak_second_max_depth_gap_mm
        and solidity(h.mask, h.bbox_xywh) < cfg.weak_second_max_solidity
    )


def why_nothing(depth: np.ndarray, cfg: SegmenterConfig) -> str:
    """Why a frame with no valid low-res pixel holds no hand: no measurement at all, or none in range."""
    with np.errstate(invalid="ignore"):
        measured = (depth > 0) & (depth <= cfg.max_valid_depth_mm)
    if not measured.any():
        return "all depth missing"
    return "nothing in range"
