"""Evaluate a pose model on a `handstream synth` dataset the way the pipeline runs it: our HandSegmenter finds
the hand, crop_cube cuts the normalized cube around its centre of mass (with its mask), the engine or
checkpoint predicts normalized joints, denormalize_joints maps them back to camera mm.

Frames where the segmenter finds no hand have no prediction: they count as failures in the success rate
(max error = infinity) and are left out of the mean error, which is reported with the found count."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from stream.errors import InputError

from .metrics import DEFAULT_THRESHOLDS_MM, joint_errors_mm, success_curve


def load_predictor(ref: str) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """'default' / an engine path / a .pt checkpoint -> (predict (S, S) crop -> (3J,) normalized, info)
    where info holds crop_size, cube_mm, num_joints, joint_layout and what was loaded."""
    p = Path(ref)
    if p.suffix in (".pt", ".pth", ".ckpt"):
        import torch

        from .trainer import load_trained

        model, meta = load_trained(p)

        def run_torch(crop: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(crop[None, None].astype(np.float32)))[0].numpy()

        info = {k: meta.get(k) for k in ("crop_size", "cube_mm", "num_joints", "joint_layout", "model_name")}
        info["source"] = f"checkpoint {p}"
        return run_torch, info
    import engines

    eng = engines.load_engine(ref, backend="onnxruntime") if ref != "default" else engines.load_engine("pose")
    pre = eng.manifest.preprocessing
    out_name = eng.output_names[0]

    def run_engine(crop: np.ndarray) -> np.ndarray:
        return np.asarray(eng.infer(crop[None, None].astype(np.float32))[out_name]).reshape(-1)

    info = {
        "crop_size": pre.get("crop_size"),
        "cube_mm": pre.get("cube_mm"),
        "num_joints": pre.get("num_joints"),
        "joint_layout": pre.get("joint_layout"),
        "model_name": eng.manifest.model,
        "source": f"engine {ref} ({eng.describe()})",
    }
    return run_engine, info


def evaluate_synthetic(model_ref: str, data_dir: str | Path, limit: int = 0, gt_centre: bool = False) -> dict:
    """metrics.summary()-style dict (mean_mm over found frames, per_joint_mm, success_rate with misses as
    failures) plus found / frames_total and what model was used."""
    from stream.preprocess import HandSegmenter, crop_cube, denormalize_joints
    from stream.synth import JOINT_NAMES

    from .data import mask_centre, synthetic_dir_frames

    predict, info = load_predictor(str(model_ref))
    size, cube = int(info["crop_size"]), float(info["cube_mm"])
    seg = HandSegmenter()
    errs, worst = [], []
    total = found = 0
    for fr in synthetic_dir_frames(data_dir, limit=limit):
        total += 1
        if gt_centre:
            com, mask = mask_centre(fr), fr.mask
            if com is None:
                worst.append(np.inf)
                continue
        else:
            s = seg.segment(fr.depth_mm, fr.intrinsics)
            if not s.found:
                worst.append(np.inf)
                continue
            com, mask = s.best.com_xyz_mm, s.best.mask
        crop = crop_cube(fr.depth_mm, fr.intrinsics, com, cube, size, mask)
        norm = predict(crop.depth).reshape(-1, 3)
        if norm.shape[0] != fr.joints_xyz_mm.shape[0]:
            raise InputError(
                f"model predicts {norm.shape[0]} joints, the dataset has {fr.joints_xyz_mm.shape[0]}"
            )
        e = joint_errors_mm(denormalize_joints(norm, crop), fr.joints_xyz_mm)[0]
        errs.append(e)
        worst.append(float(e.max()))
        found += 1
    if not total:
        raise InputError(f"{data_dir}: no frames")
    if not errs:
        raise InputError(f"{data_dir}: the segmenter found no hand in any of {total} frames")
    err = np.stack(errs)
    curve_t = np.arange(0, 81, 1.0)
    return {
        "frames": int(found),
        "frames_total": int(total),
        "found": int(found),
        "mean_mm": float(err.mean()),
        "median_mm": float(np.median(err)),
        "per_joint_mm": [float(v) for v in err.mean(axis=0)],
        "success_rate": {
            f"{t:g}": float(v)
            for t, v in zip(DEFAULT_THRESHOLDS_MM, success_curve(np.array(worst), DEFAULT_THRESHOLDS_MM))
        },
        "success_curve": {
            "threshold_mm": curve_t.tolist(),
            "fraction": success_curve(np.array(worst), curve_t).tolist(),
        },
        "joint_names": list(JOINT_NAMES) if err.shape[1] == len(JOINT_NAMES) else None,
        "centre": "ground-truth mask" if gt_centre else "our segmentation",
        "model": info,
    }
