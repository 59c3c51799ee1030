"""`handstream eval nyu PRED.txt [--gt LABELS.txt] [--json] [--plot PNG]`,
`handstream eval synthetic ENGINE_OR_CHECKPOINT --data DIR [--json]`, `handstream eval synthetic --scenes
frontal,egocentric,desk` (the real pipeline per scene kind, train/eval_synthetic.py), the measurements
behind the preprocessing and smoothing defaults: `handstream eval segmentation|centres|smoothing`
(train/eval_*.py), and `handstream eval fit`: the pose engine alone against the engine + the hand-model fit
(train/eval_fit.py).

The NYU path is numpy only (no torch): predictions and labels in the community (u, v, d) format, converted
with x = (u - cx) d / fx, y = -(v - cy) d / fy, z = d, then mean / per-joint error and success rates.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from stream.errors import InputError

THRESHOLDS_MM = (20.0, 40.0, 80.0)


def _print_summary(name: str, s: dict, out=sys.stdout) -> None:
    rates = "  ".join(f"<= {k} mm: {100 * v:.1f} %" for k, v in s["success_rate"].items())
    print(f"{name}: {s['frames']} frames, mean error {s['mean_mm']:.2f} mm; success rate {rates}", file=out)
    names = s.get("joint_names")
    per = s["per_joint_mm"]
    labels = names if names and len(names) == len(per) else [str(i) for i in range(len(per))]
    print("per joint (mm): " + ", ".join(f"{n} {v:.1f}" for n, v in zip(labels, per)), file=out)


def eval_nyu(pred_path: str | Path, gt_path: str | Path | None = None) -> dict:
    """The NYU protocol on community files: returns metrics.summary() plus the joint names."""
    from .metrics import summary
    from .nyu import NYU_JOINT_NAMES, default_gt_path, load_uvd_file, nyu_uvd_to_xyz

    if gt_path is None:
        gt_path = default_gt_path()
        if gt_path is None:
            raise InputError("no --gt given and ../shared/data/nyu/nyu_test_groundtruth_label.txt is absent")
    pred = load_uvd_file(pred_path)
    gt = load_uvd_file(gt_path)
    if pred.shape != gt.shape:
        raise InputError(f"{pred_path} has {len(pred)} frames, the ground truth {gt_path} has {len(gt)}")
    s = summary(nyu_uvd_to_xyz(pred), nyu_uvd_to_xyz(gt), THRESHOLDS_MM)
    s["joint_names"] = list(NYU_JOINT_NAMES)
    return s


def _check_plot(plot: str | None, inputs: list) -> None:
    """The --plot PNG is checked before the evaluation: it must not be an input and must be writable."""
    if plot:
        from stream.outputs import check_outputs, prepare_file

        check_outputs([("--plot", plot)], inputs)
        prepare_file(plot, "--plot")


def _main_nyu(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="handstream eval nyu", description="NYU protocol on (u, v, d) files")
    p.add_argument("pred", help="predictions: one line per frame, 14 joints x (u, v, d)")
    p.add_argument(
        "--gt", help="labels in the same format (default: ../shared/data/nyu/nyu_test_groundtruth_label.txt)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", help="write success-rate and per-joint plots to this PNG")
    a = p.parse_args(argv)
    _check_plot(a.plot, [a.pred, a.gt])
    s = eval_nyu(a.pred, a.gt)
    if a.plot:
        from .metrics import plot_results

        plot_results({Path(a.pred).stem: s}, a.plot, "NYU test set")
    if a.json:
        print(json.dumps(s))
    else:
        _print_summary(Path(a.pred).name, s)
    return 0


def _main_synthetic(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="handstream eval synthetic",
        description="evaluate a pose engine/checkpoint on a `handstream synth` dataset with our "
        "segmentation, or (--scenes) the whole pipeline per scene kind on generated held-out sequences",
    )
    p.add_argument(
        "model",
        nargs="?",
        default="default",
        help="'default', an engine directory/ONNX file, or a training checkpoint (.pt) (with --data)",
    )
    p.add_argument("--data", help="dataset directory written by `handstream synth`")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", help="write success-rate and per-joint plots to this PNG")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N frames (0 = all)")
    p.add_argument(
        "--gt-centre", action="store_true", help="crop at the ground-truth centre, not ours (ablation)"
    )
    from .eval_synthetic import add_scene_arguments, main_scenes

    add_scene_arguments(p)
    a = p.parse_args(argv)
    if a.scenes:
        if a.data or a.plot or a.limit or a.gt_centre or a.model != "default":
            raise InputError(
                "--scenes runs the shipped pipeline on generated frames: no model, --data, --plot, "
                "--limit or --gt-centre"
            )
        return main_scenes(a)
    if not a.data:
        raise InputError("give --data DIR (a `handstream synth` dataset) or --scenes KIND,...")
    _check_plot(a.plot, [a.model, a.data])
    from .evaluate import evaluate_synthetic

    s = evaluate_synthetic(a.model, a.data, limit=a.limit, gt_centre=a.gt_centre)
    if a.plot:
        from .metrics import plot_results

        plot_results({str(a.model): s}, a.plot, f"synthetic: {a.data}")
    if a.json:
        print(json.dumps(s))
    else:
        _print_summary(str(a.model), s)
        print(f"hand found in {s['found']}/{s['frames_total']} frames (misses count as failures above)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    modes = {
        "nyu": _main_nyu,
        "synthetic": _main_synthetic,
        "segmentation": _lazy("train.eval_segmentation"),
        "centres": _lazy("train.eval_centres"),
        "smoothing": _lazy("train.eval_smoothing"),
        "fit": _lazy("train.eval_fit"),
        "size": _lazy("stream.size.evaluate"),
    }
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: handstream eval {{{','.join(modes)}}} ...   (handstream eval MODE --help)")
        return 0
    if argv[0] not in modes:
        close = difflib.get_close_matches(argv[0], list(modes), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(f"unknown eval mode {argv[0]!r}; {hint}choose from {', '.join(modes)}")
    return int(modes[argv[0]](argv[1:]) or 0)


def _lazy(module: str):
    """A mode whose module is imported only when it runs (the segmentation study needs no NYU code)."""

    def run(argv: list[str]) -> int:
        import importlib

        return importlib.import_module(module).main(argv)

    return run
