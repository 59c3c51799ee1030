"""`handstream eval size ENGINE --data DIR --json`: a size engine through the runtime on a synthetic dataset.

Every frame of a `handstream synth` dataset (its labels carry the subject's hand length and palm width) goes
through the real pipeline (our segmentation, the metric cube crop, the size stage), restarted at each new
sequence and before every independent frame. Reported: per-frame MAE (mm) and MAPE (%) per quantity over
the frames where a hand was found, and, on a dataset of sequences (`handstream synth --sequences`), the
calibrated error: the calibrator's estimate after the first second of each sequence against the truth,
and the spread (sd) of the per-frame estimates within a sequence. `default` is the shipped engine; `fit`
measures the size by fitting hand models of several sizes to the depth (the `size_fit` stage, after the
shipped pose engine), whose calibrated size sums the candidates' energies over the frames.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from ..errors import InputError


def evaluate_size(
    engine: str, data: str, seconds: float = 1.0, limit: int = 0, backend: str = "auto"
) -> dict:
    from ..frames import RGBDFrame
    from ..pipeline import build_pipeline
    from ..synth.dataset import load_dataset
    from .metrics import held_errors, mae, mape, sequence_spread

    meta, a = load_dataset(data)
    for key in ("hand_size_mm", "subject", "sequence"):
        if key not in a:
            raise InputError(f"{data}: the dataset has no {key!r} array (write it with `handstream synth`)")
    from ..frames import CameraIntrinsics

    intr = CameraIntrinsics.from_dict(meta["intrinsics"])
    n = len(a["depth_mm"]) if not limit else min(int(limit), len(a["depth_mm"]))
    options = {}
    if engine == "fit":
        models = ["pose", "size_fit"]
        # measure every frame (the stage alone stops after a track's first second), so that the per-frame
        # figures cover the same frames as an engine's; the calibrated figure reads the size held after 1 s
        options = {"size_fit": {"frames": n}}
    else:
        models = ["size" if engine == "default" else f"size={engine}"]
    pred = np.full((n, 2), np.nan)
    held = np.full((n, 2), np.nan)  # the stage's calibrated size after each frame
    fps = float(meta.get("fps") or 30.0)
    with build_pipeline(
        backend=backend, models=models, overlay=False, smoothing=False, threads=1, stage_options=options
    ) as pipe:
        last = None
        for i in range(n):
            seq = int(a["sequence"][i])
            if seq < 0 or seq != last:
                pipe.reset()
            last = seq
            f = RGBDFrame(i, 1000.0 * float(a["frame"][i]) / fps, a["depth_mm"][i], intr, source="synth")
            fields = pipe.process(f).fields
            v = fields.get("hand_size_frame_mm")
            if v is not None:
                pred[i] = v
            v = fields.get("hand_size_mm")
            if v is not None:
                held[i] = v
    true = a["hand_size_mm"][:n].astype(np.float64)
    seqs = a["sequence"][:n]
    ok = np.isfinite(pred).all(1)
    if not ok.any():
        raise InputError(f"{data}: no hand found in {n} frames")
    m, p = mae(pred[ok], true[ok]), mape(pred[ok], true[ok])
    out = {
        "engine": engine,
        "frames": int(n),
        "found": round(float(ok.mean()), 4),
        "length_mae_mm": float(m[0]),
        "width_mae_mm": float(m[1]),
        "length_mape": float(p[0]),
        "width_mape": float(p[1]),
        "calibrated_length_mae_mm": None,
        "calibrated_width_mae_mm": None,
        "calibration_seconds": float(seconds),
        "sequences": 0,
        "sequence_sd_mm": None,
        "subjects": int(len(np.unique(a["subject"][:n]))),
    }
    if (seqs >= 0).any():
        s = seqs >= 0
        frames = max(1, int(round(seconds * fps)))
        cal = held_errors(held[s], true[s], seqs[s], frames)
        if len(cal):
            out["calibrated_length_mae_mm"] = float(cal[:, 0].mean())
            out["calibrated_width_mae_mm"] = float(cal[:, 1].mean())
            out["sequences"] = int(len(cal))
        sel = s & ok
        out["sequence_sd_mm"] = sequence_spread(pred[sel], seqs[sel])["sd_mm"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="handstream eval size", description=__doc__)
    p.add_argument("engine", help="a size engine (.onnx with its manifest) or `default` (the shipped one)")
    p.add_argument("--data", required=True, help="a `handstream synth` dataset (--sequences for calibration)")
    p.add_argument("--seconds", type=float, default=1.0, help="calibration time per sequence (default 1 s)")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N frames only (0 = all)")
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt", "torch"))
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.seconds <= 0 or a.limit < 0:
        raise InputError("--seconds must be > 0 and --limit >= 0")
    r = evaluate_size(a.engine, a.data, a.seconds, a.limit, a.backend)
    if a.json:
        print(json.dumps(r))
    else:
        for k, v in r.items():
            print(f"{k}: {round(v, 3) if isinstance(v, float) else v}")
    return 0
