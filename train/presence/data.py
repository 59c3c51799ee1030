"""Hand-presence crops: the pose engine's normalized depth cube around every candidate the segmenter's
detector proposes in generator frames, labelled hand or not.

The detector (engines/default/detector.onnx) also fires on objects: a ball or box held between the camera
and the hand (`SceneConfig.occluder_prob`), jars and cups on a table, a sleeve. When such a peak outscores
the hand's, the pose engine and the fit run on the object and the skeleton lands 100-500 mm off. MediaPipe's
landmark model answers the same question with a hand-presence score on its crop; this is ours, on the crop
the pose engine reads. Candidates are cut as the runtime cuts them (the detector's peaks >= `min_peak`,
`refine.learned_hand` around each, `crop_cube` at the pose engine's cube and size, plus the segmenter's
own first hands), and labelled by where their centre lies: within `hand_mm` of a generator hand's joint =
a hand, beyond `other_mm` of every hand's joints = not a hand; between the two (a forearm, a wrist, a
centre pulled between two hands) is left out. Subjects and seeds are apart from the test sets'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.arrays import ArraySet

# the scene kinds drawn, with their shares: the frontal user the shipped engines were trained on, and the
# close-range scenes where the detector fires on held and table objects
KINDS = (("frontal", 0.6), ("egocentric", 0.2), ("desk", 0.2))


@dataclass(eq=False)
class PresenceCrops(ArraySet):
    """depth (N, S, S) float16 normalized crops; hand (N,) uint8 (1 = a hand); peak (N,) the detector's
    score of the candidate; frame (N,) int, the frame it came from (in its own set: concatenated sets keep
    each one's); kind (N,) int, index into KINDS."""

    depth: np.ndarray
    hand: np.ndarray
    peak: np.ndarray
    frame: np.ndarray
    kind: np.ndarray

    compressed = False

    @classmethod
    def from_lists(
        cls, depth: list, hand: list, peak: list, frame: list, kind: list, size: int = 64
    ) -> PresenceCrops:
        """The crops gathered one by one (depth arrays, labels, peaks, frame and kind indices); none: an
        empty set of (0, size, size) crops."""
        return cls(
            np.stack(depth) if depth else np.zeros((0, size, size), np.float16),
            np.array(hand, np.uint8),
            np.array(peak, np.float32),
            np.array(frame, np.int32),
            np.array(kind, np.int8),
        )


def candidates(seg, depth_mm, intr, min_peak: float) -> list:
    """(HandDetection, peak score) of every candidate a frame offers: the segmenter's own hands (no
    tracking), then the learned hand around each other detector peak >= `min_peak` (80 mm apart)."""
    from stream.geometry import uvd_to_xyz
    from stream.preprocess.segment.candidates import peak_depth
    from stream.preprocess.segment.refine import learned_hand

    s = seg.segment(depth_mm, intr)
    out = [(h, float(h.confidence)) for h in s.hands]
    cfg, det = seg.config, seg.detector
    res = det.run(depth_mm, cfg.max_valid_depth_mm)
    lo_m, hi_m = cfg.min_depth_mm / det.depth_scale_mm, cfg.max_depth_mm / det.depth_scale_mm
    snap = cfg.hand_depth_snap_mm / det.depth_scale_mm
    for pk in det.peaks(res, min_peak, 6):
        d_mm = peak_depth(res, pk.cell_uv, lo_m, hi_m, snap) * det.depth_scale_mm
        if not d_mm > 0:
            continue
        c = uvd_to_xyz(np.array([pk.frame_uv[0], pk.frame_uv[1], d_mm]), intr)
        if any(np.linalg.norm(c - h.com_xyz_mm) < 80.0 for h, _ in out):
            continue
        h = learned_hand(cfg, depth_mm, intr, res, pk.score, c, [])
        if h is not None and all(np.linalg.norm(h.com_xyz_mm - o.com_xyz_mm) >= 80.0 for o, _ in out):
            out.append((h, float(pk.score)))
    return out


def pose_crop_geometry() -> tuple[float, int]:
    """(cube mm, crop size) of the shipped pose engine: the crop the presence engine reads is its input."""
    from engines.manifest import load_manifest
    from engines.registry import resolve_engine_path

    pre = load_manifest(resolve_engine_path("pose")).preprocessing
    return float(pre["cube_mm"]), int(pre["crop_size"])


def make_crops(
    n_frames: int,
    seed: int,
    subject_offset: int = 1000,
    min_peak: float = 0.1,
    hand_mm: float = 40.0,
    other_mm: float = 80.0,
    progress: bool = False,
    empty_share: float = 0.0,
) -> PresenceCrops:
    """Labelled candidate crops of `n_frames` independent generator frames (scene kinds as KINDS, a quarter
    with two hands). `empty_share`: this share of the frames shows the same kinds of scene with the hands
    out of view (`SceneConfig.hands_visible=False`): there the detector fires on boxes, cups and sleeves
    with no hand to outscore them, which the frames with hands seldom show, and every candidate is not a
    hand."""
    if not 0.0 <= empty_share <= 1.0:
        raise ValueError(f"empty_share must lie in [0, 1], got {empty_share}")
    from dataclasses import replace

    from stream.preprocess import HandSegmenter, crop_cube
    from train.data import default_scene, subject_synthesizer

    cube, size = pose_crop_geometry()
    seg = HandSegmenter()
    base = replace(default_scene(), color=False)
    synths = {
        (k, two, seen): subject_synthesizer(
            replace(base, scene_kind=k, two_hands=two, hands_visible=seen),
            seed + 7 * i + two + 3 * (not seen),
            subject_offset,
        )
        for i, (k, _) in enumerate(KINDS)
        for two in (False, True)
        for seen in (True, False)
    }
    rng = np.random.default_rng([seed, 11])
    shares = np.array([p for _, p in KINDS])
    depth, hand, peak, frame, kind = [], [], [], [], []
    for n in range(n_frames):
        ki = int(rng.choice(len(KINDS), p=shares / shares.sum()))
        two = bool(rng.random() < 0.25)
        seen = not (empty_share > 0.0 and rng.random() < empty_share)
        s = synths[(KINDS[ki][0], two, seen)].sample_at(n)
        f = s.frame
        joints = [s.joints_xyz_mm] + [o.joints_xyz_mm for o in s.other_hands]
        gt = np.concatenate(joints).astype(np.float64)
        for h, score in candidates(seg, f.depth_mm, f.intrinsics, min_peak):
            d = float(np.linalg.norm(gt - h.com_xyz_mm, axis=1).min()) if seen else np.inf
            if hand_mm < d <= other_mm:
                continue
            c = crop_cube(f.depth_mm, f.intrinsics, h.com_xyz_mm, cube, size, h.mask)
            if not np.any(c.depth < 1.0):
                continue
            depth.append(c.depth.astype(np.float16))
            hand.append(int(d <= hand_mm))
            peak.append(score)
            frame.append(n)
            kind.append(ki)
        if progress and (n + 1) % 250 == 0:
            print(
                f"  {n + 1}/{n_frames} frames, {len(hand)} crops, {len(hand) - sum(hand)} not hands",
                flush=True,
            )
    return PresenceCrops.from_lists(depth, hand, peak, frame, kind, size)


def _label(com_xyz: np.ndarray, truth: list, intr, other_mm: float) -> int | None:
    """A crop centred at `com_xyz` is a hand (1) where `handstream eval synthetic` says a result there is on
    a hand (its centre near one of the hand's visible pixels: a hand holding a cup counts), not a hand (0)
    where it also lies `other_mm` from every joint, and left out (None) between the two."""
    from train.eval_synthetic import on_hand

    if any(on_hand(com_xyz, t, intr) for t in truth):
        return 1
    if all(np.linalg.norm(t.joints_xyz_mm - com_xyz, axis=1).min() > other_mm for t in truth):
        return 0
    return None


def _through_stage(
    pre, n_frames: int, seed: int, seq_len: int, rng, draw, crops_of, progress: bool, size: int
):
    """Crops of generator sequences run through the preprocess stage `pre` as the pipeline runs it:
    `draw(rng)` gives each sequence's (index into KINDS, two hands?, hands in view?), and `crops_of(st,
    sample, truth)` the (crop depth, label, peak) of one frame after `pre.run` (`truth()` gives the frame's
    labelled hands)."""
    from stream.frames import KNOWN_CAMERAS, RGBDFrame
    from stream.stages import FrameState
    from train.eval_segmentation import _Alone
    from train.eval_synthetic import scene_frames, truth_hands

    cam = "d435_320x240"
    alone = _Alone(KNOWN_CAMERAS[cam])
    depth, hand, peak, frame, kind = [], [], [], [], []
    n = seq = 0
    while n < n_frames:
        ki, two, seen = draw(rng)
        length = min(seq_len, n_frames - n)
        pre.reset()
        for _, s in scene_frames(KINDS[ki][0], length, seed * 1000 + seq, cam, two, length, seen):
            f = s.frame
            st = FrameState(
                RGBDFrame(index=n, timestamp_ms=0.0, depth_mm=f.depth_mm, intrinsics=f.intrinsics)
            )
            pre.run(st)
            for d, label, pk in crops_of(st, s, lambda s=s: truth_hands(s, alone)):
                depth.append(d.astype(np.float16))
                hand.append(label)
                peak.append(pk)
                frame.append(n)
                kind.append(ki)
            n += 1
        seq += 1
        if progress:
            print(
                f"  {n}/{n_frames} frames, {len(hand)} crops, {len(hand) - sum(hand)} not hands", flush=True
            )
    return PresenceCrops.from_lists(depth, hand, peak, frame, kind, size)


def _kind(rng) -> int:
    """A sequence's scene kind, an index into KINDS drawn with their shares."""
    shares = np.array([p for _, p in KINDS])
    return int(rng.choice(len(KINDS), p=shares / shares.sum()))


def tracked_crops(
    n_frames: int,
    seed: int,
    empty_share: float = 0.25,
    other_mm: float = 80.0,
    seq_len: int = 60,
    progress: bool = False,
) -> PresenceCrops:
    """Labelled crops of the hand the runtime *tracks*: generator sequences of every kind in KINDS (the
    hands out of view in `empty_share` of them) through the preprocess stage as the pipeline runs it
    (tracking on, the presence check choosing a new track's hand), one crop a frame where it reports a hand,
    labelled by `_label`. The candidates of `make_crops` are new tracks' first frames; these are what a
    tracked hand's crop looks like frame after frame, including the objects a track started on and kept,
    which a check of tracked hands must refuse."""
    import engines
    from stream.hands.presence import PresenceCheck
    from stream.preprocess import HandSegmenter
    from stream.stages import PreprocessStage

    cube, size = pose_crop_geometry()
    # no floor on a track's presence: the crops are what tracking keeps without one (the objects a floor is to
    # refuse among them); the shipped engine's were made with the engine before it choosing new tracks
    check = PresenceCheck(engines.load_engine("presence", backend="onnxruntime", threads=1), track_floor=None)
    pre = PreprocessStage(cube_mm=cube, crop_size=size, segmenter=HandSegmenter(), presence=check)

    def draw(rng) -> tuple[int, bool, bool]:
        ki = _kind(rng)
        return ki, False, not (empty_share > 0.0 and rng.random() < empty_share)

    def crops_of(st, s, truth) -> list:
        if st.crop is None:
            return []
        label = _label(st.detection.com_xyz_mm, truth(), s.frame.intrinsics, other_mm)
        return [] if label is None else [(st.crop.depth, label, float(st.detection.confidence))]

    rng = np.random.default_rng([seed, 13])
    return _through_stage(pre, n_frames, seed, seq_len, rng, draw, crops_of, progress, size)


def second_crops(
    n_frames: int,
    seed: int,
    two_share: float = 0.5,
    other_mm: float = 80.0,
    seq_len: int = 60,
    progress: bool = False,
) -> PresenceCrops:
    """Labelled crops of the second-hand candidates the segmenter offers where a second hand has room
    (`Segmentation.second_candidates`: a lost hand of the previous two-hand frame cut again where it was, the
    hands of weak peaks): generator sequences of every kind in KINDS, `two_share` of them with two hands,
    through the preprocess stage as the two-hand pipeline runs it, every candidate of every frame (up to
    three a frame, from peaks >= 0.1, more than the runtime asks for). Labelled by `_label`, and a candidate
    on a hand the segmenter's rules found already (two centres on one hand) is left out. These crops are
    unlike a new track's candidates or a tracked hand: a second hand the detector barely sees is often cut
    by the image's border or half hidden by the other, and the weak peaks of one-hand scenes lie on boxes,
    slabs and forearms."""
    from dataclasses import replace

    import engines
    from stream.hands.presence import PresenceCheck
    from stream.preprocess import HandSegmenter, SegmenterConfig, crop_cube
    from stream.stages import PreprocessStage
    from train.eval_synthetic import on_hand

    cube, size = pose_crop_geometry()
    check = PresenceCheck(engines.load_engine("presence", backend="onnxruntime", threads=1))
    seg = HandSegmenter(replace(SegmenterConfig(), max_second_candidates=3, second_candidate_presence=0.1))
    pre = PreprocessStage(cube_mm=cube, crop_size=size, segmenter=seg, presence=check)

    def draw(rng) -> tuple[int, bool, bool]:
        ki = _kind(rng)
        return ki, bool(rng.random() < two_share), True

    def crops_of(st, s, truth) -> list:
        got, f = st.segmentation, s.frame
        if got is None or not got.second_candidates:
            return []
        hands = truth()
        ruled = [h for h in got.hands if not any(h is c for c in got.second_candidates)]
        taken = {i for i, t in enumerate(hands) for h in ruled if on_hand(h.com_xyz_mm, t, f.intrinsics)}
        out = []
        for h in got.second_candidates:
            if any(i in taken for i, t in enumerate(hands) if on_hand(h.com_xyz_mm, t, f.intrinsics)):
                continue
            label = _label(h.com_xyz_mm, hands, f.intrinsics, other_mm)
            c = crop_cube(f.depth_mm, f.intrinsics, h.com_xyz_mm, cube, size, h.mask)
            if label is not None and np.any(c.depth < 1.0):
                out.append((c.depth, label, float(h.confidence)))
        return out

    rng = np.random.default_rng([seed, 17])
    return _through_stage(pre, n_frames, seed, seq_len, rng, draw, crops_of, progress, size)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="write hand-presence crops (npz) from the generator")
    ap.add_argument("--out", required=True)
    ap.add_argument("--frames", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=600)
    ap.add_argument("--subject-offset", type=int, default=1000)
    ap.add_argument(
        "--empty-share", type=float, default=0.0, help="share of frames with the hands out of view (0-1)"
    )
    ap.add_argument(
        "--tracked",
        action="store_true",
        help="crops of the hand the runtime tracks through generator sequences (tracked_crops), not a new "
        "track's candidates; --empty-share is then the share of sequences with no hand in view",
    )
    ap.add_argument(
        "--second",
        action="store_true",
        help="crops of the second-hand candidates through generator sequences, half of them with two hands "
        "(second_crops)",
    )
    ap.add_argument("--two-share", type=float, default=0.5, help="--second: share of two-hand sequences")
    args = ap.parse_args(argv)
    if args.second:
        crops = second_crops(args.frames, args.seed, args.two_share, progress=True)
    elif args.tracked:
        crops = tracked_crops(args.frames, args.seed, args.empty_share, progress=True)
    else:
        crops = make_crops(
            args.frames, args.seed, args.subject_offset, progress=True, empty_share=args.empty_share
        )
    crops.save(args.out)
    print(f"{len(crops)} crops ({int(crops.hand.sum())} hands) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
