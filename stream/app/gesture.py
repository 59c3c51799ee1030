"""`handstream gesture enroll|list|remove|eval`: a user's own gestures, from a few seconds of examples.

    handstream gesture enroll NAME --gallery G.npz --joints FILE.npz      # skeletons you already have
    handstream gesture enroll NAME --gallery G.npz --source rec.db3 [--max-frames 90]   # or a recording/camera
    handstream gesture list --gallery G.npz
    handstream gesture remove NAME --gallery G.npz
    handstream gesture eval --joints FILE.npz [--shots 5] [--seed 0] --json   # needs the train extra (scipy)
    handstream gesture eval --data SYNTH_DIR --json      # a `handstream synth` dataset's skeletons
    handstream gesture enroll NAME --dynamic --gallery M.npz (--joints MOTIONS.npz | --source rec.db3)
    handstream gesture eval --dynamic --joints MOTIONS.npz --json       # swipes, taps, grabs...

FILE.npz holds `joints_xyz_mm` (N, 21, 3) in our joint order (stream.synth.hand.JOINT_NAMES: wrist, then
thumb, index, middle, ring, pinky with four joints each) in any unit and coordinate frame, and for `eval` a
`label` (N,) array of class names. Enrolling keeps at most `--keep` examples, evenly spaced in time.

With `--dynamic` the gestures are motions and the gallery is a separate one (`handstream run
--dynamic-gestures M.npz`): MOTIONS.npz holds `joints_xyz_mm` (N, T, 21, 3), N examples of T frames each in
the camera's axes (x right, y down, z away), an optional `fps` (default 30) and for `eval` a `label` (N,);
from a source, every stretch where the hand moves becomes one example (perform the gesture a few times,
resting between). See stream/app/gesture_dynamic.py.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..argtypes import frames_type, int_type, seed_type
from ..errors import InputError


def _load_joints(path: str, need_labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            joints = np.asarray(z["joints_xyz_mm"], np.float64)
            labels = np.asarray(z["label"]).astype(str) if "label" in z.files else None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: needs an .npz with joints_xyz_mm (N, 21, 3) ({exc})") from None
    if joints.ndim != 3 or joints.shape[1:] != (21, 3) or len(joints) == 0:
        raise InputError(f"{path}: joints_xyz_mm must be (N, 21, 3) with N >= 1, got {joints.shape}")
    if need_labels and (labels is None or labels.shape != (len(joints),)):
        raise InputError(f"{path}: evaluation needs a `label` array with one name per skeleton")
    keep = np.isfinite(joints).all(axis=(1, 2))
    return joints[keep], (labels[keep] if labels is not None else None)


def track_from_source(args) -> tuple[np.ndarray, np.ndarray]:
    """(times_ms (N,), joints (N, 21, 3)) of the smoothed skeleton over a source's frames with a hand: static
    enrolling keeps the skeletons, dynamic enrolling cuts the track into performances by time."""
    from ..pipeline import build_pipeline, run_stream
    from ..sources import open_source

    source = open_source(args.source, frames=args.max_frames if args.source.startswith("synthetic") else None)
    times: list[float] = []
    found: list[np.ndarray] = []

    class Collect:
        def write(self, result, frame=None):
            if result.hand_found and result.joints_xyz_mm is not None:
                times.append(float(result.timestamp_ms))
                found.append(np.asarray(result.joints_xyz_mm, np.float64))
            return True

        def close(self):
            pass

    with build_pipeline(backend=args.backend, overlay=False) as pipeline:
        source.want_color = pipeline.uses_color
        run_stream(source, pipeline, [Collect()], max_frames=args.max_frames)
    if not found:
        raise InputError(f"{args.source}: no hand found in {args.max_frames} frames; nothing to enroll")
    return np.array(times), np.stack(found)


def _synth_joints(directory: str) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth skeletons and gesture names of a `handstream synth` dataset."""
    from ..synth.dataset import load_dataset

    meta, arrays = load_dataset(directory)
    names = np.asarray(meta.get("gestures_fine") or [])
    fine = arrays["gesture_fine"]
    if len(names) == 0 or fine.size == 0 or fine.max() >= len(names):
        raise InputError(f"{directory}: the dataset has no gesture labels to evaluate")
    return arrays["joints_xyz_mm"].astype(np.float64), names[fine]


def _evenly(x: np.ndarray, k: int) -> np.ndarray:
    if len(x) <= k:
        return x
    return x[np.linspace(0, len(x) - 1, k).round().astype(int)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="handstream gesture", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="action", required=True)
    en = sub.add_parser("enroll", help="add (or replace) a gesture in a gallery")
    en.add_argument("name")
    en.add_argument("--gallery", required=True, help="the gallery .npz (created if missing)")
    src = en.add_mutually_exclusive_group(required=True)
    src.add_argument("--joints", help=".npz with joints_xyz_mm (N, 21, 3)")
    src.add_argument("--source", help="a recording, video, folder, realsense or synthetic:SEED")
    en.add_argument(
        "--max-frames",
        type=frames_type("--max-frames"),
        default=None,
        help="frames to read from --source (default 90; 300 with --dynamic)",
    )
    en.add_argument(
        "--dynamic", action="store_true", help="a motion (swipe, tap, ...) into a gallery of dynamic gestures"
    )
    en.add_argument(
        "--keep", type=int_type("--keep", 1), default=30, help="examples kept, evenly spaced (default 30)"
    )
    en.add_argument("--backend", default="onnxruntime", choices=("auto", "onnxruntime", "tensorrt", "torch"))
    ls = sub.add_parser("list", help="the gestures in a gallery")
    ls.add_argument("--gallery", required=True)
    ls.add_argument("--json", action="store_true")
    rm = sub.add_parser("remove", help="remove a gesture from a gallery")
    rm.add_argument("name")
    rm.add_argument("--gallery", required=True)
    ev = sub.add_parser(
        "eval", help="Recall@K, NMI and K-shot accuracy of the embedding on labelled skeletons"
    )
    what = ev.add_mutually_exclusive_group(required=True)
    what.add_argument("--joints", help=".npz with joints_xyz_mm (N, 21, 3) and label (N,)")
    what.add_argument(
        "--data",
        help="a `handstream synth` dataset: its ground-truth skeletons with their gesture labels (the scene "
        "generator's 14 gestures; 13 of them the shipped engine trained on, see --unseen-only)",
    )
    ev.add_argument(
        "--unseen-only", action="store_true", help="keep only classes the shipped embedding never trained on"
    )
    ev.add_argument(
        "--engine", default=None, help="embedding engine (default: the shipped gesture or dynamic_gesture)"
    )
    ev.add_argument(
        "--dynamic", action="store_true", help="motions: --joints holds (N, T, 21, 3) windows with labels"
    )
    ev.add_argument("--shots", type=int_type("--shots", 1), default=5)
    ev.add_argument("--seed", type=seed_type(), default=0)
    ev.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from ..gestures import Gallery, canonical_joints
    from ..gestures.dynamic import load_any_gallery

    if args.action == "enroll" and args.dynamic:
        return _enroll_dynamic(args)
    if args.action == "enroll":
        args.max_frames = args.max_frames or 90
        joints = _load_joints(args.joints)[0] if args.joints else track_from_source(args)[1]
        if len(joints) == 0:
            raise InputError(f"{args.joints}: no finite skeleton to enroll")
        gallery = Gallery.load(args.gallery, missing_ok=True)
        gallery.add(args.name, canonical_joints(_evenly(joints, args.keep)))
        gallery.save(args.gallery)
        print(
            f"handstream gesture: enrolled {args.name!r} from {min(len(joints), args.keep)} skeletons -> {args.gallery}"
        )
        return 0
    if args.action == "list":
        counts = load_any_gallery(args.gallery).counts()
        if args.json:
            print(json.dumps(counts))
        else:
            for name, n in counts.items():
                print(f"{name}\t{n} examples")
        return 0
    if args.action == "remove":
        gallery = load_any_gallery(args.gallery)
        gallery.remove(args.name)
        gallery.save(args.gallery)
        print(f"handstream gesture: removed {args.name!r} from {args.gallery}")
        return 0
    # eval
    if args.dynamic:
        return _eval_dynamic(args)
    from .gesture_eval import evaluate_engine

    joints, labels = _load_joints(args.joints, need_labels=True) if args.joints else _synth_joints(args.data)
    if args.unseen_only:
        from ..synth.gestures import UNSEEN

        joints, labels = _only_unseen(joints, labels, UNSEEN, "classes")
    out = evaluate_engine(args.engine or "gesture", joints, labels, shots=args.shots, seed=args.seed)
    from ..synth.gestures import TRAIN

    return _report_eval(out, labels, TRAIN, args.json)


def _only_unseen(x: np.ndarray, labels: np.ndarray, unseen, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The examples (skeletons or windows) of classes the embedding never trained on; evaluating needs two."""
    keep = np.isin(labels, unseen)
    x, labels = x[keep], labels[keep]
    if len(np.unique(labels)) < 2:
        raise InputError(
            f"fewer than two {what} the embedding never trained on ({', '.join(np.unique(labels)) or 'none'}); "
            "evaluate without --unseen-only"
        )
    return x, labels


def _report_eval(out: dict, labels: np.ndarray, train, as_json: bool) -> int:
    """Print an eval's figures, with the evaluated classes the embedding did train on named (its figures
    on those are optimistic)."""
    out["seen_in_training"] = sorted({str(c) for c in np.unique(labels)} & set(train))
    print(json.dumps(out) if as_json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


def _enroll_dynamic(args) -> int:
    from ..gestures.dynamic import DynamicGallery
    from .gesture_dynamic import load_motions, windows_from_track

    if args.joints:
        windows = load_motions(args.joints)[0]
        if len(windows) == 0:
            raise InputError(f"{args.joints}: no finite example to enroll")
    else:
        args.max_frames = args.max_frames or 300
        windows = windows_from_track(*track_from_source(args))
    gallery = DynamicGallery.load(args.gallery, missing_ok=True)
    gallery.add(args.name, _evenly(windows, args.keep))
    gallery.save(args.gallery)
    print(
        f"handstream gesture: enrolled motion {args.name!r} from {min(len(windows), args.keep)} examples -> {args.gallery}"
    )
    return 0


def _eval_dynamic(args) -> int:
    from ..synth.motions import TRAIN, UNSEEN
    from .gesture_dynamic import evaluate_dynamic_engine, load_motions

    if not args.joints:
        raise InputError(
            "gesture eval --dynamic needs --joints MOTIONS.npz ((N, T, 21, 3) windows with labels)"
        )
    windows, labels = load_motions(args.joints, need_labels=True)
    if args.unseen_only:
        windows, labels = _only_unseen(windows, labels, UNSEEN, "motions")
    out = evaluate_dynamic_engine(args.engine or "dynamic_gesture", windows, labels, args.shots, args.seed)
    return _report_eval(out, labels, TRAIN, args.json)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
