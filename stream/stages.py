"""The per-frame stages: preprocess -> engines -> smoothing -> overlay.

Each stage is a small object with a `name` and `run(state)`, reading and writing the one mutable
`FrameState` that travels through a frame; the pipeline times every `run` (Holoscan-style per-operator
latency) and turns the state into a frozen FrameResult at the end. A stage that finds nothing to do (no
hand) returns quickly; a stage that raises turns the frame into a "no hand" result (pipeline.py).

Stages derive from `Stage`, which declares their contract (what they read and write, their engine, their
record fields and overlay drawing), and register by name (stage_registry.py) so `--models` can select
them. A new capability keeps its values in `st.fields` instead of adding slots to FrameState.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from .frames import RGBDFrame
from .geometry import xyz_to_uvd
from .smoothing import OneEuroConfig, OneEuroFilter
from .stage_registry import register_stage


class FrameState:
    """Everything one frame accumulates on its way through the stages (reset for every frame)."""

    __slots__ = (
        "frame",
        "segmentation",
        "detection",
        "crop",
        "joints_raw_mm",
        "joints_mm",
        "joints_uvd",
        "outputs",
        "image",
        "reason",
        "fields",
    )

    def __init__(self, frame: RGBDFrame) -> None:
        self.frame = frame
        self.segmentation = None
        self.detection = None
        self.crop = None
        self.joints_raw_mm: np.ndarray | None = None
        self.joints_mm: np.ndarray | None = None
        self.joints_uvd: np.ndarray | None = None
        self.outputs: dict[str, np.ndarray] = {}
        self.image: np.ndarray | None = None
        self.reason = ""
        self.fields: dict[str, object] = {}  # per-capability values (gesture, hand size, ...) by name


# `st.fields` key: (engine identity, raw output on the crop, on the mirrored crop) of a pose engine the
# handedness stage's analysis-by-synthesis cue ran; the pose stage takes the one it needs instead of running
# the same engine on the same crop again (one pose-engine call a hand-frame until a track's side settles)
POSE_OUTPUTS = "pose_outputs_crop_mirror"


def engine_identity(engine) -> tuple[str, str]:
    """What makes two engines give the same outputs on the same input: backend and the ONNX file's hash."""
    return str(getattr(engine, "backend", "")), str(getattr(engine.manifest, "onnx_sha256", "") or id(engine))


class Stage:
    """The contract of a per-frame stage. `reads`: what must be written before it runs (FrameState slots
    or `fields` keys; "frame" is always there); `optional_reads`: what it uses when a stage in the chain
    writes it (the builder then runs it after that stage); `writes`: what it fills in. `engine`: the engine
    it runs when named without one (a shipped name or a path; `needs_engine` says it runs one at all).
    Values are None on frames without a hand, whatever the contract says: stages check.

    `record_fields(st)` adds JSON-ready fields to the frame's JSON-lines record and `draw(image, st)` draws
    on the overlay (after the skeleton, under the heads-up line; the camera view is the image's left part,
    in the frame's own pixels); the pipeline calls them only for stages that override them."""

    kind = ""  # the registered name (set by @register_stage)
    tasks: tuple[str, ...] = ()  # manifest tasks whose engines run in this class (set by @register_stage)
    always = False  # part of every pipeline, not selected by --models
    reads: tuple[str, ...] = ()
    optional_reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    engine: str | None = None
    needs_engine = False
    # reads the frame's colour image: a source may leave its colour stream closed when no stage does
    # (decoding a recording's colour costs about twice its depth, on the core the pipeline shares)
    uses_color = False

    def __init__(self, engine=None, name: str | None = None) -> None:
        self.engine = engine
        self.name = name or self.kind

    def run(self, st: FrameState) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget what was carried from frame to frame (a new sequence, or the hand was lost). Rebind state
        attributes to fresh objects rather than clearing them in place: `fork` relies on it."""

    def fork(self) -> Stage:
        """This stage's own copy for one more tracked hand (pipeline with `max_hands` > 1): a shallow copy,
        so the engine and read-only tables stay shared, then `reset()`, which rebinds the per-hand state
        (history, filters) to fresh objects, so no two hands share any."""
        twin = copy.copy(self)
        twin.reset()
        return twin

    def record_fields(self, st: FrameState) -> dict:
        """JSON-ready fields this stage adds to the frame's record (sinks.JsonlSink)."""
        return {}

    def draw(self, image: np.ndarray, st: FrameState) -> None:
        """Draw this stage's result on the overlay image, in place."""


@register_stage("preprocess")
class PreprocessStage(Stage):
    """Segment the hand (tracking the previous frame's hand) and cut the normalized cube around it."""

    name = "preprocess"
    always = True
    reads = ("frame",)
    writes = ("segmentation", "detection", "crop", "reason")

    def __init__(
        self, cube_mm: float = 250.0, crop_size: int = 96, segmenter=None, presence=None, centre=None
    ) -> None:
        """`presence`: a `stream.hands.presence.PresenceCheck` that chooses a new track's first hand among
        the detector's candidates by P(hand) on their crops (None: the detector's order stands).
        `centre`: a `stream.hands.centre.CentreRefiner` that moves the first hand's centre to where a
        network reading its crop puts the hand (None: the segmenter's centre stands)."""
        from .preprocess import HandSegmenter

        self.cube_mm = float(cube_mm)
        self.crop_size = int(crop_size)
        self.segmenter = segmenter or HandSegmenter()
        self.presence = presence
        self.centre = centre
        self._prev = None
        self._lost: tuple = ()  # hands of two-hand frames missed since (segment.tracking.lost_hands)
        self._track = None  # the first hand's running presence (PresenceCheck.track_floor)
        # frames since the last with two hands (None: none yet) and since the last reset: when to cut the weak
        # peaks' second-hand candidates (SegmenterConfig.weak_second_every, weak_second_recent_frames)
        self._since_two: int | None = None
        self._frames = 0
        # frames since the centre engine last ran and left the centre where it was (None: run it next frame)
        self._centre_idle: int | None = None

    def reset(self) -> None:
        self._prev = None
        self._lost = ()
        self._track = None
        self._since_two = None
        self._frames = 0
        self._centre_idle = None

    def run(self, st: FrameState) -> None:
        f = st.frame
        if f.depth_mm is None:
            st.reason = "no depth in this frame"
            self._prev = None
            return
        from .preprocess.segment.tracking import lost_hands, previous_centres, with_lost

        cfg = self.segmenter.config
        check = self.presence
        ask = {"alternatives": True} if check is not None else {}
        recent = self._since_two is not None and self._since_two < cfg.weak_second_recent_frames
        if not recent and self._frames % max(int(cfg.weak_second_every), 1):
            ask["weak_seconds"] = False  # a one-hand stretch: the weak peaks' candidates now and then only
        self._frames += 1
        prev = with_lost(self._prev, self._lost)
        seg = self.segmenter.segment(f.depth_mm, f.intrinsics, prev, **ask)
        crop = None
        new_track = not previous_centres(prev)
        floor = check is not None and check.min_score is not None
        if check is not None and new_track and (seg.alternatives or floor and seg.found):
            # a new track with something to judge: the candidates on the crops the pose engine would read
            # (the other found hands only when a floor may drop them: hand_states cuts theirs)
            n = len(seg.hands)
            cut = [
                self._cut(f, h) if i == 0 or i >= n or floor else None
                for i, h in enumerate((*seg.hands, *seg.alternatives))
            ]
            seg, k = check.judge(
                seg, [c.depth if c is not None and np.any(c.depth < 1.0) else None for c in cut]
            )
            crop = cut[k] if k >= 0 else None
        if check is not None and check.doubted_p_hand is not None and len(seg.hands) == 1 and seg.doubted:
            seg = self._keep_second(f, seg, seg.doubted[0], check.keeps_doubted)
        if check is not None and check.second_p_hand is not None and len(seg.hands) == 1:
            for cand in seg.second_candidates:
                seg = self._keep_second(f, seg, cand, check.keeps_second)
                if len(seg.hands) > 1:
                    break
        if cfg.lost_hand_frames > 0:
            self._lost = lost_hands(self._prev, self._lost, seg, cfg.track_radius_mm, cfg.lost_hand_frames)
        if len(seg.hands) > 1:
            self._since_two = 0
        elif self._since_two is not None:
            self._since_two += 1
        st.segmentation = seg
        if not seg.found:
            self._prev = None
            st.reason = seg.reason or "no hand"
            return
        det = seg.best
        if crop is None:
            crop = self._cut(f, det)
        self._prev = seg
        st.detection = det
        if not np.any(crop.depth < 1.0):  # 1 = background: nothing of the hand landed on a crop pixel
            st.detection, st.reason = None, "hand smaller than a crop pixel"
            return
        if self.centre is not None:
            crop = self._move_centre(st, crop, new_track)
            det = st.detection
        if check is not None and check.track_floor is not None:
            self._track = self._track or check.track()
            scored: list[float] = []

            def score_now() -> float:
                scored.append(check.p_hand(crop.depth))
                return check.track_score_of(scored[-1], det.confidence)

            mean = self._track.update(new_track, score_now)
            if scored and not new_track and check.doubts_tracked(scored[-1]) and len(seg.hands) == 1:
                found = self._rescued(st, det, check)
                if found is not None:
                    seg, det, crop = found
                    self._prev = seg
                    self._track = check.track()
                    mean = self._track.update(True, lambda: check.track_score(crop.depth, det.confidence))
                    self._centre_idle = None
            if mean < check.track_floor:
                # what the first hand's track holds has not looked like a hand: not reported, and let go so
                # that the next frame's candidates are judged afresh (the other hands stay this frame)
                self._prev, self._track = None, None
                st.detection, st.reason = None, "what was tracked does not look like a hand"
                return
        st.crop = crop

    def _cut(self, f: RGBDFrame, h):
        """The pose engine's crop of hand `h` (a HandDetection) in frame `f`: the cube around its centre,
        its mask's pixels."""
        from .preprocess import crop_cube

        return crop_cube(f.depth_mm, f.intrinsics, h.com_xyz_mm, self.cube_mm, self.crop_size, h.mask)

    def _rescued(self, st: FrameState, det, check):
        """(segmentation, hand, crop) of a candidate of the rescue detector that the presence check calls a
        hand, far from the tracked `det` (which it doubts), or None. A track started on a table object is
        kept by tracking while the main detector does not see the hand; the rescue detector, fine-tuned on
        close-range scenes, sees it on most such frames of the close-range tuning sets (BENCHMARKS.md)."""
        f, best = st.frame, None
        for h in self.segmenter.rescue_candidates(f.depth_mm, f.intrinsics):
            if np.linalg.norm(h.com_xyz_mm - det.com_xyz_mm) < check.rescue_min_distance_mm:
                continue
            c = self._cut(f, h)
            if not np.any(c.depth < 1.0):
                continue
            p = check.p_hand(c.depth)
            if p >= check.rescue_p_hand and (best is None or p > best[0]):
                best = (p, h, c)
        if best is None:
            return None
        _, h, c = best
        seg = replace(st.segmentation, hands=(h,))
        st.segmentation, st.detection = seg, h
        return seg, h, c

    def _move_centre(self, st: FrameState, crop, new_track: bool):
        """The first hand's centre moved where the centre engine, reading its crop, puts the hand: the crop
        is cut there again and the track goes on from it (the mask stays the segmenter's); returns the crop
        (with hand pixels, as `crop` has) and leaves the moved hand in `st.detection`, `st.segmentation`
        and the track.

        Only a hand found alone: with two hands in view, moving one of them cost the two-hand tuning
        sequences handedness. While the engine leaves a tracked hand's centre where it is, it is asked
        every few frames only (`CentreRefiner.idle_every`; BENCHMARKS.md, "The centre engine")."""
        ref, seg, f = self.centre, st.segmentation, st.frame
        if new_track:
            self._centre_idle = None
        if len(seg.hands) != 1:
            return crop
        if not ref.due(self._centre_idle):
            self._centre_idle += 1
            return crop
        moved = ref.moved(st.detection, crop, f.intrinsics)
        self._centre_idle = 0 if moved is None else None
        if moved is None:
            return crop
        recut = self._cut(f, moved)
        if not np.any(recut.depth < 1.0):
            return crop
        st.segmentation = self._prev = replace(seg, hands=(moved, *seg.hands[1:]))
        st.detection = moved
        return recut

    def _keep_second(self, f, seg, d, keeps):
        """`seg` with `d` as its second hand when `keeps` (a presence check's test) calls its crop a hand:
        a first hand set aside as convex as a jar (`Segmentation.doubted`: a fist is as convex), or a
        candidate the detector does not vouch for (`Segmentation.second_candidates`)."""
        first = seg.hands[0]
        if np.linalg.norm(d.com_xyz_mm - first.com_xyz_mm) < 80.0:
            return seg  # the presence check chose a first hand beside it
        if (
            abs(float(d.com_xyz_mm[2] - first.com_xyz_mm[2]))
            > self.segmenter.config.weak_second_max_depth_gap_mm
        ):
            return seg  # one user's hands lie within this of each other in depth; a jar behind need not
        c = self._cut(f, d)
        if not np.any(c.depth < 1.0) or not keeps(c.depth):
            return seg
        return replace(seg, hands=(*seg.hands, d))

    def hand_states(self, st: FrameState, max_hands: int) -> list[FrameState]:
        """One FrameState per hand the segmenter found (at most `max_hands`, best first), each with its own
        detection and crop, after `run(st)` on the frame: the per-hand stages then run on each. The best
        hand's crop is the one `run` already cut; a hand whose crop holds no hand pixel is left out."""
        seg = st.segmentation
        if seg is None or not seg.found:
            return []
        f = st.frame
        out = []
        for i, det in enumerate(seg.hands[:max_hands]):
            if i == 0:
                if st.crop is None:
                    continue
                crop = st.crop
            else:
                crop = self._cut(f, det)
                if not np.any(crop.depth < 1.0):
                    continue
            hs = FrameState(f)
            hs.segmentation, hs.detection, hs.crop = seg, det, crop
            out.append(hs)
        return out


@register_stage("pose", tasks=("pose",))
class PoseStage(Stage):
    """The pose engine: normalized cube (1, 1, S, S) -> joints (1, 3J) normalized -> camera mm."""

    reads = ("crop",)
    optional_reads = ("handedness",)  # a left hand is mirrored in, its joints mirrored back out
    writes = ("joints_raw_mm", "outputs")
    engine = "pose"
    needs_engine = True

    def __init__(self, engine, name: str = "pose") -> None:
        self.engine = engine
        self.name = name
        self._out = pose_output_name(engine)
        self._feed = None

    def run(self, st: FrameState) -> None:
        crop = st.crop
        if crop is None:
            return
        left = st.fields.get("handedness") == "left"
        out = self._reused(st, left)
        if out is None:
            out = self.engine.infer(pose_input(crop, left))[self._out]
        st.outputs[self.name] = out
        joints = pose_joints(out, crop, left)
        if joints is None:  # a NaN joint is no skeleton: report no hand, say why
            st.reason = "pose engine gave non-finite joints"
            return
        st.joints_raw_mm = joints

    def _reused(self, st: FrameState, left: bool) -> np.ndarray | None:
        """This engine's output on this crop (mirrored for a left hand) when the handedness stage's
        analysis-by-synthesis cue already ran the same engine on it this frame, else None."""
        done = st.fields.get(POSE_OUTPUTS)
        if done is None or done[0] != engine_identity(self.engine):
            return None
        return done[2] if left else done[1]


def pose_output_name(engine) -> str:
    """The output of a pose engine that holds the joints: "joints", or its only/first output."""
    outs = engine.output_names
    return "joints" if "joints" in outs else outs[0]


def pose_input(crop, left: bool) -> np.ndarray:
    """A pose engine's (1, 1, S, S) input: the crop, mirrored for a left hand (`mirror_crop`)."""
    x = mirror_crop(crop.depth) if left else crop.depth
    return x.reshape(1, 1, crop.size, crop.size)


def pose_joints(out: np.ndarray, crop, left: bool) -> np.ndarray | None:
    """Camera-mm joints from a pose engine's raw output on `pose_input(crop, left)`, mirrored back for a
    left hand; None when the output is not finite."""
    from .preprocess import denormalize_joints

    if not np.all(np.isfinite(out)):
        return None
    norm = np.asarray(out).reshape(-1, 3)
    return denormalize_joints(mirror_joints(norm) if left else norm, crop)


def mirror_crop(depth: np.ndarray) -> np.ndarray:
    """A crop mirrored left-right about its centre column, which is the cube centre's column: a left hand
    becomes a right hand, the only kind the shipped pose engine was trained on. Mirroring pixels about that
    column mirrors the 3-D points about the cube centre's x up to perspective (a point off the crop's depth
    centre lands slightly off its mirror position: under a pixel for a hand at 300+ mm)."""
    return np.ascontiguousarray(depth[:, ::-1])


def mirror_joints(norm: np.ndarray) -> np.ndarray:
    """Normalized cube joints (J, 3) mirrored in x about the cube centre: the inverse of `mirror_crop` for
    the joints the engine found in the mirrored crop."""
    out = np.array(norm, dtype=np.float32, copy=True)
    out[:, 0] *= -1.0
    return out


@register_stage("engine")
class EngineStage(Stage):
    """Any other engine, selected by name (--models): fed the same cube crop, depth or RGB-D as its
    manifest says; its raw outputs land in FrameResult.outputs[name]."""

    reads = ("crop",)
    optional_reads = ("detection",)
    writes = ("outputs",)
    needs_engine = True

    def __init__(self, engine, name: str) -> None:
        self.engine = engine
        self.name = name
        pre = dict(getattr(engine.manifest, "preprocessing", {}) or {})
        self.input_kind = str(pre.get("input", "depth"))
        self.size = int(pre.get("crop_size") or 96)
        self.uses_color = self.input_kind != "depth"

    def run(self, st: FrameState) -> None:
        crop = st.crop
        if crop is None:
            return
        if self.input_kind == "depth":
            x = crop.depth
            if crop.size != self.size:
                import cv2

                x = cv2.resize(x, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
            feed = x.reshape(1, 1, self.size, self.size)
        else:
            from .preprocess import crop_rgb

            if st.frame.color_bgr is None:
                st.outputs[self.name] = np.empty(0, np.float32)
                return
            mask = st.detection.mask if st.detection is not None else None
            rgb = crop_rgb(st.frame.color_bgr, crop, mask)[None]  # (1, 3, S, S) at the crop's size
            feed = np.concatenate([rgb, crop.depth[None, None]], 1) if self.input_kind == "rgbd" else rgb
            if crop.size != self.size:
                import cv2

                chw = feed[0].transpose(1, 2, 0)
                feed = cv2.resize(chw, (self.size, self.size)).reshape(self.size, self.size, -1)
                feed = feed.transpose(2, 0, 1)[None]
        st.outputs[self.name] = next(iter(self.engine.infer(np.ascontiguousarray(feed)).values()))


@register_stage("smooth")
class SmoothStage(Stage):
    """One Euro over all joint coordinates (mm), on the frame's own timestamps; reset when the hand is
    lost so a re-acquired hand does not slide in from where the old one was. Also projects to pixels."""

    name = "smooth"
    always = True
    optional_reads = ("joints_raw_mm",)  # a pipeline without a pose engine still smooths nothing
    writes = ("joints_mm", "joints_uvd")

    def __init__(self, config: OneEuroConfig | None = None, enabled: bool = True) -> None:
        self.filter = OneEuroFilter(config)
        self.enabled = enabled

    def reset(self) -> None:
        self.filter = OneEuroFilter(self.filter.config)  # a fresh filter, never shared with a fork

    def run(self, st: FrameState) -> None:
        j = st.joints_raw_mm
        if j is None:
            self.filter.reset()
            return
        st.joints_mm = self.filter(j, st.frame.timestamp_ms * 1e-3) if self.enabled else j
        st.joints_uvd = xyz_to_uvd(st.joints_mm, st.frame.intrinsics)


@register_stage("overlay")
class OverlayStage(Stage):
    """Draw the annotated side-by-side view (overlay.py) into st.image, with every stage's drawing."""

    name = "overlay"
    always = True
    reads = ("frame",)
    optional_reads = ("detection", "crop", "joints_uvd", "reason")
    writes = ("image",)
    uses_color = True  # draws on the colour image when the frame has one

    def __init__(self, overlay=None) -> None:
        from .overlay import Overlay

        self.overlay = overlay or Overlay()

    def run(self, st: FrameState) -> None:
        st.image = self.overlay.draw(st)
