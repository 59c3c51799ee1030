"""Dynamic gestures in `handstream gesture`: enrolling motions from skeleton windows or a recording, and
evaluating the dynamic embedding engine (`--dynamic`).

A FILE.npz of motions holds `joints_xyz_mm` (N, T, 21, 3): N examples of T joint sets each in our joint order,
any unit and coordinate frame whose axes are the camera's (x right, y down, z away; the motion's direction is
part of the gesture), sampled at `fps` (an optional scalar in the file, 30 if absent), each example ending
when its gesture ends; for `eval`, `label` (N,). Each example becomes the window the runtime sees when the
gesture has just ended (stream.gestures.dynamic.example_window).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..gestures.dynamic import FRAMES, WINDOW_MS, example_window, motion_segments, resample_track


def load_motions(path: str, need_labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(windows (N, FRAMES, 21, 3), labels (N,) or None) from a FILE.npz of motions; examples holding NaN
    or inf are dropped."""
    try:
        with np.load(path, allow_pickle=False) as z:
            joints = np.asarray(z["joints_xyz_mm"], np.float64)
            labels = np.asarray(z["label"]).astype(str) if "label" in z.files else None
            fps = float(z["fps"]) if "fps" in z.files else 30.0
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: needs an .npz with joints_xyz_mm (N, T, 21, 3) ({exc})") from None
    if joints.ndim != 4 or joints.shape[2:] != (21, 3) or len(joints) == 0 or joints.shape[1] < 2:
        raise InputError(
            f"{path}: dynamic gestures need joints_xyz_mm (N, T, 21, 3) with N >= 1, T >= 2, got {joints.shape}"
        )
    if not np.isfinite(fps) or fps <= 0:
        raise InputError(f"{path}: fps must be a positive number, got {fps}")
    if need_labels and (labels is None or labels.shape != (len(joints),)):
        raise InputError(f"{path}: evaluation needs a `label` array with one name per example")
    keep = np.isfinite(joints).all(axis=(1, 2, 3))
    windows = (
        np.stack([example_window(j, fps) for j in joints[keep]])
        if keep.any()
        else np.zeros((0, FRAMES, 21, 3))
    )
    return windows, (labels[keep] if labels is not None else None)


def windows_from_track(times_ms: np.ndarray, joints: np.ndarray, after_ms: float = 100.0) -> np.ndarray:
    """(K, FRAMES, 21, 3): one window per performance found in the track (stream.gestures.dynamic.
    motion_segments), ending `after_ms` after the movement stops, as the runtime's window does."""
    segs = motion_segments(times_ms, joints)
    if not segs:
        raise InputError(
            "the hand did not move in the recording; perform the gesture a few times, resting between"
        )
    end = float(times_ms[-1])
    return np.stack(
        [resample_track(times_ms, joints, min(b + after_ms, end), WINDOW_MS, FRAMES) for _, b in segs]
    )


def evaluate_dynamic_engine(
    engine_name: str, windows: np.ndarray, labels: np.ndarray, shots: int, seed: int
) -> dict:
    """Recall@K, NMI and K-shot accuracy of a dynamic embedding engine on labelled windows; the same keys as
    the static `gesture eval`."""
    import engines

    from ..gestures.dynamic import resample_windows, window_features

    try:
        from train.gesture.metrics import embedding_report
    except ImportError as exc:
        raise InputError(
            f"gesture eval needs the train extra ({exc}); pip install 'handstream[train]'"
        ) from None
    if len(np.unique(labels)) < 2:
        raise InputError(f"evaluation needs at least two classes, got {len(np.unique(labels))}")
    with engines.load_engine(engine_name, backend="onnxruntime") as engine:
        frames = int(engine.manifest.preprocessing.get("frames", FRAMES))
        feats = window_features(resample_windows(windows, frames)).astype(np.float32)
        out = engine.output_names[0]
        emb = np.concatenate([np.asarray(engine.infer(f[None])[out]) for f in feats])
        reject = engine.manifest.metrics.get("reject_distance")
    report = embedding_report(emb, labels, shots=shots, seed=seed, reject_distance=reject)
    report.setdefault("shot_accuracy_with_rejection", None)
    return report
