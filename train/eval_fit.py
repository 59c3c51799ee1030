"""`handstream eval fit`: the pose engine alone against the engine + the hand-model fit (stream/fitting).

Every frame goes the pipeline's way: the preprocess stage (our HandSegmenter, and the presence check
choosing among its candidates; `--no-presence` leaves it out), the engine's crop, the engine's joints, then
the `fit` stage itself with its second readings of a poorly fitted new hand (`--one-reading` leaves them
out), a fresh track per frame (the test frames are independent). Three rows per data set:
  - engine: the engine's joints as they are;
  - fit (calibrated size): the stage given the subject's true (length, width) as `hand_size_mm`, as when
    the user's hand size is known;
  - fit (estimated size): the stage estimating the size from this one frame's engine joints.
Misses of the segmenter count as failures in the success rates and are left out of the means, as in
`handstream eval synthetic`. The stage's own time per frame (wall and this thread's CPU time, with the
load average, since the machine is shared) is reported beside the accuracy.

`--sweep` repeats the calibrated fit for iterations x points (the cost/accuracy trade-off); `--nyu` adds
the real NYU frame 1; `--sequence-frames N` measures bone-length standard deviations over an N-frame
synthetic sequence of one subject (one track, shape held after the first frames).

    handstream eval fit --data data/synth_test_4242 --nyu --sequence-frames 150
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from stream.errors import InputError

from .metrics import DEFAULT_THRESHOLDS_MM, success_curve

TIPS = (4, 8, 12, 16, 20)
NEAR_MM = 40.0


def _engine():
    """(predict crop -> (21, 3) normalized, crop size, cube mm) of the shipped pose engine."""
    from .evaluate import load_predictor

    predict, info = load_predictor("default")
    return predict, int(info["crop_size"]), float(info["cube_mm"])


def _readings(use: bool = True) -> dict:
    """The fit stage's second readings of a new hand as the pipeline gives them (stream/fitting/stage.py):
    the pose engine's twin read the other way up and the pose engine itself for the re-cut crop; {} when
    not asked for."""
    import engines
    from engines.flip_canonical import twin_of

    if not use:
        return {}
    pose = engines.load_engine("pose", backend="onnxruntime", threads=1)
    name = twin_of(pose)
    twin = engines.load_engine(name, backend="onnxruntime", threads=1) if name else None
    return {"alternative": twin, "recut_engine": pose}


def _fit_stage(config=None, alternative=None, recut_engine=None):
    from stream.fitting.fit import FitConfig
    from stream.fitting.stage import FitStage

    return FitStage(config=config or FitConfig(), alternative=alternative, recut_engine=recut_engine)


def _run_stage(
    stage, depth, intr, crop, joints, size=None, fields=None, detection=None
) -> tuple[np.ndarray, float, float]:
    """The stage on one frame: (joints out, wall ms, thread CPU ms); `fields` (a dict) gets the frame's
    fields the stage wrote; `detection`: the segmenter's hand (its mask: the fit's re-cut reads it)."""
    from stream.frames import RGBDFrame
    from stream.stages import FrameState

    st = FrameState(RGBDFrame(index=0, timestamp_ms=0.0, depth_mm=depth, intrinsics=intr))
    st.crop, st.joints_raw_mm, st.detection = crop, joints, detection
    if size is not None:
        st.fields["hand_size_mm"] = np.asarray(size, dtype=np.float32)
    t0, c0 = time.perf_counter(), time.thread_time()
    stage.run(st)
    wall, cpu = (time.perf_counter() - t0) * 1e3, (time.thread_time() - c0) * 1e3
    if fields is not None:
        fields.update(st.fields)
    return st.joints_raw_mm, wall, cpu


def _row(errs: list[np.ndarray], total: int) -> dict:
    err = np.stack(errs)
    worst = np.concatenate([err.max(1), np.full(total - len(errs), np.inf)])
    return {
        "found": len(errs),
        "frames_total": total,
        "mean_mm": float(err.mean()),
        "median_mm": float(np.median(err)),
        "success_rate": {
            f"{t:g}": float(v)
            for t, v in zip(DEFAULT_THRESHOLDS_MM, success_curve(worst, DEFAULT_THRESHOLDS_MM))
        },
        "wrist_mm": float(err[:, 0].mean()),
        "tips_mm": float(err[:, list(TIPS)].mean()),
        "per_joint_mm": [round(float(v), 2) for v in err.mean(0)],
    }


def _timing(wall: list[float], cpu: list[float]) -> dict:
    w, c = np.array(wall), np.array(cpu)
    return {
        "wall_ms_p50": float(np.percentile(w, 50)),
        "wall_ms_p95": float(np.percentile(w, 95)),
        "cpu_ms_p50": float(np.percentile(c, 50)),
        "cpu_ms_p95": float(np.percentile(c, 95)),
        "cpu_ms_p99": float(np.percentile(c, 99)),
    }


def energy_deciles(energy: np.ndarray, errs: np.ndarray) -> list[dict]:
    """Does the fit's own evidence rank its error? The frames in deciles of their energy per hand point
    (what the rescue's gate reads), with each decile's mean and largest-joint errors (mm)."""
    edges = np.quantile(energy, np.linspace(0.0, 1.0, 11))
    which = np.clip(np.searchsorted(edges, energy, side="right") - 1, 0, 9)
    rows = []
    for d in range(10):
        e = errs[which == d]
        if len(e):
            rows.append(
                {
                    "decile": d + 1,
                    "energy_per_point_from": round(float(edges[d]), 3),
                    "frames": len(e),
                    "mean_mm": round(float(e.mean()), 2),
                    "success_20mm": round(float(np.mean(e.max(1) <= 20.0)), 3),
                }
            )
    return rows


def presence_check(use: bool = True):
    """The pipeline's hand-presence check (stream/hands/presence.py) with the shipped engine, or None when
    not asked for or not shipped."""
    import engines

    if not use or "presence" not in engines.shipped_engines():
        return None
    from stream.hands.presence import PresenceCheck

    return PresenceCheck(engines.load_engine("presence", backend="onnxruntime", threads=1))


def evaluate_fit(
    data_dir: str | Path, limit: int = 0, sweep: bool = False, presence: bool = True, readings: bool = True
) -> dict:
    """Engine vs engine + fit on a `handstream synth` dataset (see the module docstring). `presence`: the
    first hand chosen among the detector's candidates by the presence check, as the pipeline does on a
    new track; `readings`: a new hand whose fit is poor also fitted from the pose engine's twin read the
    other way up and from a crop cut again around the fitted hand, as the pipeline's fit stage does."""
    from stream.fitting.fit import FitConfig
    from stream.frames import RGBDFrame
    from stream.preprocess import HandSegmenter, denormalize_joints
    from stream.stages import FrameState, PreprocessStage
    from stream.synth import load_dataset

    from .data import synthetic_dir_frames

    _, arrays = load_dataset(data_dir)
    sizes = arrays.get("hand_size_mm")
    if sizes is None:
        raise InputError(f"{data_dir}: the dataset has no hand_size_mm labels")
    predict, crop_size, cube = _engine()
    pre = PreprocessStage(
        cube_mm=cube, crop_size=crop_size, segmenter=HandSegmenter(), presence=presence_check(presence)
    )
    variants = {"fit_calibrated": (FitConfig(), True), "fit_estimated": (FitConfig(), False)}
    if sweep:
        for it in (1, 2, 3, 4, 6, 8):
            for pts in (64, 128, 256):
                variants[f"sweep_it{it}_pts{pts}"] = (replace(FitConfig(), iterations=it, points=pts), True)
    readings = _readings(readings)
    stages = {k: _fit_stage(cfg, **readings) for k, (cfg, _) in variants.items()}
    errs: dict[str, list] = {"engine": [], **{k: [] for k in variants}}
    wall: dict[str, list] = {k: [] for k in variants}
    cpu: dict[str, list] = {k: [] for k in variants}
    evidence: dict[str, list] = {k: [] for k in variants}  # (energy per point, rescued) per frame
    total = 0
    load = [os.getloadavg()[0]]
    for i, fr in enumerate(synthetic_dir_frames(data_dir, limit=limit)):
        total += 1
        pre.reset()  # independent frames: no tracking
        st = FrameState(RGBDFrame(index=i, timestamp_ms=0.0, depth_mm=fr.depth_mm, intrinsics=fr.intrinsics))
        pre.run(st)
        crop = st.crop
        if crop is None:
            continue
        joints = denormalize_joints(predict(crop.depth).reshape(-1, 3), crop)
        gt = fr.joints_xyz_mm.astype(np.float64)
        errs["engine"].append(np.linalg.norm(joints - gt, axis=1))
        for k, (_, calibrated) in variants.items():
            stage = stages[k]
            stage.reset()  # independent frames: every one a new track
            fields: dict = {}
            out, w, c = _run_stage(
                stage,
                fr.depth_mm,
                fr.intrinsics,
                crop,
                joints,
                sizes[i] if calibrated else None,
                fields,
                st.detection,
            )
            evidence[k].append(
                (fields.get("fit_energy_per_point", np.nan), bool(fields.get("fit_rescued", False)))
            )
            errs[k].append(np.linalg.norm(out - gt, axis=1))
            wall[k].append(w)
            cpu[k].append(c)
        if i % 200 == 0:
            load.append(os.getloadavg()[0])
    if not errs["engine"]:
        raise InputError(f"{data_dir}: the segmenter found no hand in any of {total} frames")
    out = {"data": str(data_dir), "load_average_1min": [round(v, 2) for v in load]}
    # the frames the engine did not miss grossly (another object found, a hand upside down): what a fit
    # that starts from the engine can be expected to refine
    near = np.stack(errs["engine"]).mean(1) < NEAR_MM
    out["engine_within_mm"] = NEAR_MM
    for k, e in errs.items():
        out[k] = _row(e, total)
        out[k]["mean_mm_engine_within"] = float(np.stack(e)[near].mean())
        out[k]["frames_engine_within"] = int(near.sum())
        if k in wall:
            out[k]["stage_time"] = _timing(wall[k], cpu[k])
            ev = np.array(evidence[k], dtype=np.float64)
            out[k]["rescued_rate"] = float(ev[:, 1].mean())
            ok = np.isfinite(ev[:, 0])
            if ok.sum() >= 10:
                out[k]["energy_deciles"] = energy_deciles(ev[ok, 0], np.stack(e)[ok])
    return out


def evaluate_nyu_frame() -> dict:
    """Engine vs engine + fit (size estimated from the frame) on the real NYU frame 1, 14 NYU joints."""
    from stream.preprocess import HandSegmenter, crop_cube, denormalize_joints
    from stream.synth import nyu_from_21

    from .nyu import NYU_CAMERA, default_gt_path, load_uvd_file, nyu_uvd_to_camera, read_nyu_depth_png

    gt_path = default_gt_path()
    if gt_path is None:
        raise InputError("the NYU test labels (../shared/data/nyu/) are absent")
    depth = read_nyu_depth_png(Path(gt_path).parent / "depth_1_0000001.png")
    gt = nyu_uvd_to_camera(load_uvd_file(gt_path)[0])
    s = HandSegmenter().segment(depth, NYU_CAMERA)
    if not s.found:
        return {"segmenter_found": False}
    predict, crop_size, cube = _engine()
    crop = crop_cube(depth, NYU_CAMERA, s.best.com_xyz_mm, cube, crop_size, s.best.mask)
    joints = denormalize_joints(predict(crop.depth).reshape(-1, 3), crop)
    fitted, _, _ = _run_stage(_fit_stage(**_readings()), depth, NYU_CAMERA, crop, joints, detection=s.best)
    out = {"segmenter_found": True}
    for name, j in (("engine", joints), ("fit", fitted)):
        err = np.linalg.norm(nyu_from_21(j) - gt, axis=1)
        out[name] = {"mean_mm": float(err.mean()), "max_mm": float(err.max())}
    return out


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(..., 21, 3) -> (..., 20) the length of every bone of the kinematic tree."""
    from stream.synth.hand import BONES

    p, c = np.array(BONES).T
    return np.linalg.norm(joints[..., c, :] - joints[..., p, :], axis=-1)


def evaluate_sequence(frames: int, seed: int = 4242, config=None) -> dict:
    """Bone-length standard deviation (mm, mean over the 20 bones) over one synthetic sequence of one
    subject, through one fit stage as a live track runs it (temporal term on, shape held after the first
    frames): ground truth, engine, fit; the fit also after its shape is held."""
    from stream.preprocess import HandSegmenter, crop_cube, denormalize_joints
    from stream.smoothing import OneEuroFilter
    from stream.synth import HandSynthesizer

    from .data import default_scene

    predict, crop_size, cube = _engine()
    seg = HandSegmenter()
    stage = _fit_stage(config)
    syn = HandSynthesizer(default_scene(), seed=seed)
    rows: dict[str, list] = {"truth": [], "engine": [], "fit": []}
    prev = None
    for smp in syn.sequence(frames):
        f = smp.frame
        s = seg.segment(f.depth_mm, f.intrinsics, prev)
        prev = s if s.found else None
        if not s.found:
            stage.reset()
            continue
        crop = crop_cube(f.depth_mm, f.intrinsics, s.best.com_xyz_mm, cube, crop_size, s.best.mask)
        joints = denormalize_joints(predict(crop.depth).reshape(-1, 3), crop)
        fitted, _, _ = _run_stage(stage, f.depth_mm, f.intrinsics, crop, joints)
        rows["truth"].append(smp.joints_xyz_mm.astype(np.float64))
        rows["engine"].append(joints)
        rows["fit"].append(fitted)
    if len(rows["truth"]) < 3:
        raise InputError(f"the segmenter found the hand in only {len(rows['truth'])} of {frames} frames")
    out = {"frames": frames, "frames_found": len(rows["truth"]), "seed": seed}
    truth = np.stack(rows["truth"])
    for k, v in rows.items():
        out[f"bone_sd_mm_{k}"] = float(bone_lengths(np.stack(v)).std(0).mean())
        if k != "truth":
            out[f"mean_mm_{k}"] = float(np.linalg.norm(np.stack(v) - truth, axis=2).mean())
    held = stage.shape_frames
    out["bone_sd_mm_fit_after_held"] = float(bone_lengths(np.stack(rows["fit"][held:])).std(0).mean())
    # what the record reports by default: the fit through the One Euro filter, coordinate by coordinate
    flt = OneEuroFilter()
    smooth = np.stack([flt(j, i / 30.0) for i, j in enumerate(rows["fit"])])
    out["bone_sd_mm_fit_one_euro_after_held"] = float(bone_lengths(smooth[held:]).std(0).mean())
    return out


def _print(res: dict) -> None:
    if "synthetic" in res:
        syn = res["synthetic"]
        print(f"{syn['data']}: load average {syn['load_average_1min']}")
        print(
            "| row | found | mean | median | success <= 20 / 40 / 80 mm | wrist | tips | stage CPU p50 / p95 / p99 |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for k, r in syn.items():
            if not isinstance(r, dict):
                continue
            sr = r["success_rate"]
            t = r.get("stage_time")
            tt = f"{t['cpu_ms_p50']:.2f} / {t['cpu_ms_p95']:.2f} / {t['cpu_ms_p99']:.2f} ms" if t else ""
            print(
                f"| {k} | {r['found']}/{r['frames_total']} | {r['mean_mm']:.2f} mm | {r['median_mm']:.2f} mm | "
                f"{100 * sr['20']:.1f} / {100 * sr['40']:.1f} / {100 * sr['80']:.1f} % | {r['wrist_mm']:.1f} | "
                f"{r['tips_mm']:.1f} | {tt} |"
            )
        for k, r in syn.items():
            if isinstance(r, dict) and "energy_deciles" in r:
                print(
                    f"{k}: rescued {100 * r['rescued_rate']:.1f} % of the found frames; energy per point deciles:"
                )
                for d in r["energy_deciles"]:
                    print(
                        f"  {d['decile']:2d}: from {d['energy_per_point_from']:8.3f}  mean {d['mean_mm']:6.2f} mm"
                        f"  success@20 {100 * d['success_20mm']:5.1f} %"
                    )
    for k in ("nyu", "sequence"):
        if k in res:
            print(f"{k}: {json.dumps(res[k])}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="handstream eval fit", description=__doc__.splitlines()[0])
    p.add_argument(
        "--data", help="a `handstream synth` dataset (the held-out test set: data/synth_test_4242)"
    )
    p.add_argument("--limit", type=int, default=0, help="only the first N frames (0 = all)")
    p.add_argument("--sweep", action="store_true", help="also iterations x points of the calibrated fit")
    p.add_argument("--nyu", action="store_true", help="also the real NYU frame 1 (../shared/data/nyu)")
    p.add_argument("--sequence-frames", type=int, default=0, help="bone-length sd over a sequence this long")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--no-presence", action="store_true", help="the detector's first hand, without the presence check"
    )
    p.add_argument(
        "--one-reading",
        action="store_true",
        help="fit from the pose engine's joints only (not also from its twin's or a re-cut crop's)",
    )
    a = p.parse_args(argv)
    if not (a.data or a.nyu or a.sequence_frames):
        raise InputError("nothing to measure: give --data DIR, --nyu or --sequence-frames N")
    if a.limit < 0 or a.sequence_frames < 0:
        raise InputError("--limit and --sequence-frames must be >= 0")
    if a.data and not (Path(a.data) / "meta.json").is_file():
        raise InputError(f"--data {a.data}: not a `handstream synth` dataset (no meta.json)")
    res: dict = {}
    if a.data:
        res["synthetic"] = evaluate_fit(
            a.data, a.limit, a.sweep, presence=not a.no_presence, readings=not a.one_reading
        )
    if a.nyu:
        res["nyu"] = evaluate_nyu_frame()
    if a.sequence_frames:
        res["sequence"] = evaluate_sequence(a.sequence_frames)
    if a.json:
        print(json.dumps(res))
    else:
        _print(res)
    return 0
