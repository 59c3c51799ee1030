"""Train, evaluate and ship the hand-presence engine: the handedness engine's tiny CNN (the crop turned to
its silhouette's major axis, four stride-2 convolutions, one linear layer) from the pose engine's 64x64
normalized depth crop to P(hand).

    python -m train.presence.train --train CROPS.npz --test CROPS.npz --out DIR [--minutes 10]
    python -m train.presence.train --ship DIR/presence.pt --test CROPS.npz --out engines/default

Batches are drawn class-balanced (about one crop in eight is not a hand) and mirrored at random (a
mirrored hand is still a hand). One thread, a time budget, a checkpoint after every epoch (resumable).
The report: accuracy at 0.5 and the area under the ROC curve, overall and on the candidates that are not
the frame's strongest peak, which is where the choice is made.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .data import PresenceCrops


def p_hand(model, depth: np.ndarray, batch: int = 512) -> np.ndarray:
    """P(hand) for (N, S, S) crops."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(depth), batch):
            x = torch.from_numpy(np.asarray(depth[i : i + batch], np.float32)[:, None])
            out.append(model(x)[:, 0].numpy())
    return np.concatenate(out)


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

    from train.handedness.train import create_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = PresenceCrops.load(args.train)
    test = PresenceCrops.load(args.test)
    x_all = torch.from_numpy(data.depth.astype(np.float32))
    y_all = torch.from_numpy(data.hand.astype(np.float32))
    # class-balanced draws: each crop's chance is 1 / its class's count
    w = np.where(
        data.hand == 1, 1.0 / max(1, int(data.hand.sum())), 1.0 / max(1, int((data.hand == 0).sum()))
    )
    w = w / w.sum()
    model = create_model(args.width)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    ck_path = out / "presence.pt"
    epoch, spent = 0, 0.0
    if ck_path.is_file():  # resume
        ck = torch.load(ck_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["opt"])
        epoch, spent = ck["epoch"], ck["train_s"]
    rng = np.random.default_rng(epoch)
    budget = args.minutes * 60.0
    while spent < budget:
        t0 = time.perf_counter()
        model.train()
        order = torch.from_numpy(rng.choice(len(y_all), size=args.epoch_crops, p=w))
        lr = args.lr * 0.5 * (1 + np.cos(np.pi * min(1.0, spent / budget)))
        for g in opt.param_groups:
            g["lr"] = lr
        total = 0.0
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            x, y = x_all[idx], y_all[idx]
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
            x[flip] = torch.flip(x[flip], dims=[2])
            p = model(x[:, None])[:, 0]
            loss = torch.nn.functional.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        epoch += 1
        spent += time.perf_counter() - t0
        rep = report(p_hand(model, test.depth), test)
        print(
            f"epoch {epoch} loss {total / len(order):.4f} lr {lr:.2e} test acc {rep['accuracy']:.4f} "
            f"(hands {rep['accuracy_hands']:.4f}, not {rep['accuracy_not_hands']:.4f}) auc {rep['auc']:.4f} "
            f"(peak {rep['auc_detector_peak']:.4f}) {spent / 60:.1f} min",
            flush=True,
        )
        state = {
            "state_dict": model.state_dict(),
            "opt": opt.state_dict(),
            "epoch": epoch,
            "train_s": spent,
            "width": args.width,
            "test": rep,
            "config": {k: v for k, v in vars(args).items() if k != "func"},
        }
        torch.save(state, ck_path)
        torch.save(state, out / f"epoch-{epoch:03d}.pt")
    return 0


def ship(args) -> int:
    """Export the checkpoint to ONNX + manifest (parity checked against PyTorch on held-out crops)."""
    import torch

    from engines.export import export_onnx
    from train.handedness.train import create_model

    ck = torch.load(args.ship, map_location="cpu", weights_only=False)
    model = create_model(ck["width"])
    model.load_state_dict(ck["state_dict"])
    model.eval()
    test = PresenceCrops.load(args.test)
    rep = report(p_hand(model, test.depth), test)
    export_onnx(
        model,
        Path(args.out),
        "presence",
        (1, 1, 64, 64),
        {
            "version": "0.1.0",
            "task": "presence",
            "preprocessing": {
                "input": "depth",
                "crop_size": 64,
                "cube_mm": 300.0,
                "depth_normalization": "com_cube_clip_-1_1",
                "output": "P(hand), sigmoid",
            },
            "training": {
                "model": "train.handedness.train.create_model",
                "model_kwargs": {"width": ck["width"]},
                "epoch": ck["epoch"],
                "train_s": round(ck["train_s"], 1),
                "config": ck["config"],
                "data": "train.presence.data: detector candidates in generator frames (frontal, egocentric, "
                "desk; a quarter with two hands), subjects 1000+",
            },
            "metrics": {"validation_crops": rep},
        },
        parity_inputs=test.depth[:8].astype(np.float32)[:, None],
        output_names=("p_hand",),
    )
    print(json.dumps(rep))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", help="training crops (.npz from train.presence.data)")
    ap.add_argument("--test", required=True, help="validation crops")
    ap.add_argument("--out", required=True, help="checkpoint folder (training) or engine folder (--ship)")
    ap.add_argument("--ship", help="export this checkpoint instead of training")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--epoch-crops", type=int, default=8192, help="class-balanced draws per epoch")
    args = ap.parse_args(argv)
    return ship(args) if args.ship else train(args)


if __name__ == "__main__":
    raise SystemExit(main())
