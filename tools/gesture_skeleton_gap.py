"""Why gestures fail on another system's skeletons: what canonicalisation, training and the estimate itself do.

Reads what tools/gesture_other_skeletons.py saved (OUT/frames.npz: labels and the generator's true joints;
OUT/landmarks.npz: MediaPipe's landmarks of the same frames), so MediaPipe need not run again, and reports:

1. canonicalisations that ignore bone proportions and joint placement, through the shipped engine and as
   raw nearest neighbours (and frame-free features: bend angles, signed or not, and pairwise distances): our canonical frame; "standard bones" (each bone's direction in the canonical
   frame re-chained from the wrist with the generator's mean bone lengths); the model fitter's inverse
   kinematics (stream.fitting) re-posed on one standard hand, which also clips angles to the anatomical
   limits (right hands only: the rendered frames are right hands);
2. embeddings given as checkpoints (`--checkpoint`, e.g. trained with train.gesture.augment's hand-model
   augmentation) beside the shipped engine, on all 14 classes and on two class-disjoint halves: `val`
   (UNSEEN[0::2], one class of each coarse group, for choosing) and `test` (UNSEEN[1::2], for reporting);
3. where MediaPipe's estimate is simply different: per-finger bend errors against our joints (signed: a
   finger bent the other way; and sign-free), their spread within a class, fingertip distances, in the
   image plane too (no depth involved), and Recall@1 when one finger's bone directions are swapped between
   MediaPipe's skeleton and ours.

    OMP_NUM_THREADS=1 .venv/bin/python tools/gesture_skeleton_gap.py --mediapipe runs/gesture/mediapipe \
        [--checkpoint runs/gesture/aug/gesture.pt ...]

Prints one JSON object (and writes it to --out when given).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream.gestures.canonical import canonical_joints  # noqa: E402
from stream.synth import gestures as vocab  # noqa: E402

# each chain from the wrist: wrist, then its four joints (thumb, index, middle, ring, pinky)
CHAINS = np.array(
    [[0, 1, 2, 3, 4], [0, 5, 6, 7, 8], [0, 9, 10, 11, 12], [0, 13, 14, 15, 16], [0, 17, 18, 19, 20]]
)
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
TIPS = CHAINS[:, 4]
SPLITS = {"val": vocab.UNSEEN[0::2], "test": vocab.UNSEEN[1::2], "all": vocab.UNSEEN}


def load(folder: Path) -> dict[str, np.ndarray]:
    """The frames MediaPipe found a hand in: labels, its world (m) and image (px) landmarks, our joints."""
    from stream.frames import camera

    cam = camera("d435_640x480")  # the frames tools/gesture_other_skeletons.py renders
    w, h = cam.width, cam.height
    with np.load(folder / "frames.npz") as f, np.load(folder / "landmarks.npz") as m:
        found = np.isfinite(m["world_m"][:, 0, 0])
        return {
            "label": f["label"][found],
            "mp_world": m["world_m"][found].astype(np.float64),
            "mp_image": m["image"][found].astype(np.float64) * np.array([w, h, w]),  # z on x's scale
            "truth": f["joints_xyz_mm"][found].astype(np.float64),
        }


def bones(c: np.ndarray) -> np.ndarray:
    """(N, 5, 4, 3) each chain's bones from the wrist: palm bone, proximal, middle, distal."""
    return np.diff(np.asarray(c, np.float64)[:, CHAINS], axis=2)


def standard_bones(c: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Canonical joints with every bone's direction kept and its length replaced by `lengths` (5, 4)."""
    b = bones(c)
    u = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    out = np.zeros_like(np.asarray(c, np.float64))
    out[:, CHAINS[:, 1:]] = np.cumsum(u * lengths[..., None], axis=2)
    return canonical_joints(out)


def ik_reposed(joints: np.ndarray) -> np.ndarray:
    """Each skeleton's joint angles (stream.fitting.inverse_kinematics, clipped to the limits) posed on one
    standard right hand, canonical."""
    from stream.fitting import build_model, default_shape, inverse_kinematics
    from stream.fitting.model import pose_joints

    model = build_model(default_shape(185.0, 85.0))
    out = [pose_joints(model, np.eye(3), np.zeros(3), inverse_kinematics(model, j)[2]) for j in joints]
    return canonical_joints(np.stack(out))


def engine_embedder(name: str):
    import engines

    eng = engines.load_engine(name, backend="onnxruntime")
    out = eng.output_names[0]
    return lambda c: np.concatenate([np.asarray(eng.infer(x[None])[out]) for x in c.astype(np.float32)])


def checkpoint_embedder(path: str):
    import torch

    from train.gesture.models import create_gesture_model
    from train.gesture.recipe import load_checkpoint
    from train.gesture.train import embed

    torch.set_num_threads(1)
    _, model = load_checkpoint(
        path, create_gesture_model, n_coarse=len(vocab.COARSE), n_fine=len(vocab.TRAIN)
    )
    return lambda c: embed(model, c.astype(np.float32))


def scores(emb: np.ndarray, labels: np.ndarray, classes=vocab.UNSEEN) -> list[float]:
    """[R@1, R@2, R@4, R@8, NMI, 5-shot] among the samples of `classes` (the gesture eval's metrics)."""
    from train.gesture.metrics import embedding_report

    keep = np.isin(labels, classes)
    r = embedding_report(emb[keep], labels[keep], shots=5, seed=2024)
    return [round(r["recall_at"][k], 3) for k in ("1", "2", "4", "8")] + [
        round(r["nmi"], 3),
        round(r["shot_accuracy"], 3),
    ]


def bend(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5, 3) the angle between consecutive bones at each chain's three joints (deg), and the same signed:
    positive when the child bone turns about +x of the canonical frame (towards the palm of a right hand)."""
    b = bones(c)
    u = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    ang = np.degrees(np.arccos(np.clip((u[:, :, :-1] * u[:, :, 1:]).sum(-1), -1.0, 1.0)))
    return ang, ang * np.sign(np.cross(u[:, :, :-1], u[:, :, 1:])[..., 0])


def swap_fingers(src: np.ndarray, dst: np.ndarray, fingers) -> np.ndarray:
    """`src` (canonical) with the given chains' bone directions taken from `dst` (src's bone lengths kept)."""
    out = np.asarray(src, np.float64).copy()
    bs, bd = bones(src), bones(dst)
    for f in fingers:
        u = bd[:, f] / np.maximum(np.linalg.norm(bd[:, f], axis=-1, keepdims=True), 1e-12)
        out[:, CHAINS[f, 1:]] = np.cumsum(u * np.linalg.norm(bs[:, f], axis=-1, keepdims=True), axis=1)
    return out


def image_plane(points: np.ndarray) -> np.ndarray:
    """(N, 21, 2) a 2-D canonical frame of image points: wrist at the origin, the mean MCP straight up, unit
    = the mean wrist-to-MCP distance in the image."""
    rel = points[:, :, :2] - points[:, :1, :2]
    mcps = rel[:, [5, 9, 13, 17]]
    y = mcps.mean(1)
    y /= np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-12)
    x = np.stack([y[:, 1], -y[:, 0]], -1)
    scale = np.linalg.norm(mcps, axis=-1).mean(1)
    return np.stack([(rel * x[:, None]).sum(-1), (rel * y[:, None]).sum(-1)], -1) / scale[:, None, None]


def estimate_gap(d: dict, embed) -> dict:
    """Part 3: how MediaPipe's skeletons differ from ours on the same frames, and what each finger costs."""
    from stream.frames import camera

    lab = d["label"]
    mp, tr = canonical_joints(d["mp_world"]), canonical_joints(d["truth"])
    (u_mp, s_mp), (u_tr, s_tr) = bend(mp), bend(tr)
    err = np.abs(s_mp - s_tr)
    flipped = (np.abs(s_tr) > 20) & (np.abs(s_mp) > 10) & (np.sign(s_mp) != np.sign(s_tr))

    def spread(a: np.ndarray) -> float:
        return round(float(np.mean([a[lab == c].std(0).mean() for c in np.unique(lab)])), 1)

    cam = camera("d435_640x480")
    t = d["truth"]
    uv = np.stack([cam.fx * t[..., 0] / t[..., 2] + cam.cx, cam.fy * t[..., 1] / t[..., 2] + cam.cy], -1)
    img_err = np.linalg.norm(image_plane(d["mp_image"]) - image_plane(uv), axis=-1)
    r1 = lambda c: scores(embed(canonical_joints(c)), lab)[0]  # noqa: E731
    e = embed(mp)
    dd = ((e[:, None] - e[None]) ** 2).sum(-1)
    np.fill_diagonal(dd, np.inf)
    nearest = lab[dd.argmin(1)]
    per_class = {}
    for c in np.unique(lab):
        wrong = list(nearest[(lab == c) & (nearest != c)])
        per_class[str(c)] = {
            "frames": int((lab == c).sum()),
            "r1": round(float((nearest[lab == c] == c).mean()), 2),
            "signed_bend_error_deg": round(float(err[lab == c].mean()), 1),
            "most_taken_for": max(set(wrong), key=wrong.count) if wrong else None,
        }
    return {
        "signed_bend_error_deg_mcp_pip_dip": {f: np.round(err[:, i].mean(0), 1).tolist() for i, f in enumerate(FINGERS)},
        "signed_bend_error_deg_mean": round(float(err.mean()), 1),
        "sign_free_bend_error_deg_mean": round(float(np.abs(u_mp - u_tr).mean()), 1),
        "finger_joints_bent_the_other_way": round(float(flipped.mean()), 3),
        "frames_with_a_finger_joint_bent_the_other_way": round(float(flipped.any((1, 2)).mean()), 3),
        "bend_sd_within_class_deg": {"truth": spread(s_tr), "mediapipe": spread(s_mp)},
        "sign_free_bend_sd_within_class_deg": {"truth": spread(u_tr), "mediapipe": spread(u_mp)},
        "fingertip_distance_palm_lengths": dict(zip(FINGERS, np.round(np.linalg.norm(mp[:, TIPS] - tr[:, TIPS], axis=-1).mean(0).astype(np.float64), 2).tolist())),
        "image_plane_distance_palm_lengths": {"mean": round(float(img_err.mean()), 3), "fingertips": round(float(img_err[:, TIPS].mean()), 3)},
        "mediapipe_per_class": per_class,
        "r1_truth_with_one_mediapipe_finger": {f: r1(swap_fingers(tr, mp, [i])) for i, f in enumerate(FINGERS)},
        "r1_mediapipe_with_one_true_finger": {f: r1(swap_fingers(mp, tr, [i])) for i, f in enumerate(FINGERS)},
        "r1_mediapipe_lengths_true_directions": r1(swap_fingers(mp, tr, range(5))),
        "r1_image_plane_nearest_neighbour": {
            "mediapipe": scores(image_plane(d["mp_image"]).reshape(len(lab), -1), lab)[0],
            "truth": scores(image_plane(uv).reshape(len(lab), -1), lab)[0],
        },
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--mediapipe", default="runs/gesture/mediapipe", help="tools/gesture_other_skeletons.py's --out"
    )
    ap.add_argument("--checkpoint", action="append", default=[], help="a gesture.pt to compare (repeatable)")
    ap.add_argument("--engine", default="gesture")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    folder = Path(a.mediapipe)
    if not (folder / "landmarks.npz").is_file():
        raise SystemExit(f"no landmarks.npz in {folder}: run tools/gesture_other_skeletons.py --out {folder}")
    d = load(folder)
    lab = d["label"]
    shipped = engine_embedder(a.engine)
    ref = canonical_joints(vocab.gesture_dataset(vocab.TRAIN, 40, 99)["joints_xyz_mm"])
    lengths = np.linalg.norm(bones(ref), axis=-1).mean(0)
    sources = ("mp_world", "mp_image", "truth")
    frames = {
        "canonical": canonical_joints,
        "standard_bones": lambda j: standard_bones(canonical_joints(j), lengths),
        "ik_reposed": ik_reposed,
    }
    report: dict = {"frames": len(lab), "canonicalisation": {}, "embeddings": {}}
    for fname, fn in frames.items():
        for s in sources:
            c = fn(d[s])
            report["canonicalisation"][f"{fname} {s}"] = {
                "engine": scores(shipped(c), lab),
                "raw_nearest_neighbour": scores(c.reshape(len(c), -1), lab),
            }
    iu = np.triu_indices(21, 1)
    features = {  # frame-free descriptions of a canonical skeleton, compared by raw nearest neighbour
        "sign_free_bends": lambda c: np.radians(bend(c)[0]).reshape(len(c), -1),
        "signed_bends": lambda c: np.radians(bend(c)[1]).reshape(len(c), -1),
        "pairwise_distances": lambda c: np.linalg.norm(c[:, iu[0]] - c[:, iu[1]], axis=-1),
    }
    report["raw_features"] = {
        f"{fname} {s}": scores(fn(canonical_joints(d[s])), lab)
        for fname, fn in features.items()
        for s in sources
    }
    for name in [a.engine, *a.checkpoint]:
        embed = shipped if name == a.engine else checkpoint_embedder(name)
        for s in sources:
            e = embed(canonical_joints(d[s]))
            report["embeddings"][f"{name} {s}"] = {k: scores(e, lab, cl) for k, cl in SPLITS.items()}
    report["estimate"] = estimate_gap(d, shipped)
    text = json.dumps(report)
    if a.out:
        Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
