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
from pathlib import Path

import numpy as np

# the scene kinds drawn, with their shares: the frontal user the shipped engines were trained on, and the
# close-range scenes where the detector fires on held and table objects
KINDS = (("frontal", 0.6), ("egocentric", 0.2), ("desk", 0.2))


@dataclass(eq=False)
class PresenceCrops:
    """depth (N, S, S) float16 normalized crops; hand (N,) uint8 (1 = a hand); peak (N,) the detector's
    score of the candidate; frame (N,) int, the frame it came from; kind (N,) int, index into KINDS."""

    depth: np.ndarray
    hand: np.ndarray
    peak: np.ndarray
    frame: np.ndarray
    kind: np.ndarray

    def __len__(self) -> int:
        return len(self.hand)

    def save(self, path: str | Path) -> None:
        np.savez(path, depth=self.depth, hand=self.hand, peak=self.peak, frame=self.frame, kind=self.kind)

    @classmethod
    def load(cls, path: str | Path) -> PresenceCrops:
        z = np.load(path)
        return cls(z["depth"], z["hand"], z["peak"], z["frame"], z["kind"])


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

    from engines.manifest import load_manifest
    from engines.registry import resolve_engine_path
    from stream.preprocess import HandSegmenter, crop_cube
    from train.data import default_scene, subject_synthesizer

    pre = load_manifest(resolve_engine_path("pose")).preprocessing
    cube, size = float(pre["cube_mm"]), int(pre["crop_size"])
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
    return PresenceCrops(
        np.stack(depth),
        np.array(hand, np.uint8),
        np.array(peak, np.float32),
        np.array(frame, np.int32),
        np.array(kind, np.int8),
    )


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
    args = ap.parse_args(argv)
    crops = make_crops(
        args.frames, args.seed, args.subject_offset, progress=True, empty_share=args.empty_share
    )
    crops.save(args.out)
    print(f"{len(crops)} crops ({int(crops.hand.sum())} hands) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
