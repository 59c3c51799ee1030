"""Measure hand segmentation on synthetic frames: mask IoU and centre error against ground truth.

    .venv/bin/python tools/eval_segmentation.py --frames 2000 --seed 0 [--two-hands] [--no-distractors]

Ground truth: the generator's hand mask restricted to pixels with measured depth (mask & depth > 0), and
the palm = mean of the wrist and the four finger MCPs (joints 0, 5, 9, 13, 17 in MediaPipe order).
For every ground-truth hand, the detection with the highest mask IoU is its match (IoU 0 when none).
Reported: detection rate (IoU >= 0.5), IoU mean/median, CoM and palm-centre error median/p90 over
detected hands, false detections (detections matching no hand), no-hand reasons.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

import numpy as np

from stream.frames import KNOWN_CAMERAS
from stream.preprocess import HandSegmenter, SegmenterConfig

PALM_JOINTS = (0, 5, 9, 13, 17)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.count_nonzero(a | b))
    return float(np.count_nonzero(a & b)) / union if union else 0.0


def evaluate(frames: int, seed: int, two_hands: bool, distractors: bool, body: bool, camera: str) -> dict:
    from stream.synth import HandSynthesizer, SceneConfig

    cfg = SceneConfig(
        camera=KNOWN_CAMERAS[camera], body=body, distractors=distractors, forearm=True, two_hands=two_hands
    )
    syn = HandSynthesizer(cfg, seed)
    seg = HandSegmenter(SegmenterConfig())
    ious: list[float] = []
    com_err: list[float] = []
    palm_err: list[float] = []
    false_det = 0
    reasons: Counter[str] = Counter()
    times: list[float] = []
    for _ in range(frames):
        s = syn.sample()
        depth = s.frame.depth_mm
        gts = [(s.mask, s.joints_xyz_mm)] + [(o.mask, o.joints_xyz_mm) for o in s.other_hands]
        t0 = time.perf_counter()
        r = seg.segment(depth, s.frame.intrinsics)
        times.append(time.perf_counter() - t0)
        if not r.found:
            reasons[r.reason] += 1
        used: set[int] = set()
        for mask, joints in gts:
            gm = mask & (depth > 0)
            if not gm.any():
                continue
            scores = [_iou(h.mask, gm) for h in r.hands]
            if not scores or max(scores) < 0.5:
                ious.append(max(scores, default=0.0))
                continue
            k = int(np.argmax(scores))
            used.add(k)
            ious.append(scores[k])
            palm = joints[list(PALM_JOINTS)].mean(axis=0)
            com_err.append(float(np.linalg.norm(r.hands[k].com_xyz_mm - palm)))
            if r.hands[k].palm_xyz_mm is not None:
                palm_err.append(float(np.linalg.norm(r.hands[k].palm_xyz_mm - palm)))
        false_det += len(r.hands) - len(used)
    iou = np.asarray(ious)
    pct = lambda a, q: round(float(np.percentile(a, q)), 1) if len(a) else None  # noqa: E731
    return {
        "frames": frames,
        "seed": seed,
        "camera": camera,
        "two_hands": two_hands,
        "distractors": distractors,
        "body": body,
        "gt_hands": len(iou),
        "detected_rate": round(float(np.mean(iou >= 0.5)), 4),
        "iou_mean": round(float(iou.mean()), 4),
        "iou_median": round(float(np.median(iou)), 4),
        "iou_mean_detected": round(float(iou[iou >= 0.5].mean()), 4) if np.any(iou >= 0.5) else None,
        "com_err_mm_median": pct(com_err, 50),
        "com_err_mm_p90": pct(com_err, 90),
        "palm_err_mm_median": pct(palm_err, 50),
        "palm_err_mm_p90": pct(palm_err, 90),
        "false_detections_per_frame": round(false_det / frames, 4),
        "no_hand_reasons": dict(reasons),
        "segment_ms_median": round(float(np.median(times)) * 1e3, 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--two-hands", action="store_true")
    p.add_argument("--no-distractors", action="store_true")
    p.add_argument("--no-body", action="store_true")
    p.add_argument("--camera", default="d435_640x480", choices=sorted(KNOWN_CAMERAS))
    a = p.parse_args(argv)
    res = evaluate(a.frames, a.seed, a.two_hands, not a.no_distractors, not a.no_body, a.camera)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
