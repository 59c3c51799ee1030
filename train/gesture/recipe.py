"""The gesture recipe (`handstream train gesture ...`): train an embedding, export it as an engine with its
rejection distance, write the default gallery of the built-in gestures beside it, and compare every loss x
selection rule. Defaults are train.gesture.train.GestureTrainConfig's; flags override them.

    handstream train gesture train --out runs/gesture [--loss quadruplet --selection method2 --steps 1500]
        [--aug-bone-ratio 0.6,1.4 --aug-mcp-shift 0,0.45 --aug-tip-scale 0.8,1.2 --aug-angle-deg 30]
        (another capture system's hand model imitated: train.gesture.augment; off by default)
        [--other-skeletons SKELETONS.npz --other-share 0.5]
        (another system's own skeletons of the training classes in every pool; off by default)
    handstream train gesture ship --checkpoint runs/gesture/gesture.pt --out engines/default
    handstream train gesture sweep --out runs/gesture/sweep.jsonl [--model depth_cnn --steps 600]
    handstream train gesture table runs/gesture/sweep.jsonl      # the BENCHMARKS.md table
    handstream train gesture pipeline [--seeds 7,1,2 --frames 300]  # through our pose pipeline
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import numpy as np

from stream.errors import InputError

from ..recipes import register
from . import LOSSES
from .selection import METHODS


def config_from_args(cfg, args):
    """`cfg` (a training config dataclass) with every field the command line gave (not None) taken from
    `args`; the loss's own settings (`loss_cfg`) are not a flag. Static and dynamic recipes share it."""
    for f in fields(cfg):
        v = getattr(args, f.name, None)
        if v is not None and f.name != "loss_cfg":
            setattr(cfg, f.name, v)
    return cfg


def _config(args):
    from .train import GestureTrainConfig

    return config_from_args(GestureTrainConfig(), args)


def save_checkpoint(model, cfg, metrics: dict, path: Path) -> None:
    """The checkpoint `ship` reads back: the model's name and size, its weights, and the training metrics."""
    import torch

    torch.save(
        {"model": cfg.model, "dim": cfg.dim, "state_dict": model.state_dict(), "metrics": metrics}, path
    )


def load_checkpoint(path: str, create, **heads: int):
    """(checkpoint dict, the model in eval mode) of a `save_checkpoint` file; `create` builds the net from
    its name and size (`heads`: its class counts)."""
    import torch

    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = create(ck["model"], dim=ck["dim"], **heads)
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return ck, model


def training_manifest(ck: dict) -> dict:
    """The engine manifest's `training` section from a checkpoint: which net, its size, config and time."""
    return {
        "model": ck["model"],
        "model_kwargs": {"dim": ck["dim"]},
        "config": ck["metrics"]["config"],
        "train_s": ck["metrics"]["train_s"],
    }


def best_threshold(
    dist: np.ndarray, pred: np.ndarray, truth: np.ndarray, known: np.ndarray, quantiles: np.ndarray
) -> tuple[float, float, float, float]:
    """(balanced accuracy, distance, accuracy, rejection rate) at the quantile of `dist` that maximises the
    mean of the accuracy on the `known` queries and the rejection rate of the others (the first on ties)."""
    from stream.gestures import UNKNOWN

    best = (-1.0, 0.0, 0.0, 0.0)
    for t in np.quantile(dist, quantiles):
        p = np.where(dist > t, UNKNOWN, pred)
        acc = float((p[known] == truth[known]).mean())
        rej = float((p[~known] == UNKNOWN).mean())
        if (acc + rej) / 2 > best[0]:
            best = ((acc + rej) / 2, float(t), acc, rej)
    return best


def add_training_options(p: argparse.ArgumentParser) -> None:
    """The options `train` and `sweep` of both gesture recipes take (each config has these fields)."""
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--noise-mm", dest="noise_mm", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--bank-per-class", dest="bank_per_class", type=int, default=None)
    p.add_argument("--pool-per-class", dest="pool_per_class", type=int, default=None)


def _range(text: str) -> tuple[float, float]:
    """'LO,HI' -> (LO, HI), for the hand-model augmentation's ranges."""
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers), got {text!r}") from None
    if lo > hi:
        raise argparse.ArgumentTypeError(f"LO must not exceed HI, got {text!r}")
    return lo, hi


def add_hand_model_options(p: argparse.ArgumentParser) -> None:
    """The static embedding's hand-model augmentation (train.gesture.augment): skeletons as another capture
    system's hand model places its joints."""
    p.add_argument("--aug-bone-ratio", dest="aug_bone_ratio", type=_range, default=None, metavar="LO,HI",
                   help="per-sample length ratio of each phalanx type")  # fmt: skip
    p.add_argument("--aug-mcp-shift", dest="aug_mcp_shift", type=_range, default=None, metavar="LO,HI",
                   help="MCPs moved this fraction along the proximal phalanx")  # fmt: skip
    p.add_argument("--aug-tip-scale", dest="aug_tip_scale", type=_range, default=None, metavar="LO,HI",
                   help="the last bone's length ratio (where the fingertip sits)")  # fmt: skip
    p.add_argument("--aug-angle-deg", dest="aug_angle_deg", type=float, default=None,
                   help="per-finger, per-joint flexion noise (sd, degrees)")  # fmt: skip
    p.add_argument("--other-skeletons", dest="other_skeletons", default=None, metavar="FILE.npz",
                   help="another capture system's skeletons of the training classes (joints_xyz_mm, label)")  # fmt: skip
    p.add_argument("--other-share", dest="other_share", type=float, default=None,
                   help="the share of each class's pool drawn from --other-skeletons (default 0.5)")  # fmt: skip


def pick_reject_distance(emb: np.ndarray, labels: np.ndarray, shots: int = 5, seed: int = 0) -> dict:
    """A rejection distance from unseen classes: half the classes are enrolled (`shots` each), queries come
    from all classes; the distance that maximises the mean of (accuracy on enrolled classes' queries) and
    (rejection rate of the other classes' queries) -- open-set balanced accuracy."""
    from stream.gestures import nearest_class

    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    enrolled = rng.choice(classes, size=len(classes) // 2, replace=False)
    gallery = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), shots, replace=False) for c in enrolled]
    )
    query = np.setdiff1d(np.arange(len(labels)), gallery)
    pred, dist = nearest_class(emb[gallery], labels[gallery], emb[query])
    known = np.isin(labels[query], enrolled)
    best = best_threshold(dist, pred, labels[query], known, np.linspace(0.05, 1.0, 96))
    return {
        "reject_distance": best[1],
        "open_set_balanced_accuracy": best[0],
        "enrolled_accuracy": best[2],
        "unenrolled_rejected": best[3],
    }


def train_to(out: str | Path, cfg, train, checkpoint: str) -> int:
    """`train(cfg)` into the folder `out`: the checkpoint `ship` reads, metrics.json, and the unseen-class
    figures printed (the `train` command of both gesture recipes)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, metrics = train(cfg)
    ck = out / checkpoint
    save_checkpoint(model, cfg, metrics, ck)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics["unseen"]))
    print(f"checkpoint: {ck}")
    return 0


def train_main(args) -> int:
    from .train import train_gesture_embedding

    return train_to(args.out, _config(args), train_gesture_embedding, "gesture.pt")


def ship_main(args) -> int:
    from engines.export import export_onnx
    from stream.gestures import Gallery, canonical_joints
    from stream.synth import gestures as vocab

    from .models import create_gesture_model
    from .train import GestureTrainConfig, embed

    ck, model = load_checkpoint(
        args.checkpoint, create_gesture_model, n_coarse=len(vocab.COARSE), n_fine=len(vocab.TRAIN)
    )
    cfg = GestureTrainConfig(**{k: v for k, v in ck["metrics"]["config"].items() if k != "loss_cfg"})
    held = vocab.gesture_dataset(vocab.UNSEEN, 60, cfg.eval_seed + 1, noise_mm=10.0)
    canon = canonical_joints(held["joints_xyz_mm"])
    reject = pick_reject_distance(embed(model, canon), held["label"])
    out = Path(args.out)
    parity = canonical_joints(vocab.gesture_dataset(vocab.FINE[:8], 1, 7, noise_mm=5.0)["joints_xyz_mm"])
    export_onnx(
        model,
        out,
        args.name,
        (1, 21, 3),
        {
            "version": "0.1.0",
            "task": "gesture_embedding",
            "preprocessing": {
                "input": "joints",
                "joints_frame": "canonical (stream.gestures.canonical_joints)",
                "joint_layout": "mediapipe21",
                "num_joints": 21,
            },
            "training": training_manifest(ck),
            "metrics": {"unseen": ck["metrics"]["unseen"], **reject},
        },
        parity_inputs=parity,
        input_names=("joints",),
        output_names=("embedding",),
    )
    # the default gallery: the 14 gestures the scene generator (and so the demo) shows, both hands, a
    # little noise, 10 examples each. The other 19 shapes of the vocabulary stay out: several are near
    # twins of these (vulcan / open_palm, letter_b / four) that a pose engine's error blurs together, so a
    # user enrolls them deliberately (`handstream gesture enroll`) rather than meeting them by default.
    from stream.synth.hand import GESTURES_FINE

    rng = np.random.default_rng(2024)
    gallery = Gallery()
    for name in GESTURES_FINE:
        j = np.stack([vocab.gesture_joints(name, rng, left=bool(i % 2), noise_mm=3.0) for i in range(10)])
        gallery.add(name, canonical_joints(j))
    gallery.save(out / f"{args.name}_gallery.npz")
    print(json.dumps(reject))
    print(f"engine: {out / args.name}.onnx, gallery: {out / args.name}_gallery.npz")
    return 0


def sweep_main(args) -> int:
    from .train import GestureTrainConfig, evaluate, train_gesture_embedding

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = GestureTrainConfig()
    # a sweep continued into the same file keeps its one baseline row
    if not out.is_file() or out.stat().st_size == 0:
        row = {
            "baseline": "canonical joints, no learning",
            "unseen": [evaluate(None, base, n) for n in base.eval_noise_mm],
        }
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
    for loss in args.losses.split(","):
        for sel in args.selections.split(","):
            cfg = _config(args)
            cfg.loss, cfg.selection = loss, sel
            _, metrics = train_gesture_embedding(cfg, log=lambda *a: None)
            metrics.pop("history")
            with out.open("a") as f:
                f.write(json.dumps(metrics) + "\n")
            print(loss, sel, metrics["train_s"], [u["recall_at"]["1"] for u in metrics["unseen"]], flush=True)
    return 0


def pipeline_main(args) -> int:
    """The whole runtime on generator sequences: depth frames -> our segmentation and pose engine -> One
    Euro -> the shipped gesture engine and default gallery, against the generator's gesture labels (the 14
    scene gestures; frames inside an eased transition between two gestures count against us too)."""
    from stream.pipeline import build_pipeline
    from stream.sources.synthetic import SyntheticSource
    from stream.synth.hand import GESTURES_FINE

    rows = []
    for seed in (int(x) for x in args.seeds.split(",")):
        names, truth = [], []
        with build_pipeline(backend="onnxruntime", models="pose,gesture", overlay=False, threads=1) as p:
            for f in SyntheticSource(n_frames=args.frames, seed=seed):
                truth.append(GESTURES_FINE[f.meta["gesture_fine_true"]])
                names.append(p.process(f).record_fields.get("gesture"))
        named = sum(n is not None for n in names)
        right = sum(n == t for n, t in zip(names, truth))
        rows.append({"seed": seed, "frames": len(names), "named": named, "correct": right,
                     "accuracy": right / len(names), "precision": right / named if named else None})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return 0


def sweep_table(path: str | Path) -> str:
    """The BENCHMARKS.md table from a sweep's JSON lines: one row per run, clean and 10 mm columns."""
    rows = ["| embedding | loss | selection | R@1 | R@2 | R@4 | R@8 | NMI | 5-shot | R@1 / NMI / 5-shot at 10 mm | train s |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|"]  # fmt: skip
    runs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    order = {(loss, sel): i for i, (loss, sel) in enumerate((a, b) for a in LOSSES for b in METHODS)}
    runs.sort(
        key=lambda d: (
            -1 if "baseline" in d else order.get((d["config"]["loss"], d["config"]["selection"]), 99)
        )
    )
    for d in runs:
        clean, noisy = d["unseen"][0], d["unseen"][-1]
        at10 = (
            "rendered depth crops"
            if clean["noise_mm"] is None
            else f"{noisy['recall_at']['1']:.3f} / {noisy['nmi']:.3f} / {noisy['shot_accuracy']:.3f}"
        )
        r = clean["recall_at"]
        if "baseline" in d:
            name, loss, sel, secs = "canonical joints (no learning)", "-", "-", "-"
        else:
            c = d["config"]
            name, loss, sel, secs = c["model"], c["loss"], c["selection"], f"{d['train_s']:.0f}"
        rows.append(
            f"| {name} | {loss} | {sel} | {r['1']:.3f} | {r['2']:.3f} | {r['4']:.3f} | {r['8']:.3f} | "
            f"{clean['nmi']:.3f} | {clean['shot_accuracy']:.3f} | {at10} | {secs} |"
        )
    return "\n".join(rows)


@register("gesture", help="gesture embeddings (seed 001): train, ship the engine + gallery, sweep losses")
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="handstream train gesture",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("train", "sweep"):
        p = sub.add_parser(name)
        add_training_options(p)
        add_hand_model_options(p)
        p.add_argument("--model", default=None, choices=("joint_mlp", "depth_cnn"))
        p.add_argument("--tuples", type=int, default=None, help="quadruplets (or triplets) per step")
        p.add_argument(
            "--crop-cache", dest="crop_cache", default=None, help="folder for rendered depth crops"
        )
        if name == "train":
            p.add_argument("--loss", default=None, choices=("quadruplet", "triplet", "contrastive"))
            p.add_argument("--selection", default=None, choices=("random", "method1", "method2"))
        else:
            p.add_argument("--losses", default="quadruplet,triplet,contrastive")
            p.add_argument("--selections", default="random,method1,method2")
    sp = sub.add_parser("ship")
    sp.add_argument("--checkpoint", required=True)
    sp.add_argument("--out", default="engines/default")
    sp.add_argument("--name", default="gesture")
    pp = sub.add_parser("pipeline", help="the shipped engine behind our pose pipeline on generator sequences")
    pp.add_argument("--seeds", default="7,1,2")
    pp.add_argument("--frames", type=int, default=300)
    tb = sub.add_parser("table")
    tb.add_argument("sweep")
    args = ap.parse_args(argv)
    if args.cmd == "table":
        print(sweep_table(args.sweep))
        return 0
    if getattr(args, "steps", None) is not None and args.steps < 1:
        raise InputError("--steps must be >= 1")
    return {"train": train_main, "ship": ship_main, "sweep": sweep_main, "pipeline": pipeline_main}[args.cmd](
        args
    )


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main())
