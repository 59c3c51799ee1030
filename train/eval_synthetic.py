"""`handstream eval synthetic --scenes KIND,...`: the real pipeline (segmentation with tracking, pose engine,
smoothing) on held-out synthetic sequences of each scene kind, scored per kind against the generator's
labels: is the hand found, is it found on the hand or on some object, how far are the joints.

    handstream eval synthetic --scenes frontal,egocentric,desk [--frames 600] [--seed 9100] [--two-hands]
        [--detector PATH] [--json]

Per frame and kind (hands as the generator labels them: the first hand, and with --two-hands the second):
- visible hand: at least VISIBLE_SHARE of the hand's pixels (rendered alone, train/eval_segmentation.py's
  _Alone) are in view and measured (a hand mostly hidden or outside the picture is a fair "no hand");
- found on the hand: the result's centre (com_xyz_mm) projects within NEAR_MM (at the hand's depth) of one
  of the hand's visible pixels and lies within DEPTH_GATE_MM of its palm in depth;
- wrong object: a result whose centre is on no hand; `wrong_on` says what its pixel shows (held object,
  other object, arm, body, table or wall) -- the failure a user sees as "the skeleton sits on the bottle";
- pose error: mean over 21 joints (mm) of the pipeline's (smoothed) joints against the hand it was found on;
  success@20 mm counts a frame with a visible hand whose worst joint is within 20 mm (misses fail).
Rates are over frames with a visible hand; `false_on_empty` over frames without one. `--no-hands` draws
the same scenes with the hands out of view (`SceneConfig.hands_visible=False`): every frame is empty, and
`false_on_empty` is the share of frames where the pipeline reports a hand on some object.

When the pipeline's result carries a `hands` list (several hands a frame), both-hands-found (frames where
both are visible), handedness accuracy (the first labelled hand is a right hand, the second a left one) and
id swaps (a track id that moves from one labelled hand to the other while both stay visible) are reported
too; without it those keys are null.

Seeds: the detector trains on 1000-1053 and validates on 500-553, `handstream eval segmentation` uses 0-99;
9100 (the default) is disjoint from all of them.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np

from stream.argtypes import frames_type, int_type, seed_type
from stream.errors import InputError
from stream.frames import KNOWN_CAMERAS, camera
from stream.geometry import xyz_to_uvd

VISIBLE_SHARE = 0.4
NEAR_MM = 20.0
DEPTH_GATE_MM = 100.0
SUCCESS_MM = 20.0
DEFAULT_SEED = 9100
SEQUENCE_LENGTH = 60
_MATERIAL_NAMES = {0: "table or wall", 1: "hand", 2: "arm", 3: "other hand", 4: "arm", 5: "body", 6: "body"}


@dataclass(frozen=True)
class TruthHand:
    """One labelled hand of a frame: its visible pixels, joints and whether it counts as visible."""

    mask: np.ndarray
    joints_xyz_mm: np.ndarray
    palm_xyz_mm: np.ndarray
    visible: bool
    handedness: str


def truth_hands(sample, alone) -> list[TruthHand]:
    """The generator's hands of one frame (first: a right hand; second: a left one)."""
    from train.eval_segmentation import PALM_JOINTS

    d = sample.frame.depth_mm
    out = []
    items = [(sample.mask, sample.joints_xyz_mm, sample.frame.meta["hand_geometry"], "right")]
    geoms2 = sample.frame.meta.get("other_hand_geometries", ())
    items += [(o.mask, o.joints_xyz_mm, g, "left") for o, g in zip(sample.other_hands, geoms2)]
    for mask, joints, geom, side in items:
        n_alone, _ = alone.counts(geom)
        measured = int((mask & (d > 0)).sum())
        palm = np.asarray(joints, np.float64)[list(PALM_JOINTS)].mean(axis=0)
        out.append(TruthHand(mask, joints, palm, measured >= VISIBLE_SHARE * max(n_alone, 1), side))
    return out


def on_hand(com_xyz: np.ndarray, hand: TruthHand, intr) -> bool:
    """Whether a result centre lies on this hand: its pixel within NEAR_MM of a visible hand pixel (at the
    centre's depth) and its depth within DEPTH_GATE_MM of the palm."""
    if not hand.mask.any() or abs(float(com_xyz[2]) - float(hand.palm_xyz_mm[2])) > DEPTH_GATE_MM:
        return False
    u, v, _ = xyz_to_uvd(np.asarray(com_xyz, np.float64), intr)
    r_px = NEAR_MM * intr.fx / max(float(com_xyz[2]), 1.0)
    ys, xs = np.nonzero(hand.mask)
    return bool(np.min((xs - u) ** 2 + (ys - v) ** 2) <= r_px**2)


def what_is_at(sample, com_xyz: np.ndarray) -> str:
    """What the pixel under a result centre shows (the wrong object's name)."""
    intr = sample.frame.intrinsics
    u, v, _ = xyz_to_uvd(np.asarray(com_xyz, np.float64), intr)
    iu = int(np.clip(round(float(u)), 0, intr.width - 1))
    iv = int(np.clip(round(float(v)), 0, intr.height - 1))
    m = int(sample.material[iv, iu])
    if m == sample.frame.meta.get("held_material", -1):
        return "held object"
    return _MATERIAL_NAMES.get(m, "object")


def result_hands(result) -> list[dict] | None:
    """The result's per-hand list (com, handedness, id) when the pipeline reports several hands, else None."""
    hands = getattr(result, "hands", None)
    if hands is None:
        hands = (getattr(result, "record_fields", None) or {}).get("hands")
    if hands is None:
        return None
    out = []
    for h in hands:
        get = h.get if isinstance(h, dict) else (lambda k, _h=h: getattr(_h, k, None))
        com = get("com_xyz_mm")
        if com is None:
            continue
        out.append(
            {"com_xyz_mm": np.asarray(com, np.float64), "handedness": get("handedness"), "id": get("id")}
        )
    return out


class KindScore:
    """Running counts for one scene kind."""

    def __init__(self) -> None:
        self.frames = self.visible = self.found = self.wrong = self.false_empty = self.empty = 0
        self.wrong_on: dict[str, int] = {}
        self.errors: list[float] = []
        self.worst: list[float] = []
        self.two_visible = self.both_found = 0
        self.hand_labels = self.hand_right = 0
        self.swaps = 0
        self.multi = False
        self._ids: dict[int, object] = {}

    def add(self, sample, result, truth: list[TruthHand]) -> None:
        intr = sample.frame.intrinsics
        self.frames += 1
        vis = [t for t in truth if t.visible]
        com = result.com_xyz_mm if result.hand_found else None
        if not vis:
            self.empty += 1
            if com is not None and not any(on_hand(com, t, intr) for t in truth):
                self.false_empty += 1
            self._ids.clear()
            self._multi(sample, result, truth, vis)
            return
        self.visible += 1
        worst = np.inf
        if com is not None:
            match = next((t for t in truth if on_hand(com, t, intr)), None)
            if match is None:
                self.wrong += 1
                name = what_is_at(sample, com)
                self.wrong_on[name] = self.wrong_on.get(name, 0) + 1
            else:
                self.found += 1
                if result.joints_xyz_mm is not None:
                    e = np.linalg.norm(np.asarray(result.joints_xyz_mm) - match.joints_xyz_mm, axis=1)
                    self.errors.append(float(e.mean()))
                    worst = float(e.max())
        self.worst.append(worst)
        self._multi(sample, result, truth, vis)

    def _multi(self, sample, result, truth, vis) -> None:
        hands = result_hands(result)
        if hands is None:
            return
        self.multi = True
        intr = sample.frame.intrinsics
        assigned: dict[int, int] = {}  # truth index -> result hand index
        for i, h in enumerate(hands):
            for j, t in enumerate(truth):
                if j not in assigned and on_hand(h["com_xyz_mm"], t, intr):
                    assigned[j] = i
                    if t.visible and h["handedness"] is not None:
                        self.hand_labels += 1
                        self.hand_right += h["handedness"] == t.handedness
                    break
        if len(truth) == 2 and all(t.visible for t in truth):
            self.two_visible += 1
            self.both_found += len(assigned) == 2
            for j, i in assigned.items():
                hid = hands[i]["id"]
                if hid is None:
                    continue
                if hid in self._ids and self._ids[hid] != j:
                    self.swaps += 1
                self._ids[hid] = j
        else:
            self._ids.clear()

    def report(self) -> dict:
        worst = np.array(self.worst) if self.worst else np.zeros(0)
        v = max(self.visible, 1)
        return {
            "frames": self.frames,
            "frames_visible": self.visible,
            "found_on_hand": self.found,
            "found_on_hand_rate": self.found / v,
            "wrong_object": self.wrong,
            "wrong_object_rate": self.wrong / v,
            "wrong_on": dict(sorted(self.wrong_on.items())),
            "missed_rate": (self.visible - self.found - self.wrong) / v,
            "false_on_empty": self.false_empty / max(self.empty, 1) if self.empty else None,
            "pose_mean_mm": float(np.mean(self.errors)) if self.errors else None,
            "success_20mm": float(np.mean(worst <= SUCCESS_MM)) if worst.size else None,
            "both_hands_found_rate": (self.both_found / self.two_visible)
            if self.multi and self.two_visible
            else None,
            "handedness_accuracy": (self.hand_right / self.hand_labels)
            if self.multi and self.hand_labels
            else None,
            "id_swaps": self.swaps if self.multi else None,
        }


def scene_frames(
    kind: str, n: int, seed: int, cam_name: str, two_hands: bool, seq_len: int, hands_visible: bool = True
):
    """(new sequence?, sample) for n frames of one kind: sequences of seq_len frames (tracking runs)."""
    from stream.synth import HandSynthesizer, SceneConfig

    cfg = SceneConfig(
        camera=KNOWN_CAMERAS[cam_name],
        scene_kind=kind,
        two_hands=two_hands,
        color=False,
        hands_visible=hands_visible,
    )
    syn = HandSynthesizer(cfg, seed)
    k = 0
    while k < n:
        for i, s in enumerate(syn.sequence(min(seq_len, n - k))):
            yield i == 0, s
            k += 1


def evaluate_scenes(
    kinds: list[str],
    frames: int,
    seed: int = DEFAULT_SEED,
    cam_name: str = "d435_320x240",
    two_hands: bool = False,
    detector: str | None = None,
    method: str = "auto",
    seq_len: int = SEQUENCE_LENGTH,
    hands_visible: bool = True,
) -> dict:
    """Run the standard pipeline (build_pipeline, no overlay) per scene kind; returns {kind: report, ...}."""
    from stream.pipeline import build_pipeline
    from stream.preprocess import HandSegmenter, SegmenterConfig
    from train.eval_segmentation import _Alone

    cam = KNOWN_CAMERAS[cam_name]
    alone = _Alone(cam)
    out: dict = {
        "seed": seed,
        "camera": cam_name,
        "two_hands": two_hands,
        "hands_visible": hands_visible,
        "frames_per_kind": frames,
    }
    pipe = build_pipeline(overlay=False, warmup=False)
    try:
        seg_cfg = SegmenterConfig(method=method, **({"detector_engine": detector} if detector else {}))
        segmenter = HandSegmenter(seg_cfg)
        for s in pipe.stages:
            if hasattr(s, "segmenter"):
                s.segmenter = segmenter
        out["segmenter"] = {
            "method": segmenter.method,
            "detector": detector or "shipped",
            "rescue_detector": seg_cfg.rescue_detector_engine if segmenter.rescue is not None else None,
        }
        per_kind = {}
        for kind in kinds:
            score = KindScore()
            t0 = time.perf_counter()
            for new_seq, sample in scene_frames(
                kind, frames, seed, cam_name, two_hands, seq_len, hands_visible
            ):
                if new_seq:
                    pipe.reset()
                result = pipe.process(sample.frame)
                score.add(sample, result, truth_hands(sample, alone))
            rep = score.report()
            rep["seconds"] = round(time.perf_counter() - t0, 1)
            per_kind[kind] = rep
        out["kinds"] = per_kind
    finally:
        pipe.close()
    return out


def _print(res: dict) -> None:
    print(
        f"seed {res['seed']}, {res['camera']}, {res['frames_per_kind']} frames per kind, "
        f"segmenter {res['segmenter']['method']} ({res['segmenter']['detector']})"
    )
    for kind, r in res["kinds"].items():
        pose = f"{r['pose_mean_mm']:.1f} mm" if r["pose_mean_mm"] is not None else "-"
        s20 = f"{100 * r['success_20mm']:.1f} %" if r["success_20mm"] is not None else "-"
        if not r["frames_visible"]:
            fe = r["false_on_empty"]
            print(f"{kind:>10}: no hand in view in {r['frames']} frames, a hand reported in {100 * fe:.1f} %")
            continue
        print(
            f"{kind:>10}: visible {r['frames_visible']}/{r['frames']}, on the hand "
            f"{100 * r['found_on_hand_rate']:.1f} %, wrong object {100 * r['wrong_object_rate']:.1f} % "
            f"{r['wrong_on'] or ''}, missed {100 * r['missed_rate']:.1f} %, pose {pose}, success@20mm {s20}"
        )
        if r["both_hands_found_rate"] is not None or r["handedness_accuracy"] is not None:
            print(
                f"{'':>10}  both hands {r['both_hands_found_rate']}, handedness {r['handedness_accuracy']}, "
                f"id swaps {r['id_swaps']}"
            )


def add_scene_arguments(p: argparse.ArgumentParser) -> None:
    """The per-scene-kind options of `handstream eval synthetic`."""
    p.add_argument(
        "--scenes",
        help="comma-separated scene kinds (frontal, egocentric, desk, mixed): run the real pipeline on "
        "held-out generated sequences of each and report per kind (instead of --data)",
    )
    p.add_argument("--frames", type=frames_type(), default=600, help="frames per scene kind (with --scenes)")
    p.add_argument("--seed", type=seed_type(), default=DEFAULT_SEED, help="generator seed (with --scenes)")
    p.add_argument("--camera", default="d435_320x240", help="camera intrinsics by name (with --scenes)")
    p.add_argument("--two-hands", action="store_true", help="two hands in every frame (with --scenes)")
    p.add_argument(
        "--no-hands",
        action="store_true",
        help="the same scenes with the hands out of view: how often a hand is reported on an object",
    )
    p.add_argument(
        "--detector", help="a detector engine (.onnx with its manifest) instead of the shipped one"
    )
    p.add_argument("--method", choices=("auto", "learned", "classic"), default="auto", help="segmenter path")
    p.add_argument(
        "--sequence-length", type=int_type("--sequence-length", 1), default=SEQUENCE_LENGTH, help="frames"
    )


def main_scenes(a: argparse.Namespace) -> int:
    from stream.synth import SCENE_KINDS

    kinds = [k.strip() for k in a.scenes.split(",") if k.strip()]
    bad = [k for k in kinds if k not in SCENE_KINDS]
    if not kinds or bad:
        raise InputError(
            f"--scenes: unknown kind {', '.join(bad) or '(none)'}; choose from {', '.join(SCENE_KINDS)}"
        )
    camera(a.camera)  # an unknown name is one line
    res = evaluate_scenes(
        kinds,
        a.frames,
        a.seed,
        a.camera,
        a.two_hands,
        a.detector,
        a.method,
        a.sequence_length,
        hands_visible=not a.no_hands,
    )
    if a.json:
        print(json.dumps(res))
    else:
        _print(res)
    return 0
