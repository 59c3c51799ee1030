"""Two hands through the whole runtime on held-out generator sequences (`SceneConfig(two_hands=True)`: the
first hand right, the second left), with our own segmentation, tracking, handedness and pose engine.

    python -m train.handedness.evaluate --sequences 8 --frames 60 --seed 4242 [--no-mirror] [--json]

Per frame with both hands in view (each with >= `--min-px` measured pixels): both hands found (two found
hands, each on a different generator hand). A found hand is on a generator hand when its centre lies
within 45 mm of that hand's palm centre and over 80 mm from the other's (overlapping hands, whose centres
fall between the two, count for neither). `both_found_within_80mm` allows 80 mm to its own palm: the
centre of a hand's pixels lies 45-60 mm from the palm's centre when the fingers are stretched, and such a
hand, far from the other, is found all the same. `both_found_by_skeleton` judges each hand by the palm of
the skeleton the runtime reports for it (the mean of its wrist and four MCPs) instead of its pixel centre,
with the same 45 / 80 mm rule: what a user sees drawn, wherever the crop was centred.
`both_found_matched_by_skeleton` pairs the drawn skeletons with the generator hands one to one and asks each
palm within 45 mm of its own, without the 80 mm rule: hands whose palms lie under 125 mm apart (touching,
one across the other) cannot pass that rule even when drawn exactly. The same measures on the frames where
both hands are clearly visible (`clear`: visibility >= 0.6 as `handstream eval segmentation` defines it,
the geometrically visible pixels over those of the hand rendered alone by a padded camera): a hand mostly
hidden or outside the picture, a few fingers at the border, is a legitimate "no hand" there, while
`--min-px` counts any hand with that many measured pixels. Handedness is scored
on those hands, per frame (the track's label that frame) and per track (its label on its last frame on
each generator hand it was on: a track that changed hands, after hands overlapped, counts once per hand).
An id swap is an id on one generator hand on a frame and on the other on the next frame; an id that comes
out of frames where the hands overlap (no hand clearly on either) on the other hand is counted apart
(`id_swaps_after_overlap`): there the centres alone cannot tell which hand is which. Pose error: mean joint
distance to the generator's joints, for right and left hands apart; `--no-mirror` runs the pose engine unmirrored on left hands (the comparison
that says what mirroring buys). Uses no torch: only the runtime.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np


def _palm(j: np.ndarray) -> np.ndarray:
    return np.asarray(j, np.float64)[[0, 5, 9, 13, 17]].mean(0)


def which_hand(truth: dict, com: np.ndarray, near_mm: float = 45.0, far_mm: float = 80.0) -> str | None:
    """The generator hand ("right"/"left": key of `truth`, side -> joints) a found hand's centre is on;
    None when ambiguous or on none."""
    d = {k: float(np.linalg.norm(com - _palm(j))) for k, j in truth.items()}
    near = min(d, key=d.get)
    ok = d[near] < near_mm and all(v > far_mm for k, v in d.items() if k != near)
    return near if ok else None


def matched(truth: dict, points: list[np.ndarray], near_mm: float = 45.0) -> int:
    """How many generator hands (`truth`: side -> joints) the found hands' `points` reach when paired one to
    one, each within `near_mm` of its hand's palm (the best of the pairings)."""
    palms = [_palm(j) for j in truth.values()]
    close = [[float(np.linalg.norm(p - q)) < near_mm for q in palms] for p in points]
    best = 0
    for order in itertools.permutations(range(len(points)), min(len(points), len(palms))):
        best = max(best, sum(close[i][k] for k, i in enumerate(order)))
    return best


def visibility(s, alone) -> dict[str, float]:
    """Each generator hand's visibility (side -> share) as `handstream eval segmentation` measures it: its
    visible pixels over the pixels of the same hand rendered alone through `alone` (its padded camera)."""
    from train.eval_segmentation import _gt_hand

    hands = {"right": (s.mask, s.joints_xyz_mm, s.frame.meta["hand_geometry"])}
    for o, g in zip(s.other_hands, s.frame.meta.get("other_hand_geometries", ())):
        hands["left"] = (o.mask, o.joints_xyz_mm, g)
    d = s.frame.depth_mm
    return {k: _gt_hand(m, j, d, g, alone).visibility for k, (m, j, g) in hands.items()}


def mirrored(frame):
    """The frame as a mirror shows it (columns reversed, the principal point with them): geometrically
    its right hand is a left hand, at the mirrored (x -> -x) joints."""
    from dataclasses import replace

    from stream.frames import RGBDFrame

    intr = replace(frame.intrinsics, cx=frame.intrinsics.width - 1 - frame.intrinsics.cx)
    depth = np.ascontiguousarray(frame.depth_mm[:, ::-1])
    return RGBDFrame(frame.index, frame.timestamp_ms, depth, intr, source="mirror")


def labelled(s, mirror_frames: bool):
    """(frame, {side: joints}, {side: mask}) of a generator sample, mirrored when asked."""
    truth = {"right": s.joints_xyz_mm}
    masks = {"right": s.mask}
    if s.other_hands:
        truth["left"], masks["left"] = s.other_hands[0].joints_xyz_mm, s.other_hands[0].mask
    if not mirror_frames:
        return s.frame, truth, masks
    flip = np.array([-1.0, 1.0, 1.0], np.float32)
    other = {"right": "left", "left": "right"}
    return (
        mirrored(s.frame),
        {other[k]: j * flip for k, j in truth.items()},
        {other[k]: m[:, ::-1] for k, m in masks.items()},
    )


def pipeline(mirror: bool, max_hands: int = 2, detector: str | None = None, seg_changes: dict | None = None):
    """The default two-hand pipeline (no overlay, one thread); without the handedness stage when not
    `mirror` (then every hand goes through the pose engine as it is); `detector`: another detector engine
    (.onnx beside its manifest) in the segmenter, a candidate judged before it is shipped; `seg_changes`:
    SegmenterConfig fields to change (thresholds tuned for such a candidate)."""
    from dataclasses import replace

    from stream.pipeline import Pipeline, build_pipeline
    from stream.preprocess import HandSegmenter

    p = build_pipeline(backend="onnxruntime", models="pose", overlay=False, threads=1, max_hands=max_hands)
    changes = {**(seg_changes or {}), **({"detector_engine": detector} if detector else {})}
    for s in p.stages if changes else ():
        if hasattr(s, "segmenter"):
            s.segmenter = HandSegmenter(replace(s.segmenter.config, **changes))
    if mirror or max_hands == 1:
        return p
    stages = [s for s in p.stages if s.name != "handedness"]
    return Pipeline(stages, engines=p.engines, max_hands=max_hands)


def evaluate(
    sequences: int,
    frames: int,
    seed: int,
    mirror: bool = True,
    min_px: int = 150,
    two_hands: bool = True,
    max_hands: int = 2,
    mirror_frames: bool = False,
    detector: str | None = None,
    seg_changes: dict | None = None,
    scene_kind: str = "frontal",
) -> dict:
    from stream.frames import KNOWN_CAMERAS
    from stream.synth import HandSynthesizer, SceneConfig
    from train.eval_segmentation import CLEAR_VISIBILITY, _Alone

    cfg = SceneConfig(camera=KNOWN_CAMERAS["d435_320x240"], two_hands=two_hands, scene_kind=scene_kind)
    synth = HandSynthesizer(cfg, seed)
    alone = _Alone(cfg.camera)
    both_visible = both_found = both_found_80 = both_found_skeleton = both_matched = 0
    clear = clear_found = clear_skeleton = clear_matched = 0
    side_ok = side_n = 0
    raw_ok = raw_n = 0
    err = {"right": [], "left": []}
    swaps = swaps_after_overlap = 0
    tracks_total = tracks_ok = 0
    ms = []
    first_visible = first_found = 0
    with pipeline(mirror, max_hands, detector, seg_changes) as p:
        for _ in range(sequences):
            p.reset()
            id_sides: dict[int, list[tuple[int, str, str | None]]] = {}
            for s in synth.sequence(frames):
                frame, truth, masks = labelled(s, mirror_frames)
                t0 = time.perf_counter()
                r = p.process(frame)
                ms.append((time.perf_counter() - t0) * 1e3)
                seen = frame.depth_mm > 0
                shown = {k: int((m & seen).sum()) >= min_px for k, m in masks.items()}
                vis = len(shown) == 2 and all(shown.values())
                on = {}
                found = r.hands if r.hands is not None else [_one_hand(r)] if r.hand_found else []
                for h in found:
                    side = which_hand(truth, h.com_xyz_mm)
                    if side is None:
                        continue
                    on[h.id] = side
                    id_sides.setdefault(h.id, []).append((s.frame_index, side, h.handedness))
                    side_n += 1
                    side_ok += h.handedness == side
                    raw = h.fields.get("handedness_frame")  # absent once the track's side is settled
                    raw_n += raw is not None
                    raw_ok += raw == side
                    err[side].append(float(np.linalg.norm(h.joints_xyz_mm - truth[side], axis=1).mean()))
                if len(truth) == 2:
                    two = len(set(on.values())) == 2
                    skeletons = [_palm(h.joints_xyz_mm) for h in found if h.joints_xyz_mm is not None]
                    drawn = {which_hand(truth, q) for q in skeletons} - {None}
                    pairs = matched(truth, skeletons) == 2
                if vis:
                    both_visible += 1
                    both_found += two
                    loose = {which_hand(truth, h.com_xyz_mm, near_mm=80.0) for h in found}
                    both_found_80 += len(loose - {None}) == 2
                    both_found_skeleton += len(drawn) == 2
                    both_matched += pairs
                if len(truth) == 2 and min(visibility(s, alone).values()) >= CLEAR_VISIBILITY:
                    clear += 1
                    clear_found += two
                    clear_skeleton += len(drawn) == 2
                    clear_matched += pairs
                first = "left" if mirror_frames else "right"  # the generator's first hand
                if shown[first]:
                    first_visible += 1
                    first_found += first in on.values()
            for seen_at in id_sides.values():
                for (i0, a, _), (i1, b, _) in zip(seen_at, seen_at[1:]):
                    if a != b:  # on one frame and the next, or across frames where the hands overlapped
                        swaps += i1 == i0 + 1
                        swaps_after_overlap += i1 > i0 + 1
                # per track and generator hand: its label on its last frame on that hand
                last = {side: label for _, side, label in seen_at}
                tracks_total += len(last)
                tracks_ok += sum(label == side for side, label in last.items())
    return {
        "scene": ("two hands" if two_hands else "one hand")
        + ("" if scene_kind == "frontal" else f", {scene_kind}"),
        "max_hands": max_hands,
        "mirrored_frames": mirror_frames,
        "first_hand_found": first_found / max(first_visible, 1),
        "sequences": sequences,
        "frames": sequences * frames,
        "seed": seed,
        "mirror_left_hands": mirror,
        "frames_both_visible": both_visible,
        "both_found": both_found / max(both_visible, 1),
        "both_found_within_80mm": both_found_80 / max(both_visible, 1),
        "both_found_by_skeleton": both_found_skeleton / max(both_visible, 1),
        "both_found_matched_by_skeleton": both_matched / max(both_visible, 1),
        "frames_both_clear": clear,
        "clear_both_found": clear_found / max(clear, 1),
        "clear_both_found_by_skeleton": clear_skeleton / max(clear, 1),
        "clear_both_found_matched_by_skeleton": clear_matched / max(clear, 1),
        "hands_on_a_generator_hand": side_n,
        "handedness_accuracy_per_frame": side_ok / max(side_n, 1),
        "handedness_engine_alone_per_frame": raw_ok / max(raw_n, 1),
        "tracks": tracks_total,
        "handedness_accuracy_per_track": tracks_ok / max(tracks_total, 1),
        "id_swaps": swaps,
        "id_swaps_after_overlap": swaps_after_overlap,
        "pose_error_mm": {k: (float(np.mean(v)) if v else None) for k, v in err.items()},
        "pose_error_n": {k: len(v) for k, v in err.items()},
        "process_ms_median": float(np.median(ms)),
    }


def _one_hand(r):
    """A one-hand pipeline's result as a hand entry (id 0, no handedness)."""
    from stream.pipeline import HandResult

    return HandResult(
        0,
        None,
        0.0,
        r.joints_xyz_mm,
        r.joints_uvd,
        r.joints_raw_xyz_mm,
        r.com_xyz_mm,
        r.confidence,
        1,
        r.fields,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--min-px", type=int, default=150)
    ap.add_argument("--no-mirror", action="store_true", help="left hands through the pose engine unmirrored")
    ap.add_argument("--one-hand", action="store_true", help="the generator's one-hand scene instead")
    ap.add_argument("--max-hands", type=int, default=2, choices=(1, 2))
    ap.add_argument(
        "--mirror-frames",
        action="store_true",
        help="every frame mirrored: the first hand is then a left hand",
    )
    ap.add_argument(
        "--detector", help="a detector engine (.onnx with its manifest) instead of the shipped one"
    )
    ap.add_argument(
        "--set", action="append", default=[], help="NAME=VALUE: one SegmenterConfig field (a number)"
    )
    ap.add_argument(
        "--scene", default="frontal", help="scene kind (frontal, egocentric, desk, mixed); default frontal"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    changes = {}
    for item in args.set:
        name, _, value = item.partition("=")
        changes[name.strip()] = float(value)
    rep = evaluate(
        args.sequences,
        args.frames,
        args.seed,
        not args.no_mirror,
        args.min_px,
        two_hands=not args.one_hand,
        max_hands=args.max_hands,
        mirror_frames=args.mirror_frames,
        detector=args.detector,
        seg_changes=changes,
        scene_kind=args.scene,
    )
    print(json.dumps(rep, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
