"""The gesture embedding on skeletons it did not generate: MediaPipe Hands' landmarks of rendered gestures.

Our gesture figures come from skeletons of our own hand model. A user's skeletons come from elsewhere: another
hand model, another coordinate frame, metres instead of millimetres. This script measures that honestly with
the one other hand-pose system we can run here, MediaPipe Hands (its own virtualenv, tools/mediapipe_env.sh):

1. render colour frames of the gesture classes the embedding never saw in training (the generator's scenes,
   640x480, a right hand), `--per-class` of each;
2. MediaPipe finds the hand and estimates its 21 landmarks (palm detection on every frame, `--complexity`):
   "world" landmarks in metres about the hand's centre, and image landmarks (pixels, relative depth);
3. `handstream gesture eval`'s own evaluation (Recall@K, NMI, K-shot with the engine's rejection distance)
   runs on MediaPipe's world landmarks as they come (metres, MediaPipe's axes), on its image landmarks
   scaled to pixels, and -- for reference, on the same frames -- on the generator's true joints, clean and
   blurred by Gaussian noise as large as MediaPipe's own error on them (which separates what the other hand
   model and frame cost from what MediaPipe's estimation error costs).

    .venv/bin/python tools/gesture_other_skeletons.py --out runs/gesture/mediapipe --per-class 40

`--training-classes` renders the classes the embedding trains on instead and only writes MediaPipe's
skeletons of them (OUT/skeletons.npz), which `handstream train gesture train --other-skeletons` mixes into its
pools: training on the other system's own estimates (BENCHMARKS.md, "Gestures": worse on MediaPipe's).

MediaPipe's joint order is ours (stream.synth.hand.JOINT_NAMES), so no joints are remapped. Prints one JSON
object and writes it to OUT/report.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def render(
    out: Path, per_class: int, seed: int, classes: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Colour frames of `classes` (default: the unseen gesture classes) with their labels and true joints
    (mm, camera frame)."""
    from stream.frames import camera
    from stream.synth import gestures as vocab
    from stream.synth.scene import HandSynthesizer, SceneConfig

    synth = HandSynthesizer(SceneConfig(camera=camera("d435_640x480"), color=True), seed=seed)
    color, labels, joints = [], [], []
    k = 0
    for name in vocab.UNSEEN if classes is None else classes:
        for _ in range(per_class):
            s = vocab.render_gesture(synth, name, k)
            k += 1
            color.append(s.frame.color_bgr)
            labels.append(name)
            joints.append(s.joints_xyz_mm)
    data = {"color_bgr": np.stack(color), "label": np.array(labels), "joints_xyz_mm": np.stack(joints)}
    np.savez(out / "frames.npz", **data)
    return data


def mediapipe_landmarks(frames: Path, out: Path, python: str, complexity: int) -> dict[str, np.ndarray]:
    peer = ROOT / "tools" / "mediapipe_peer.py"
    cmd = [python, str(peer), "--npz", str(frames), "--landmarks", str(out), "--complexity", str(complexity)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"the MediaPipe peer failed ({python}): {tail[0]}")
    with np.load(out) as d:
        return {k: d[k] for k in d.files}


def evaluate(joints: np.ndarray, labels: np.ndarray, shots: int, seed: int) -> dict:
    from stream.app.gesture_eval import evaluate_engine

    r = evaluate_engine("gesture", joints, labels, shots, seed)
    return {k: r[k] for k in ("recall_at", "nmi", "shot_accuracy", "shot_accuracy_with_rejection", "samples")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/gesture/mediapipe")
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--complexity", type=int, choices=(0, 1), default=0, help="MediaPipe's model complexity")
    ap.add_argument("--mediapipe-python", default=str(ROOT / ".cache/mediapipe-venv/bin/python"))
    ap.add_argument(
        "--training-classes",
        action="store_true",
        help="render the classes the embedding trains on instead, evaluate nothing, and write MediaPipe's "
        "world skeletons (mm) with their labels to OUT/skeletons.npz: the trainer's --other-skeletons",
    )
    a = ap.parse_args(argv)
    if not Path(a.mediapipe_python).is_file():
        raise SystemExit(f"no MediaPipe virtualenv at {a.mediapipe_python}: run bash tools/mediapipe_env.sh")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from stream.synth import gestures as vocab

    data = render(out, a.per_class, a.seed, vocab.TRAIN if a.training_classes else None)
    mp = mediapipe_landmarks(out / "frames.npz", out / "landmarks.npz", a.mediapipe_python, a.complexity)
    found = np.isfinite(mp["world_m"][:, 0, 0])
    if a.training_classes:
        (out / "frames.npz").unlink()  # the frames are large and the skeletons are what the trainer reads
        np.savez(
            out / "skeletons.npz", joints_xyz_mm=mp["world_m"][found] * 1000.0, label=data["label"][found]
        )
        print(
            json.dumps(
                {
                    "frames": int(len(found)),
                    "mediapipe_found": int(found.sum()),
                    "out": str(out / "skeletons.npz"),
                }
            )
        )
        return 0
    labels = data["label"][found]
    h, w = data["color_bgr"].shape[1:3]
    image_px = mp["image"][found] * np.array([w, h, w], np.float32)  # MediaPipe: z on x's scale
    per_class = {str(c): int((labels == c).sum()) for c in np.unique(data["label"])}
    truth = data["joints_xyz_mm"][found]
    err_mm = _aligned_error(mp["world_m"][found] * 1000.0, truth)
    # the same skeletons, blurred as much as MediaPipe's differ from them: a mean 3-D error e comes from
    # Gaussian noise of sd e / 1.596 per coordinate (the mean of a 3-D normal's norm is 1.596 sd)
    rng = np.random.default_rng(a.seed)
    blurred = truth + rng.normal(0.0, err_mm / 1.596, truth.shape)
    report = {
        "frames": int(len(found)),
        "mediapipe_complexity": a.complexity,
        "mediapipe_found": int(found.sum()),
        "found_per_class": per_class,
        "mediapipe_world_m": evaluate(mp["world_m"][found], labels, a.shots, a.seed),
        "mediapipe_image_px": evaluate(image_px, labels, a.shots, a.seed),
        "true_joints_same_frames": evaluate(truth, labels, a.shots, a.seed),
        "true_joints_with_mediapipe_sized_noise": evaluate(blurred, labels, a.shots, a.seed),
        "mediapipe_vs_truth_mean_joint_error_mm_after_alignment": err_mm,
    }
    text = json.dumps(report)
    (out / "report.json").write_text(text)
    print(text)
    return 0


def _aligned_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean joint distance after the best rotation + translation of each skeleton onto the true one (Kabsch,
    no scale): how far MediaPipe's hand shape is from the rendered one, whatever its frame."""
    errs = []
    for x, y in zip(a.astype(np.float64), b.astype(np.float64)):
        xc, yc = x - x.mean(0), y - y.mean(0)
        u, _, vt = np.linalg.svd(xc.T @ yc)
        d = np.sign(np.linalg.det(u @ vt))
        r = u @ np.diag([1.0, 1.0, d]) @ vt
        errs.append(np.linalg.norm(xc @ r - yc, axis=1).mean())
    return round(float(np.mean(errs)), 2) if errs else float("nan")


if __name__ == "__main__":
    sys.exit(main())
