"""Train, evaluate and ship the hand-presence engine: the handedness engine's tiny CNN (the crop turned to
its silhouette's major axis, four stride-2 convolutions, one linear layer) from the pose engine's 64x64
normalized depth crop to P(hand).

    python -m train.presence.train --train CROPS.npz --test CROPS.npz --out DIR [--minutes 10]
    python -m train.presence.train --ship DIR/presence.pt --test CROPS.npz --out engines/default [--name N]

Batches are drawn class-balanced (about one crop in eight is not a hand) and mirrored at random (a
mirrored hand is still a hand). One thread, a time budget, a checkpoint after every epoch (resumable).
The report: accuracy at 0.5 and the area under the ROC curve, overall and on the candidates that are not
the frame's strongest peak, which is where the choice is made.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .data import PresenceCrops


def p_hand(model, depth: np.ndarray, batch: int = 512) -> np.ndarray:
    """P(hand) for (N, S, S) crops."""
    from train.crop_classifier import predict

    return predict(model, depth, batch)


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half)."""
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    allv = np.concatenate([pos, neg])
    for v in np.unique(allv):  # average ranks of ties
        t = allv == v
        if t.sum() > 1:
            ranks[t] = ranks[t].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def report(p: np.ndarray, crops: PresenceCrops) -> dict:
    """Accuracy at 0.5 and ROC AUC of P(hand), against the detector's own peak score as the baseline."""
    truth = crops.hand.astype(bool)
    return {
        "crops": int(len(truth)),
        "hands": int(truth.sum()),
        "accuracy": float(((p > 0.5) == truth).mean()),
        "accuracy_hands": float((p[truth] > 0.5).mean()),
        "accuracy_not_hands": float((p[~truth] <= 0.5).mean()),
        "auc": auc(p, truth),
        "auc_detector_peak": auc(crops.peak.astype(np.float64), truth),
    }


def train(args) -> int:
    import torch

    from train.crop_classifier import train_loop
    from train.handedness.train import create_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = PresenceCrops.concat([PresenceCrops.load(p) for p in args.train.split(",")])
    test = PresenceCrops.load(args.test)
    # class-balanced draws: each crop's chance is 1 / its class's count
    hands = int(data.hand.sum())
    w = np.where(data.hand == 1, 1.0 / max(1, hands), 1.0 / max(1, len(data.hand) - hands))
    w = w / w.sum()

    def mirror(x, y, rng) -> None:
        flip = torch.from_numpy(rng.random(len(y)) < 0.5)
        x[flip] = torch.flip(x[flip], dims=[2])  # a mirrored hand is still a hand

    def evaluate(model) -> tuple[dict, str]:
        rep = report(p_hand(model, test.depth), test)
        return rep, (
            f"test acc {rep['accuracy']:.4f} (hands {rep['accuracy_hands']:.4f}, not "
            f"{rep['accuracy_not_hands']:.4f}) auc {rep['auc']:.4f} (peak {rep['auc_detector_peak']:.4f})"
        )

    model = create_model(args.width)
    if args.init:
        load_exported(model, args.init)
    train_loop(
        model,
        data.depth,
        data.hand,
        out / "presence.pt",
        args.minutes,
        args.lr,
        args.batch,
        draw=lambda rng: rng.choice(len(data.hand), size=args.epoch_crops, p=w),
        augment=mirror,
        evaluate=evaluate,
        extra={"width": args.width, "config": {k: v for k, v in vars(args).items() if k != "func"}},
    )
    return 0


def load_exported(model, onnx_path: str) -> None:
    """Start `model` from an exported engine's weights (its .onnx), as the detector recipe's `--init` does
    (`train.detector.load_folded_onnx`: the export folded each batch norm into the convolution before it).
    Here the folded bias goes to the convolution's own bias, the batch norms become identities (running
    statistics 0 and 1 - eps, affine weights fixed) that stay in eval mode while training (`train_loop`
    calls model.train() every epoch), and the linear head is copied as it is."""
    import types

    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn

    from train.detector import load_folded_onnx

    load_folded_onnx(model, onnx_path)
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(onnx_path).graph.initializer}
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, conv in modules.items():
            if not isinstance(conv, nn.Conv2d):
                continue
            parent, _, idx = name.rpartition(".")
            bn = modules[parent][int(idx) + 1]
            conv.bias.copy_(bn.bias)
            bn.bias.zero_()
            bn.weight.requires_grad_(False)
            bn.bias.requires_grad_(False)
            bn.train = types.MethodType(lambda self, mode=True: nn.Module.train(self, False), bn)
        model.head.weight.copy_(torch.from_numpy(np.array(inits["head.weight"])))
        model.head.bias.copy_(torch.from_numpy(np.array(inits["head.bias"])))


def ship(args) -> int:
    """Export the checkpoint to ONNX + manifest (parity checked against PyTorch on held-out crops)."""
    from train.crop_classifier import export_crop_net, load_checkpoint
    from train.handedness.train import create_model

    model, ck = load_checkpoint(args.ship, create_model)
    test = PresenceCrops.load(args.test)
    rep = report(p_hand(model, test.depth), test)
    export_crop_net(
        model,
        ck,
        args.out,
        args.name,
        task="presence",
        preprocessing={
            "input": "depth",
            "crop_size": 64,
            "cube_mm": 300.0,
            "depth_normalization": "com_cube_clip_-1_1",
            "output": "P(hand), sigmoid",
        },
        model_path="train.handedness.train.create_model",
        training={
            "data": args.data
            or "train.presence.data: detector candidates in generator frames (frontal, egocentric, "
            "desk; a quarter with two hands), subjects 1000+"
        },
        metrics={"validation_crops": rep},
        parity_depth=test.depth,
        output_name="p_hand",
    )
    print(json.dumps(rep))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--train", help="training crops (.npz from train.presence.data; several: comma-separated)"
    )
    ap.add_argument("--test", required=True, help="validation crops")
    ap.add_argument("--out", required=True, help="checkpoint folder (training) or engine folder (--ship)")
    ap.add_argument("--ship", help="export this checkpoint instead of training")
    ap.add_argument(
        "--name",
        default="presence",
        help="the exported engine's name (presence_second: the second-hand check)",
    )
    ap.add_argument("--data", help="the manifest's description of the training crops (--ship)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--epoch-crops", type=int, default=8192, help="class-balanced draws per epoch")
    ap.add_argument("--init", help="start from an exported engine's weights (.onnx; load_exported)")
    args = ap.parse_args(argv)
    return ship(args) if args.ship else train(args)


if __name__ == "__main__":
    raise SystemExit(main())
