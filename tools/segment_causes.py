"""Why the pipeline misses the hand or puts it on something else, per generated scene kind: the same frames,
pipeline and scoring as `handstream eval synthetic --scenes`, with each failure's cause counted.

    .venv/bin/python tools/segment_causes.py --kind egocentric --frames 300 --seed 9200 [--json out.json]
        [--set behind_verify=false ...] [--detector runs/detector/detector.onnx]
    .venv/bin/python tools/segment_causes.py --kind egocentric,desk --seed 9200,9300,9400,9500   # and their sum

`--set NAME=VALUE` changes one `SegmenterConfig` field (a rule off, to count what it changes; a value that is
not a number or true/false is a string, e.g. `--set rescue_detector_engine=detector_close`).

Wrong object: what the result's centre shows (held object, object, table or wall, arm, body), how the
segmenter reached it (the learned path, the rescue detector or the classic fallback; `hand_path` counts the
same for the frames on the hand) and what the previous frame's result was (the track came from the hand,
from a wrong object, from a miss, or a new sequence). Missed: the segmenter's reason, the detector's strongest
heatmap value, whether the hand touches the image border and whether any of its pixels lie nearer than the
segmenter's `min_depth_mm`. Choose rules on tuning seeds, never on the held-out
9100, and on more than two: a segmenter rule chosen on 9200 and 9300 alone gained 2 points there and lost 4
on 9400 and 9500 (BENCHMARKS.md, "A held object left out of the hand's mask").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class RecordingSegmenter:
    """The pipeline's segmenter, keeping its last result (the stage passes on only the chosen hand)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.last = None

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def segment(self, depth_mm, intr, prev=None, known_com_uvd=None, **kw):
        self.last = self.inner.segment(depth_mm, intr, prev, known_com_uvd, **kw)
        return self.last


def segmenter_config(sets: list[str], detector: str | None = None):
    """The default `SegmenterConfig` with NAME=VALUE changes (numbers, true/false) and, when given, another
    detector engine (an .onnx beside its manifest: a candidate judged before it is shipped)."""
    from dataclasses import replace

    from stream.preprocess import SegmenterConfig

    changes: dict = {}
    for item in sets:
        name, _, value = item.partition("=")
        low = value.strip().lower()
        if low in ("true", "false"):
            changes[name.strip()] = low == "true"
        else:
            try:
                changes[name.strip()] = float(value)
            except ValueError:  # a string field: an engine's name or path
                changes[name.strip()] = value.strip()
    if detector:
        changes["detector_engine"] = detector
    return replace(SegmenterConfig(), **changes)


def frame_causes(
    kind: str,
    frames: int,
    seed: int,
    cam_name: str = "d435_320x240",
    sets: list[str] | None = None,
    detector: str | None = None,
    presence: bool = True,
) -> list[dict]:
    """One row per frame: state (hand / wrong / miss, or empty_* without a visible hand) and its cause."""
    from stream.pipeline import build_pipeline
    from stream.preprocess import HandSegmenter
    from stream.preprocess.segment.refine import solidity
    from train.eval_segmentation import _Alone
    from train.eval_synthetic import SEQUENCE_LENGTH, on_hand, scene_frames, truth_hands, what_is_at

    alone = _Alone(__import__("stream.frames", fromlist=["KNOWN_CAMERAS"]).KNOWN_CAMERAS[cam_name])
    pipe = build_pipeline(overlay=False, warmup=False, presence=presence)
    stage = next(s for s in pipe.stages if hasattr(s, "segmenter"))
    inner = HandSegmenter(segmenter_config(sets or [], detector)) if sets or detector else stage.segmenter
    rec = stage.segmenter = RecordingSegmenter(inner)
    min_z = rec.inner.config.min_depth_mm
    rows: list[dict] = []
    before = "new"
    try:
        for new_seq, sample in scene_frames(kind, frames, seed, cam_name, False, SEQUENCE_LENGTH):
            if new_seq:
                pipe.reset()
                before = "new"
            rec.last = None
            result = pipe.process(sample.frame)
            t = truth_hands(sample, alone)[0]
            intr = sample.frame.intrinsics
            m, d = t.mask, sample.frame.depth_mm
            seen = d[m & (d > 0)]
            row: dict = {"previous": before, "palm_z_mm": float(t.palm_xyz_mm[2])}
            row["border"] = bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
            row["too_close"] = bool(seen.size and float(seen.min()) < min_z)
            seg = rec.last
            if result.hand_found:
                state = "hand" if on_hand(result.com_xyz_mm, t, intr) else "wrong"
                if state == "wrong":
                    row["what"] = what_is_at(sample, result.com_xyz_mm)
                if seg is not None and seg.hands:
                    h = seg.hands[0]
                    debug = seg.debug or {}
                    row["path"] = "rescue" if debug.get("rescue") else debug.get("fallback", "learned")
                    row["confidence"] = float(h.confidence)
                    row["solidity"] = float(solidity(h.mask, h.bbox_xywh))
            else:
                state = "miss"
                row["reason"] = result.reason
                if seg is not None:
                    row["heatmap_max"] = (seg.debug or {}).get("heatmap_max")
            row["state"] = state if t.visible else f"empty_{state}"
            rows.append(row)
            before = state
    finally:
        pipe.close()
    return rows


def summary(rows: list[dict]) -> dict:
    """Counts of the failure causes over frames with a visible hand."""
    vis = [r for r in rows if not r["state"].startswith("empty_")]
    wrong = [r for r in vis if r["state"] == "wrong"]
    miss = [r for r in vis if r["state"] == "miss"]
    hmax = [r["heatmap_max"] for r in miss if r.get("heatmap_max") is not None]
    return {
        "visible": len(vis),
        "states": dict(Counter(r["state"] for r in vis)),
        "wrong_on": dict(Counter(r["what"] for r in wrong)),
        "wrong_path": dict(Counter(r.get("path", "?") for r in wrong)),
        "hand_path": dict(Counter(r.get("path", "?") for r in vis if r["state"] == "hand")),
        "wrong_previous": dict(Counter(r["previous"] for r in wrong)),
        "missed_reason": dict(Counter(r["reason"] for r in miss)),
        "missed_border": sum(r["border"] for r in miss),
        "missed_too_close": sum(r["too_close"] for r in miss),
        "missed_heatmap_max_p50": float(np.median(hmax)) if hmax else None,
    }


def total(summaries: list[dict]) -> dict:
    """The counts of several sets' `summary` added up, with the shares of the frames with a visible hand (the
    missed frames' median heatmap value is per set only)."""
    out: dict = {"visible": 0, "states": Counter(), "wrong_on": Counter()}
    for s in summaries:
        out["visible"] += s["visible"]
        out["states"].update(s["states"])
        out["wrong_on"].update(s["wrong_on"])
    n = max(out["visible"], 1)
    out["share"] = {k: round(v / n, 4) for k, v in out["states"].items()}
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", default="egocentric", help="a scene kind, or several: egocentric,desk")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--seed", default="9200", help="a generator seed, or several: 9200,9300,9400,9500")
    p.add_argument("--json", help="also write every frame's row here (a list of sets when there are several)")
    p.add_argument("--set", action="append", default=[], help="NAME=VALUE: one SegmenterConfig field")
    p.add_argument(
        "--detector", help="a detector engine (.onnx with its manifest) instead of the shipped one"
    )
    p.add_argument(
        "--no-presence", action="store_true", help="the detector's order, without the presence check"
    )
    a = p.parse_args(argv)
    kinds = [k.strip() for k in a.kind.split(",") if k.strip()]
    seeds = [int(x) for x in str(a.seed).split(",") if x.strip()]
    sets, summaries = [], []
    for kind in kinds:
        for seed in seeds:
            rows = frame_causes(
                kind, a.frames, seed, sets=a.set, detector=a.detector, presence=not a.no_presence
            )
            summaries.append(summary(rows))
            print(json.dumps({"kind": kind, "seed": seed, **summaries[-1]}), flush=True)
            sets.append({"kind": kind, "seed": seed, "rows": rows})
    if len(sets) > 1:  # several sets: their sum last (one rule judged on two seeds overfits them)
        print(json.dumps({"kind": ",".join(kinds), "seed": ",".join(map(str, seeds)), **total(summaries)}))
    if a.json:
        Path(a.json).write_text(json.dumps(sets[0]["rows"] if len(sets) == 1 else sets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
