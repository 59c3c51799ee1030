"""What the segmenter takes and gives: its tunables (`SegmenterConfig`), its results (`HandDetection`,
`Segmentation`) and the check of the depth container it accepts.

Depth input: (H, W) uint16 / float32 / float64 millimetres matching the intrinsics; any other dtype or shape
is an InputError. NaN, inf, zero, negative and absurd (> max_valid_depth_mm) values are *missing pixels*, not
errors: a stream must survive a bad frame (DEVELOPERS.md), it becomes a "no hand" result with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError
from ...frames import CameraIntrinsics

__all__ = ["METHODS", "SegmenterConfig", "HandDetection", "Segmentation", "check_depth"]

_DEPTH_DTYPES = (np.uint16, np.float32, np.float64)

METHODS = ("auto", "learned", "classic")


@dataclass(frozen=True)
class SegmenterConfig:
    """Tunables of the segmenter; defaults fit an adult hand at 0.2-1.5 m from a D400/SR300/Kinect camera."""

    method: str = "auto"  # "learned" (detector engine), "classic" (rules below), "auto" = learned if it loads
    detector_engine: str = "detector"  # shipped engine name or path to an .onnx with its manifest
    detector_threads: int = 1
    # learned: a second detector engine, run on frames where the first one's peaks make no hand, before
    # the classic fallback ("" = none), and where the tracked first hand would be left (rescue_keeps_track).
    # The shipped one (engines/default/detector_close) was fine-tuned mostly on close-range scenes: it finds hands at 200-500 mm over a table that the main detector does not
    # see (fine-tuned on them, the main detector gave up frontal hands); a frame where the main detector
    # finds the tracked hand costs nothing more. Close-range tuning sequences: missed 6.9 -> 1.4 %, on the hand 83.6 -> 88.8 %
    rescue_detector_engine: str = "detector_close"
    # ... and its first hand's peak (presence_threshold's role there). At 0.5 / 0.6, close-range tuning
    # sequences (egocentric and desk, seeds 9200-9500) lost 17 / 43 frames on the hand for 4 / 13 fewer on
    # a wrong object (BENCHMARKS.md, "A rescue detector for the close-range hands the detector does not see")
    rescue_presence_threshold: float = 0.4
    # learned: when the main detector's hands leave the previous first hand (its first hand lies away from it
    # and, with two previous hands, none of them is there), the rescue detector is asked too, and its hand
    # near the previous first keeps the track (a close-range hand the main detector loses)
    rescue_keeps_track: bool = True
    presence_threshold: float = 0.4  # learned: a heatmap peak at least this high is a hand
    second_hand_threshold: float = 0.5  # learned: the second hand's peak
    # learned: a weaker second peak (>= this, not tracked) is a hand only when its mask is as large as a
    # hand seen whole (>= weak_second_min_area_cm2), has fingers (solidity < weak_second_max_solidity) and
    # lies within weak_second_max_depth_gap_mm of the first in depth: what the detector fires on weakly in
    # one-hand scenes (distractors, forearm ends) is small, convex or farther (>= second_hand_threshold: off)
    weak_second_threshold: float = 0.4
    weak_second_min_area_cm2: float = 50.0
    weak_second_max_solidity: float = 0.9
    weak_second_max_depth_gap_mm: float = 150.0
    # learned, where a second hand has room: candidates the detector does not vouch for, cut for a check
    # that can tell a hand from an object (stream/hands/presence.py) to keep as the second hand
    # (`Segmentation.second_candidates`, at most max_second_candidates; 0 = none): a second hand's peak often
    # stays under every threshold above for frames on end while the hand is in plain view.
    # - a hand of the previous two-hand frame that no peak gives back, cut again where it was (as MediaPipe's
    #   tracker reuses the previous frame's region; False = off);
    # - then the peaks of at least second_candidate_presence that no rule took (0 = off).
    # Two-hand tuning sequences (seeds 4242-8484), with the shipped check and schedule below: both hands drawn
    # 78.5 -> 80.6 %; second hands off every hand in one-hand tuning sequences 211 -> 219 of 2 400 frames
    # (BENCHMARKS.md, "Second hands the detector barely sees")
    revisit_lost_hands: bool = True
    second_candidate_presence: float = 0.15
    # ... and their masks grow this far (mask_grow_mm's role): under a weak peak the coarse mask covers a
    # palm without its fingers, a crop the check calls no hand
    second_candidate_grow_mm: float = 60.0
    max_second_candidates: int = 1
    # ... the weak peaks' candidates are cut on every frame within weak_second_recent_frames of a frame with two
    # hands, else on every weak_second_every-th frame (the preprocess stage counts; the lost hands' on every
    # frame): a cut costs ~0.5 ms at 640x480, and the bench's one-hand clip offers one on most frames. Cut on
    # every frame: both hands drawn 81.0 % of the tuning frames and preprocess ~0.45 ms slower on that clip;
    # every 3rd frame without a second hand: 79.9 %; this schedule: 80.6 %, and as fast as without candidates
    weak_second_every: int = 6
    weak_second_recent_frames: int = 30
    mask_logit_threshold: float = -2.0  # learned: predicted-mask pixels above this logit (then depth-gated)
    # learned: the coarse predicted mask (1/8 of the frame's width) misses thin fingers and cuts
    # fingertips; it grows at full resolution by up to this many mm (pixels at the hand's depth) into the
    # depth-continuous surface around it -- never into a pixel whose nearest neighbour is more than
    # mask_grow_jump_mm closer (the body or occluder behind a depth edge) -- where the logit is above
    # mask_grow_logit (-1e9 = anywhere in the depth band). 0 = no growth (the coarse mask alone).
    mask_grow_mm: float = 15.0
    mask_grow_jump_mm: float = 15.0
    mask_grow_logit: float = -1e9
    # learned, off by default: a hand gripping a bottle, cup or box lies in its depth band, and the coarse
    # mask covers the object too, so the centre can fall on the object. With object_piece_logit above -1e9
    # the mask is cut where neighbouring depths step by more than object_piece_jump_mm (fingers lie on the
    # object's surface, a finger's thickness in front of it) and a piece of at least object_piece_min_px
    # pixels, most of them with a logit under object_piece_logit, is left out as long as object_piece_min_px
    # pixels stay (pieces.py); pieces are found on every (width // object_piece_work_width_px)-th pixel.
    # Off because it trusts the detector's logits to tell the hand from the object: at 0 it took the close
    # tuning sequences (seeds 9200 / 9300) from 88.1 to 90.2 % on the hand, but on four more close-range
    # sets (9400 / 9500) from 79.1 to 75.3 %: where the detector is unsure of a close-range hand, the hand's
    # piece is the one that goes (BENCHMARKS.md, "A held object left out of the hand's mask").
    object_piece_logit: float = -1e9
    object_piece_jump_mm: float = 8.0
    object_piece_min_px: int = 200
    object_piece_work_width_px: int = 320
    # learned: the mask runs onto the forearm (close range: the arm reaches towards the camera, lies in the
    # peak's depth band and the detector's mask covers it, and the centre falls on the arm). When at least
    # arm_min_share of the mask lies farther than arm_reach_mm from the peak (the detector's palm centre;
    # fingertips reach 100-130 mm, few and spread) and those far points lie in one direction (the length of
    # their mean unit vector >= arm_coherence) that runs towards the camera (at least arm_min_rise_mm
    # nearer on average), the mask is cut at arm_cut_mm from the peak along that direction (the wrist lies
    # ~40-60 mm from the palm centre); refine.cut_arm. arm_min_share >= 1 = off. Tuning seed 9200, 300 desk
    # frames, whole pipeline: on the hand 268 -> 290, on the arm 26 -> 4; 1600 frontal pose frames (seed 78):
    # engine 15.29 -> 15.22 mm (it acts on ~10). At a 100 mm reach it acted on 40 (70 without the rise) of
    # those frames, hands that reach that far from a peak off the palm, and cost 0.2 (0.35) mm of the mean.
    # An arm is long, too: at least arm_long_share of the mask lies beyond arm_long_mm (a palm's heel or
    # fingertips past the reach are not); and a cut that would take more than arm_max_cut_share of the mask
    # is not made (the peak was on the fingers or an object, not a palm with an arm behind it). On the desk
    # frames of tuning seed 9200 where it acts, 5-22 % of the mask lies beyond 140 mm and the cut takes
    # 34-61 %; of the frontal pose frames (seed 78) where it cost most, one took 97 % (the centre then went
    # to a ball beside the hand) and two had nothing beyond 140 mm (a palm's heel past a peak on the fingers).
    arm_reach_mm: float = 120.0
    arm_min_share: float = 0.1
    arm_coherence: float = 0.7
    arm_min_rise_mm: float = 40.0
    arm_cut_mm: float = 60.0
    arm_long_mm: float = 140.0
    arm_long_share: float = 0.01
    arm_max_cut_share: float = 0.65
    # learned: a mask this convex (area / convex hull area; hands measured 0.5-0.85, balls and
    # boxes ~0.9+) is likely an occluder in front of a mostly hidden hand, whose predicted depth was the
    # occluder's: the hand is looked for again at the median depth of the pixels behind_range_mm behind it
    # within behind_radius_mm of its centre, and taken when that mask is less convex and at least
    # behind_min_area_cm2. >= 1 = off.
    occluder_solidity: float = 0.9
    behind_range_mm: tuple[float, float] = (60.0, 300.0)
    behind_radius_mm: float = 60.0
    behind_min_area_cm2: float = 12.0
    # learned, nothing above presence_threshold: the classic method runs, and its hands are kept only where
    # the heatmap has a peak >= this inside their mask (0 = no fallback). For real frames unlike the
    # synthetic training data (NYU): the detector still points at the hand, with low confidence.
    classic_fallback_presence: float = 0.02
    # ... and the classic search then runs only within +- this of each weak peak (its depth from the
    # input under the peak), not on the whole frame: it bounds the fallback's cost (preprocessing aims at
    # <= 1 ms median at 640x480)
    fallback_window_mm: float = 220.0
    # learned, engines with a hand-depth output: a peak's depth is the median of the measured
    # pixels near it within +- this of the predicted hand depth (the hand's surface, not the occluder in
    # front of it nor the arm or body behind it); 0 = ignore that output (the mask-median rule alone)
    hand_depth_snap_mm: float = 60.0
    # ... and a classic fallback hand whose centre lies farther than this in depth from the hand depth
    # predicted at its weak peak is not kept (0 = no such check)
    fallback_depth_gate_mm: float = 100.0
    # ... and only the strongest this many weak peaks may vouch for a fallback hand. With all four, a blob on
    # an occluder or the body containing some lesser peak passed: tuning set (generator seed 77, 2000 pose
    # frames) 4 -> 1: wrong-object centres 44 -> 27 (fallback 22 -> 5), found 1944 -> 1919 (the 9 right ones
    # lost all had a joint > 20 mm off), success@20 45.7 -> 45.7 %; eval_segmentation seed 0: false
    # detections 0.054 -> 0.042 (320x240) and 0.052 -> 0.042 (640x480) per frame, clear hands found
    # 93.8 -> 93.4 % and 93.2 -> 93.0 %. Checked on seed 7 (`handstream eval centres --vouch`): wrong 43 -> 33
    # (fallback 14 -> 4), within 60 mm 1861 -> 1853 of 2000
    fallback_vouch_peaks: int = 1
    min_depth_mm: float = 150.0
    max_depth_mm: float = 1500.0
    max_valid_depth_mm: float = 10000.0  # beyond this a value is absurd for a hand camera: treated as missing
    downsample: int = 0  # low-resolution step; 0 = the one that brings the width nearest work_width_px
    work_width_px: int = 160
    depth_jump_mm: float = 35.0  # neighbours split where depths jump by more than max(this, frac * depth)
    depth_jump_frac: float = 0.05
    thick_radius_mm: float = 60.0  # surfaces thicker than this disc (torso, desk, wall, head) hold no hand
    hand_depth_band_mm: float = 200.0
    min_hand_area_cm2: float = 20.0
    max_blob_area_cm2: float = 1200.0
    min_hand_length_mm: float = 70.0
    max_hand_length_mm: float = 230.0
    wrist_search_mm: tuple[float, float] = (80.0, 230.0)
    max_hand_width_mm: float = 170.0
    local_radius_mm: float = 280.0  # an arm end is judged within this distance of its tip
    max_arm_width_mm: float = 140.0
    mask_depth_margin_mm: float = 25.0
    max_hands: int = 2
    max_components: int = 4  # judge at most this many thin pieces, largest first
    min_confidence: float = 0.25
    second_hand_min_confidence: float = 0.7
    second_hand_max_depth_gap_mm: float = 250.0  # both hands of one user lie within ~arm's reach in depth
    # learned: a piece of a hand's mask that holds another heatmap peak of at least this (and not the
    # hand's own) is the other hand's and is left out (refine.split_at_peaks; >= 1 = off)
    split_peak_presence: float = 0.15
    com_depth_offset_mm: float = 10.0  # the visible surface lies ~half a hand's thickness before its centre
    near_slack_mm: float = 60.0  # candidates this much behind the nearest one are not penalized ...
    near_falloff_mm: float = 250.0  # ... farther ones lose half their confidence every this many mm
    track_radius_mm: float = 120.0
    # a hand of a two-hand frame that is then missed is still tracked at its last place for this many
    # frames (tracking.lost_hands; 0 = off). Off: on the two-hand scenes (seed 4242) 5 frames found both
    # hands in 61.1 % of frames against 60.9 % without, but on frontal one-hand scenes (seed 9100) a
    # remembered spurious second hand cost 7 frames on the hand (536 against 543 of 565)
    lost_hand_frames: int = 0
    track_window_mm: float = 300.0  # tracking searches +- this around the previous hand first (0 = off)
    # learned, tracking: a peak more than this behind every previous hand loses confidence
    # (tracking.jump_score: divided by 1 + excess / track_jump_falloff_mm), so a tracked hand is not traded
    # for a bottle or jar far behind it (0 = off)
    track_jump_mm: float = 100.0
    track_jump_falloff_mm: float = 100.0
    # learned, tracking: look_behind does not carry the first hand more than track_jump_mm behind every
    # previous hand. A hand gripping a cup is as convex as an occluder; behind it lie the table's pixels at
    # the hand's edge, and the track left a hand 300 mm away for a sliver of table 570 mm away (egocentric
    # tuning seed 9500). False = off
    behind_keeps_track: bool = True
    # learned: a first hand whose mask is at least this convex (a jar, cup or box beside the hand; hands
    # measured 0.6-0.9) gives way to another peak of at least object_swap_presence, not behind it, whose mask
    # is less convex than hand_solidity (>= 1 = off)
    object_solidity: float = 0.88
    hand_solidity: float = 0.85
    object_swap_presence: float = 0.2
    # learned, on request (`segment(..., alternatives=True)`, not while tracking): the other peaks at least
    # this high, 80 mm from every hand found, are cut too and returned as `Segmentation.alternatives`, for
    # a hand-presence check on the crops to choose among (stream/hands/presence.py); at most this many
    alternative_presence: float = 0.1
    max_alternatives: int = 2
    # learned, on request and not while tracking: when no hand is found, the peaks at least this high are
    # cut all the same and returned as alternatives with no first hand, so that the presence check may take
    # one whose crop is plainly a hand (stream/hands/presence.py, `PresenceCheck.lone_score`): most of the
    # clearly visible hands the detector misses still peak at 0.25-0.4 on the hand (0 = off)
    weak_first_presence: float = 0.3
    # learned: a first hand that look_behind took from behind a convex peak is in doubt too, and gives way
    # the same way to a hand-shaped peak not behind it (a held or table object beside the hand looked like an
    # occluder, and the piece behind it was the table or a jar; tuning seed 9200, 300 egocentric frames,
    # whole pipeline: wrong-object frames 42 -> 28, on the hand 164 -> 178 of 240 visible; False = off)
    behind_verify: bool = True
    known_cube_mm: float = 250.0  # known-centre mode: the hand is what lies inside this cube

    def __post_init__(self) -> None:
        if not (0 < self.min_depth_mm < self.max_depth_mm <= self.max_valid_depth_mm):
            raise InputError(
                f"need 0 < min_depth_mm < max_depth_mm <= max_valid_depth_mm, got "
                f"{self.min_depth_mm}, {self.max_depth_mm}, {self.max_valid_depth_mm}"
            )
        if int(self.downsample) != self.downsample or not 0 <= self.downsample <= 16:
            raise InputError(f"downsample must be an integer in 0..16 (0 = auto), got {self.downsample}")
        if self.work_width_px < 16:
            raise InputError(f"work_width_px must be >= 16, got {self.work_width_px}")
        if self.max_hands < 1:
            raise InputError(f"max_hands must be >= 1, got {self.max_hands}")
        if self.method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not all(
            0.0 < t < 1.0
            for t in (self.presence_threshold, self.second_hand_threshold, self.rescue_presence_threshold)
        ):
            raise InputError(
                "presence_threshold, second_hand_threshold and rescue_presence_threshold must lie in (0, 1)"
            )
        if not 0.0 <= self.weak_first_presence < 1.0:
            raise InputError(f"weak_first_presence must lie in [0, 1), got {self.weak_first_presence}")
        if not 0.0 <= self.second_candidate_presence < 1.0:
            raise InputError(
                f"second_candidate_presence must lie in [0, 1), got {self.second_candidate_presence}"
            )
        if int(self.max_second_candidates) != self.max_second_candidates or self.max_second_candidates < 0:
            raise InputError(
                f"max_second_candidates must be an integer >= 0, got {self.max_second_candidates}"
            )
        if int(self.weak_second_every) != self.weak_second_every or self.weak_second_every < 1:
            raise InputError(f"weak_second_every must be an integer >= 1, got {self.weak_second_every}")
        if self.weak_second_recent_frames < 0:
            raise InputError(f"weak_second_recent_frames must be >= 0, got {self.weak_second_recent_frames}")
        if self.second_candidate_grow_mm < 0:
            raise InputError(f"second_candidate_grow_mm must be >= 0, got {self.second_candidate_grow_mm}")
        if self.detector_threads < 1:
            raise InputError(f"detector_threads must be >= 1, got {self.detector_threads}")
        if self.fallback_vouch_peaks < 1:
            raise InputError(f"fallback_vouch_peaks must be >= 1, got {self.fallback_vouch_peaks}")
        if self.object_piece_work_width_px < 16 or self.object_piece_min_px < 1:
            raise InputError(
                "object_piece_work_width_px must be >= 16 and object_piece_min_px >= 1, got "
                f"{self.object_piece_work_width_px}, {self.object_piece_min_px}"
            )


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
    # other candidates for the first hand, strongest peak first (only when asked for, see SegmenterConfig)
    alternatives: tuple[HandDetection, ...] = ()
    # a first hand that gave way to a hand-shaped peak because its mask was as convex as a jar (at most one;
    # segmenter._prefer_hand_shape), where a second hand has room: a fist is as convex, and a check that can
    # tell a hand from an object (stream/hands/presence.py) may keep it as the second hand
    doubted: tuple[HandDetection, ...] = ()
    # where a second hand has room: a lost hand of the previous two-hand frame cut again where it was, or a
    # weak peak's hand, for the same check to keep as the second hand (`SegmenterConfig.revisit_lost_hands`)
    second_candidates: tuple[HandDetection, ...] = ()

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
