"""`handstream eval segmentation`: measure hand segmentation on synthetic frames: detection, mask IoU and centre error against ground truth,
broken down by how visible the hand is, by distance and by failure reason.

    handstream eval segmentation --frames 2000 --seed 0 [--camera d435_320x240]
        [--method auto|learned|classic] [--two-hands] [--no-distractors] [--no-body] [--tracking]
        [--json out.json]

--method picks the segmenter (SegmenterConfig.method; auto = the learned detector when its engine loads).
The learned detector was trained and validated on seeds 500-553 and 1000-1053 (`handstream train detector`):
evaluate on seeds 0-99 so the frames are disjoint from its training data.

Ground truth per hand (first hand and, with --two-hands, the second):
- measured mask: the generator's visible hand pixels where the sensor returned depth (mask & depth > 0);
- palm = mean of the wrist and the four finger MCPs (joints 0, 5, 9, 13, 17, MediaPipe order);
- visibility = the hand's geometrically visible pixels / the pixels of the same hand rendered ALONE by a
  camera with a margin of half an image on every side (so a hand half outside the picture or half hidden
  behind an object both read 0.5); `in_image` = the share of the alone-rendering that falls inside the
  picture. "Clearly visible" = visibility >= 0.6 (which implies in_image >= 0.6). A hand 80 % hidden or
  mostly outside the image is a legitimate "no hand"; a clearly visible hand that we miss is our bug.

Matching: for every ground-truth hand the detection with the highest mask IoU (IoU >= 0.5 = detected);
detections matching no hand are false detections. Failure reasons of missed clearly-visible hands:
"no detection: <segmenter reason>", "other object chosen" (detections exist, none overlaps the hand),
"partial/merged mask" (best IoU in (0, 0.5)).

Centre error: the detection's com_xyz_mm vs the palm, median and p90. Its *spread* matters more for the
pose model (trained on crops centred where the segmenter puts the centre): a constant offset is harmless,
scatter is not, so the mean offset (x, y, z) and the standard deviation per camera axis are reported too.

--tracking feeds each frame's result as `prev` to the next frame of smooth sequences (`HandSynthesizer.
sequence`) instead of independent frames, to measure the tracked path.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stream.frames import KNOWN_CAMERAS, CameraIntrinsics
from stream.preprocess import HandSegmenter, SegmenterConfig

PALM_JOINTS = (0, 5, 9, 13, 17)
CLEAR_VISIBILITY = 0.6
DIST_BINS_MM = (300.0, 400.0, 500.0, 600.0, 800.0)
VIS_BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.01)


@dataclass(frozen=True)
class GTHand:
    mask: np.ndarray  # measured visible hand pixels
    palm_xyz_mm: np.ndarray
    visibility: float
    in_image: float
    measured: float  # measured pixels / alone pixels (visibility after sensor drop-outs)
    dist_mm: float


@dataclass(frozen=True)
class GTFrame:
    depth_mm: np.ndarray
    intr: CameraIntrinsics
    hands: tuple[GTHand, ...]
    index: int


class _Alone:
    """Renders a posed hand alone through a camera padded by half an image on each side."""

    def __init__(self, intr: CameraIntrinsics):
        from stream.synth.render import Rays

        px, py = intr.width // 2, intr.height // 2
        big = CameraIntrinsics(
            intr.fx, intr.fy, intr.cx + px, intr.cy + py, intr.width + 2 * px, intr.height + 2 * py
        )
        self.rays = Rays.for_camera(big)
        self.pad = (px, py)
        self.intr = intr
        self.big = big

    def counts(self, geom) -> tuple[int, int]:
        """(pixels of the hand alone, of which inside the real image)."""
        from stream.synth.render import cast_round_cones

        pix, _, _, _ = cast_round_cones(
            self.rays, geom.cone_a, geom.cone_b, geom.radius_a, geom.radius_b, np.zeros(len(geom.part))
        )
        pix = np.unique(pix)
        u = pix % self.big.width - self.pad[0]
        v = pix // self.big.width - self.pad[1]
        inside = (u >= 0) & (u < self.intr.width) & (v >= 0) & (v < self.intr.height)
        return int(pix.size), int(inside.sum())


def _gt_hand(mask, joints, depth, geom, alone: _Alone) -> GTHand:
    n_alone, n_in = alone.counts(geom)
    n_alone = max(n_alone, 1)
    meas = mask & (depth > 0)
    palm = np.asarray(joints, np.float64)[list(PALM_JOINTS)].mean(axis=0)
    return GTHand(
        mask=meas,
        palm_xyz_mm=palm,
        visibility=min(1.0, int(mask.sum()) / n_alone),
        in_image=n_in / n_alone,
        measured=min(1.0, int(meas.sum()) / n_alone),
        dist_mm=float(palm[2]),
    )


def synthetic_frames(
    n: int, seed: int, camera: str, two_hands: bool, distractors: bool, body: bool, tracking: bool
) -> Iterator[GTFrame]:
    """Ground-truth frames from stream.synth with visibility measured (see the module docstring)."""
    from stream.synth import HandSynthesizer, SceneConfig
    from stream.synth.hand import hand_shape
    from stream.synth.scene import pose_hand

    cfg = SceneConfig(
        camera=KNOWN_CAMERAS[camera], body=body, distractors=distractors, forearm=True, two_hands=two_hands
    )
    syn = HandSynthesizer(cfg, seed)
    alone = _Alone(cfg.camera)
    if tracking:
        k = 0
        while k < n:
            for s in syn.sequence(min(60, n - k)):
                d = s.frame.depth_mm
                hands = [_gt_hand(s.mask, s.joints_xyz_mm, d, s.frame.meta["hand_geometry"], alone)]
                # the second hand's geometry is not in meta: sequences with two hands are not supported
                yield GTFrame(d, s.frame.intrinsics, tuple(hands), k)
                k += 1
        return
    for k in range(n):
        s = syn.sample_at(k)
        d = s.frame.depth_mm
        geoms = [s.frame.meta["hand_geometry"]]
        if two_hands:
            # replay sample_at's draws up to the second hand's state to pose it (its geometry is not in
            # meta); checked against the first hand's geometry so a generator change fails loudly
            rng = np.random.default_rng([seed, 0, k])
            shape = hand_shape(int(rng.integers(cfg.n_subjects)), cfg.child_fraction)
            st = syn._random_state(rng, shape)
            st2 = syn._second_hand(rng, shape, st)
            if not np.allclose(pose_hand(shape, st).geom.joints, geoms[0].joints):
                raise RuntimeError("the generator changed: update synthetic_frames' replay of sample_at")
            geoms.append(pose_hand(shape, st2, left=True).geom)
        gts = [(s.mask, s.joints_xyz_mm)] + [(o.mask, o.joints_xyz_mm) for o in s.other_hands]
        hands = tuple(_gt_hand(m, j, d, g, alone) for (m, j), g in zip(gts, geoms))
        yield GTFrame(d, s.frame.intrinsics, hands, k)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.count_nonzero(a | b))
    return float(np.count_nonzero(a & b)) / union if union else 0.0


def _pct(a, q):
    return round(float(np.percentile(a, q)), 1) if len(a) else None


def _rate(rows: list[dict]) -> dict:
    if not rows:
        return {"n": 0}
    det = np.array([r["detected"] for r in rows])
    return {"n": len(rows), "detected": round(float(det.mean()), 4)}


def evaluate(frames: Iterator[GTFrame], segmenter: HandSegmenter, tracking: bool = False) -> dict:
    rows: list[dict] = []
    false_det = 0
    n_frames = 0
    reasons: Counter[str] = Counter()
    times: list[float] = []
    failures: list[tuple[int, str]] = []
    prev = None
    for f in frames:
        n_frames += 1
        t0 = time.perf_counter()
        r = segmenter.segment(f.depth_mm, f.intr, prev if tracking else None)
        times.append(time.perf_counter() - t0)
        prev = r if r.found else None
        if not r.found:
            reasons[r.reason] += 1
        used: set[int] = set()
        for g in f.hands:
            scores = [_iou(h.mask, g.mask) if g.mask.any() else 0.0 for h in r.hands]
            best = max(scores, default=0.0)
            row = {
                "visibility": g.visibility,
                "in_image": g.in_image,
                "measured": g.measured,
                "dist_mm": g.dist_mm,
                "iou": best,
                "detected": best >= 0.5,
            }
            if best >= 0.5:
                k = int(np.argmax(scores))
                used.add(k)
                row["com_delta"] = r.hands[k].com_xyz_mm - g.palm_xyz_mm
                if r.hands[k].palm_xyz_mm is not None:
                    row["palm_err"] = float(np.linalg.norm(r.hands[k].palm_xyz_mm - g.palm_xyz_mm))
            else:
                if not r.found:
                    why = f"no detection: {r.reason}"
                elif best == 0.0:
                    why = "other object chosen"
                else:
                    why = "partial/merged mask"
                row["failure"] = why
                if g.visibility >= CLEAR_VISIBILITY:
                    failures.append((f.index, why))
            rows.append(row)
        false_det += len(r.hands) - len(used)
    clear = [r for r in rows if r["visibility"] >= CLEAR_VISIBILITY]
    iou = np.array([r["iou"] for r in rows])
    deltas = np.array([r["com_delta"] for r in rows if "com_delta" in r]).reshape(-1, 3)
    err = np.linalg.norm(deltas, axis=1)
    palm_err = [r["palm_err"] for r in rows if "palm_err" in r]
    by_vis = {}
    for lo, hi in zip(VIS_BINS[:-1], VIS_BINS[1:]):
        by_vis[f"{lo:.1f}-{min(hi, 1.0):.1f}"] = _rate([r for r in rows if lo <= r["visibility"] < hi])
    by_dist = {}
    for lo, hi in zip(DIST_BINS_MM[:-1], DIST_BINS_MM[1:]):
        by_dist[f"{lo:.0f}-{hi:.0f}"] = _rate([r for r in clear if lo <= r["dist_mm"] < hi])
    by_in_image = {
        "in_image<0.6": _rate([r for r in rows if r["in_image"] < 0.6]),
        "in_image>=0.6, occluded (vis<0.6)": _rate(
            [r for r in rows if r["in_image"] >= 0.6 and r["visibility"] < CLEAR_VISIBILITY]
        ),
        "clearly visible": _rate(clear),
    }
    fail_clear = Counter(r["failure"] for r in clear if "failure" in r)
    fail_all = Counter(r["failure"] for r in rows if "failure" in r)
    return {
        "frames": n_frames,
        "gt_hands": len(rows),
        "clear_hands": len(clear),
        "detected_rate_all": round(float(np.mean(iou >= 0.5)), 4) if len(iou) else None,
        "detected_rate_clear": _rate(clear).get("detected"),
        "false_detections_per_frame": round(false_det / max(n_frames, 1), 4),
        "iou_mean": round(float(iou.mean()), 4) if len(iou) else None,
        "iou_mean_detected": round(float(iou[iou >= 0.5].mean()), 4) if np.any(iou >= 0.5) else None,
        "com_err_mm_median": _pct(err, 50),
        "com_err_mm_p90": _pct(err, 90),
        "com_offset_mm_mean_xyz": [round(float(x), 1) for x in deltas.mean(0)] if len(deltas) else None,
        "com_spread_mm_std_xyz": [round(float(x), 1) for x in deltas.std(0)] if len(deltas) else None,
        "com_spread_mm_rms": round(float(np.sqrt((deltas.var(0)).sum())), 1) if len(deltas) else None,
        "palm_err_mm_median": _pct(palm_err, 50),
        "palm_err_mm_p90": _pct(palm_err, 90),
        "by_visibility": by_vis,
        "by_in_image": by_in_image,
        "clear_by_distance_mm": by_dist,
        "failures_clear": dict(fail_clear.most_common()),
        "failures_all": dict(fail_all.most_common()),
        "no_hand_reasons": dict(reasons),
        "segment_ms_median": round(float(np.median(times)) * 1e3, 3) if times else None,
        "missed_clear_frames": failures[:40],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="handstream eval segmentation", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--two-hands", action="store_true")
    p.add_argument("--no-distractors", action="store_true")
    p.add_argument("--no-body", action="store_true")
    p.add_argument("--tracking", action="store_true", help="smooth sequences, each result fed as prev")
    p.add_argument("--camera", default="d435_640x480", choices=sorted(KNOWN_CAMERAS))
    p.add_argument("--method", default="auto", choices=("auto", "learned", "classic"))
    p.add_argument("--engine", default="detector", help="detector engine (shipped name or .onnx path)")
    p.add_argument("--presence", type=float, help="override SegmenterConfig.presence_threshold")
    p.add_argument("--json", type=Path, help="also write the result here")
    a = p.parse_args(argv)
    if a.tracking and a.two_hands:
        p.error("--tracking supports one-hand sequences only")
    frames = synthetic_frames(
        a.frames, a.seed, a.camera, a.two_hands, not a.no_distractors, not a.no_body, a.tracking
    )
    cfg = SegmenterConfig(method=a.method, detector_engine=a.engine)
    if a.presence is not None:
        cfg = replace(cfg, presence_threshold=a.presence, second_hand_threshold=a.presence)
    seg = HandSegmenter(cfg)
    res = {
        "method": seg.method,
        "camera": a.camera,
        "seed": a.seed,
        "two_hands": a.two_hands,
        "distractors": not a.no_distractors,
        "body": not a.no_body,
        "tracking": a.tracking,
        **evaluate(frames, seg, a.tracking),
    }
    text = json.dumps(res, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text)
    return 0
