"""`handstream eval centres`: how far the segmenter's hand centre lies from the ground-truth hand centre,
per frame: the measure of "the segmenter picks the occluder / forearm instead of the hand", the pose
model's largest error beyond its own.

    handstream eval centres --seed 7 --frames 2000        # in-memory frames
    handstream eval centres --data-dir data/synth_test_4242  # a synth dataset

Ground truth = train.data.mask_centre (the 3-D mean of the measured pixels of the generator's hand mask),
the centre the pose model's crops are compared with; the segmenter's centre = HandSegmenter's best
hand's com_xyz_mm (mask CoM pushed back com_depth_offset_mm, so ~10-25 mm is the floor, not an error).
Reported: found rate, the share of ALL frames whose centre is > 100 mm off (a wrong object: occluder,
forearm, distractor), centre-error percentiles over found frames, and which path (learned / classic
fallback) produced the > 100 mm frames.

Tuning happens on in-memory frames of the default pose scene (D435 320x240, body, distractors, forearm,
occluders 30 %) with seeds 0-99 (the detector trains on 500+ / 1000+); data/synth_test_4242 is the held-out
pose test set: report on it, do not tune on it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from stream.preprocess import HandSegmenter, SegmenterConfig

WRONG_MM = 100.0


def centre_errors(frames, segmenter: HandSegmenter) -> dict:
    """Per-frame arrays: error (mm, NaN = not found or no ground truth), fallback flag, confidence."""
    from train.data import mask_centre

    err, fallback, conf = [], [], []
    for fr in frames:
        s = segmenter.segment(fr.depth_mm, fr.intrinsics)
        gt = mask_centre(fr)
        if not s.found or gt is None:
            err.append(np.nan)
            fallback.append(False)
            conf.append(np.nan)
            continue
        err.append(float(np.linalg.norm(np.asarray(s.best.com_xyz_mm) - gt)))
        fallback.append(s.debug.get("fallback") == "classic")
        conf.append(s.best.confidence)
    return {"err_mm": np.array(err), "fallback": np.array(fallback), "confidence": np.array(conf)}


def summarize(r: dict) -> dict:
    e = r["err_mm"]
    n = len(e)
    found = np.isfinite(e)
    wrong = found & (e > WRONG_MM)
    pct = np.nanpercentile(e, [50, 75, 90, 95, 99]) if found.any() else [np.nan] * 5
    return {
        "frames": n,
        "found": int(found.sum()),
        "found_rate": round(float(found.mean()), 4),
        "wrong_gt100mm": int(wrong.sum()),
        "wrong_rate": round(float(wrong.mean()), 4),
        "wrong_by_fallback": int((wrong & r["fallback"]).sum()),
        "within_60mm": int((found & (e <= 60.0)).sum()),
        "err_mm_p50_75_90_95_99": [round(float(v), 1) for v in pct],
        "err_mm_mean": round(float(np.nanmean(e)), 1) if found.any() else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="handstream eval centres", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, help="a `handstream synth` dataset (else in-memory frames)")
    p.add_argument("--seed", type=int, default=7, help="in-memory frames: generator seed (tune on 0-99)")
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--occluder-prob", type=float, help="in-memory frames: override the scene's occluder_prob")
    p.add_argument("--method", default="auto", choices=("auto", "learned", "classic"))
    p.add_argument("--engine", default="detector", help="detector engine (shipped name or .onnx path)")
    p.add_argument("--snap", type=float, help="override SegmenterConfig.hand_depth_snap_mm (0 = v1 rule)")
    p.add_argument("--gate", type=float, help="override SegmenterConfig.fallback_depth_gate_mm (0 = off)")
    p.add_argument(
        "--vouch", type=int, help="override SegmenterConfig.fallback_vouch_peaks (4 = the old rule)"
    )
    p.add_argument("--npz", type=Path, help="also save the per-frame arrays here")
    p.add_argument("--json", type=Path, help="also write the summary here")
    a = p.parse_args(argv)

    from train.data import default_scene, synthetic_dir_frames, synthetic_frames

    if a.data_dir:
        frames = synthetic_dir_frames(a.data_dir, a.frames if a.frames else 0)
        source = str(a.data_dir)
    else:
        scene = default_scene()
        if a.occluder_prob is not None:
            scene = replace(scene, occluder_prob=a.occluder_prob)
        frames = synthetic_frames(a.frames, a.seed, scene)
        source = f"in-memory seed {a.seed}, occluder_prob {scene.occluder_prob}"
    cfg = SegmenterConfig(method=a.method, detector_engine=a.engine)
    if a.snap is not None:
        cfg = replace(cfg, hand_depth_snap_mm=a.snap)
    if a.gate is not None:
        cfg = replace(cfg, fallback_depth_gate_mm=a.gate)
    if a.vouch is not None:
        cfg = replace(cfg, fallback_vouch_peaks=a.vouch)
    seg = HandSegmenter(cfg)
    r = centre_errors(frames, seg)
    res = {
        "source": source,
        "method": seg.method,
        "engine": a.engine,
        "hand_depth_snap_mm": cfg.hand_depth_snap_mm,
        "fallback_depth_gate_mm": cfg.fallback_depth_gate_mm,
        "fallback_vouch_peaks": cfg.fallback_vouch_peaks,
        **summarize(r),
    }
    text = json.dumps(res, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text)
    if a.npz:
        np.savez(a.npz, **r)
    return 0
