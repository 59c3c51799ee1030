"""Why the second hand is lost: on held-out two-hand sequences, every frame with both hands in view where
they are not both found gets one cause, the first that applies (same scenes and "on a hand" rule as
`train.handedness.evaluate`).

    python -m train.handedness.why_lost --seed 4242 [--sequences 8] [--frames 60] [--detector CANDIDATE.onnx]

Causes, in order: a found centre between the two hands (one blob: the hands overlap or touch in view); a
found centre 45-80 mm from its own palm and far from the other (a hand found, its pixel centre pulled by
stretched fingers); neither hand found; palms under 100 mm apart; no detector peak (>= 0.02) on the missed
hand; its peak under the second-hand threshold (halved where the last frame had a hand there); the peak
beyond the ones the segmenter reads; no depth at the peak; its mask rejected; the depth-gap rule; its
centre within 80 mm of the first hand; else lost later (look-behind, crop, fallback). `both_found_by`
gives the share of frames with both hands found by how far apart the palms are (touching hands seldom
count: a found hand must also lie over 80 mm from the other palm) and by the pixels of the less visible
hand (a hand at the border shows a few fingers). Uses no torch.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np

from .evaluate import _palm, labelled, pipeline, which_hand


def peak_cause(p, frame, truth: dict, masks: dict, on: dict, miss: str, prev) -> str:
    """Why the missed hand `miss` got no hand of its own, from the detector's peaks on it."""
    import cv2

    from stream.geometry import uvd_to_xyz
    from stream.preprocess.segment.candidates import peak_depth
    from stream.preprocess.segment.refine import learned_hand

    seg = p.stages[0].segmenter
    det, cfg = seg.detector, seg.config
    out = det.run(frame.depth_mm, cfg.max_valid_depth_mm)
    pks = det.peaks(out, 0.02, 10)
    m = cv2.dilate(masks[miss].astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    h, w = m.shape
    inside = [
        (i, pk)
        for i, pk in enumerate(pks)
        if m[min(int(round(pk.frame_uv[1])), h - 1), min(int(round(pk.frame_uv[0])), w - 1)]
    ]
    if not inside:
        return "no detector peak on it (>= 0.02)"
    rank, pk = inside[0]
    palm = _palm(truth[miss])
    tracked = (
        prev is not None and prev.found and any(np.linalg.norm(palm - q.com_xyz_mm) < 120 for q in prev.hands)
    )
    if pk.score < cfg.second_hand_threshold * (0.5 if tracked else 1.0):
        return "its peak under the second-hand threshold" + (
            " (tracked: under half of it)" if tracked else ""
        )
    if rank >= cfg.max_hands + 2:
        return "its peak beyond the ones the segmenter reads"
    lo, hi = cfg.min_depth_mm / det.depth_scale_mm, cfg.max_depth_mm / det.depth_scale_mm
    d = peak_depth(out, pk.cell_uv, lo, hi, cfg.hand_depth_snap_mm / det.depth_scale_mm) * det.depth_scale_mm
    if not d > 0:
        return "no depth at its peak"
    c = uvd_to_xyz(np.array([pk.frame_uv[0], pk.frame_uv[1], d]), frame.intrinsics)
    hand = learned_hand(cfg, frame.depth_mm, frame.intrinsics, out, pk.score, c, [])
    if hand is None:
        return "its mask rejected"
    first = next(iter(on.values()), None)
    if first is not None and abs(hand.com_xyz_mm[2] - first.com_xyz_mm[2]) > cfg.second_hand_max_depth_gap_mm:
        return "the depth-gap rule"
    if first is not None and np.linalg.norm(hand.com_xyz_mm - first.com_xyz_mm) < 80:
        return "its centre within 80 mm of the first hand"
    return "lost later (look-behind, crop, fallback)"


def causes(seed: int, sequences: int, frames: int, min_px: int = 150, detector: str | None = None) -> dict:
    from stream.frames import KNOWN_CAMERAS
    from stream.synth import HandSynthesizer, SceneConfig

    synth = HandSynthesizer(SceneConfig(camera=KNOWN_CAMERAS["d435_320x240"], two_hands=True), seed)
    count: Counter[str] = Counter()
    visible = 0
    # both found, by how far apart the palms are and by how much of the less visible hand the camera sees
    bins: dict[str, list[int]] = {}
    with pipeline(True, 2, detector) as p:
        for _ in range(sequences):
            p.reset()
            for s in synth.sequence(frames):
                prev = p.stages[0]._prev
                frame, truth, masks = labelled(s, False)
                r = p.process(frame)
                seen = frame.depth_mm > 0
                px = [int((m & seen).sum()) for m in masks.values()]  # each hand's measured pixels
                if not (len(px) == 2 and min(px) >= min_px):
                    continue
                visible += 1
                on, amb = {}, []
                for h in r.hands or []:
                    side = which_hand(truth, h.com_xyz_mm)
                    if side is None:
                        amb.append(h)
                    else:
                        on[side] = h
                missing = [k for k in truth if k not in on]
                apart = float(np.linalg.norm(_palm(truth["right"]) - _palm(truth["left"])))
                for key in (
                    _bin("palms_apart_mm", apart, PALM_BINS_MM),
                    _bin("fewer_pixels", min(px), PIXEL_BINS),
                ):
                    n = bins.setdefault(key, [0, 0])
                    n[0] += 1
                    n[1] += not missing
                if not missing:
                    count["both found"] += 1
                elif amb and any(which_hand(truth, h.com_xyz_mm, near_mm=80.0) is None for h in amb):
                    count["a found centre between the hands (one blob: hands overlap or touch in view)"] += 1
                elif amb:
                    count[
                        "a found centre 45-80 mm from its own palm (fingers stretched), far from the other"
                    ] += 1
                elif len(missing) == 2:
                    count["neither found"] += 1
                elif np.linalg.norm(_palm(truth["right"]) - _palm(truth["left"])) < 100:
                    count["palms under 100 mm apart"] += 1
                else:
                    count[peak_cause(p, frame, truth, masks, on, missing[0], prev)] += 1
    return {
        "seed": seed,
        "frames_both_visible": visible,
        "causes": dict(count.most_common()),
        "both_found_by": {
            k: {"frames": n, "both_found": found / n} for k, (n, found) in sorted(bins.items())
        },
    }


PALM_BINS_MM = (80, 120, 160, 250)
PIXEL_BINS = (400, 800)


def _bin(name: str, value: float, edges: tuple[int, ...]) -> str:
    """'name a-b' for the bin of `edges` that holds `value` (the first from 0, the last open)."""
    lo = max((e for e in edges if e <= value), default=0)
    hi = min((e for e in edges if e > value), default=None)
    return f"{name} {lo}-{hi}" if hi is not None else f"{name} {lo}+"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument(
        "--detector", help="a detector engine (.onnx with its manifest) instead of the shipped one"
    )
    args = ap.parse_args(argv)
    print(json.dumps(causes(args.seed, args.sequences, args.frames, detector=args.detector), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
