"""Train, evaluate and ship the centre engine: from the pose engine's crop (resized to 64 px) to the offset from
the crop's centre to the hand's centre, over half the cube (stream/hands/centre.py says why).

    python -m train.centre.train --train A.npz,B.npz --test VAL.npz --out DIR [--minutes 8]
    python -m train.centre.train --ship DIR/centre.pt --test VAL.npz --out engines/default

The network is DeepPrior++'s refinement at our size: four stride-2 convolutions (5x5, then 3x3; 16-32-64-64
channels, ReLU), a 128-unit layer and 3 outputs; smooth L1 on the offset, AdamW with the learning rate
decayed over the time budget (cosine), crops mirrored at random (the offset's x with them). One thread, a
time budget, a checkpoint after every epoch (resumable: the same --out goes on from it). The report: the mean distance from the hand's centre, in mm, of the crop's centre
and of the centre moved by the network, on the validation crops not jittered (the runtime's own centres).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .data import KINDS, CentreCrops


def create_model(width: int = 16):
    """The centre network (its layers above); `width`: the first convolution's channels (then x2, x4, x4)."""
    from torch import nn

    w = int(width)
    return nn.Sequential(
        nn.Conv2d(1, w, 5, 2, 2),
        nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, 2, 1),
        nn.ReLU(),
        nn.Conv2d(2 * w, 4 * w, 3, 2, 1),
        nn.ReLU(),
        nn.Conv2d(4 * w, 4 * w, 3, 2, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * w * 16, 128),
        nn.ReLU(),
        nn.Linear(128, 3),
    )


def predict(model, depth: np.ndarray, batch: int = 512) -> np.ndarray:
    """The network's offsets (N, 3), over half the cube, for (N, 64, 64) crops."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(depth), batch):
            x = torch.from_numpy(np.asarray(depth[i : i + batch], np.float32)[:, None])
            out.append(model(x).numpy())
    return np.concatenate(out) if out else np.zeros((0, 3), np.float32)


def report(pred: np.ndarray, crops: CentreCrops, gate_mm: float = 25.0) -> dict:
    """Mean distance (mm) to the hand's centre before and after moving, per scene kind, on the crops
    around the runtime's own centres; `moved_gated`: moved only where the offset is at least `gate_mm`."""
    own = crops.jittered == 0
    off = crops.offset_mm.astype(np.float64)
    step = pred.astype(np.float64) * crops.half_cube_mm[:, None]
    after = np.linalg.norm(off - step, axis=1)
    gated = np.where(np.linalg.norm(step, axis=1) >= gate_mm, after, np.linalg.norm(off, axis=1))
    out = {"crops": int(own.sum())}
    for k, name in [(-1, "all"), *enumerate(KINDS)]:
        sel = own & ((crops.kind == k) if k >= 0 else True)
        if not sel.any():
            continue
        out[name] = {
            "crops": int(sel.sum()),
            "before_mm": round(float(np.linalg.norm(off[sel], axis=1).mean()), 2),
            "moved_mm": round(float(after[sel].mean()), 2),
            "moved_gated_mm": round(float(gated[sel].mean()), 2),
        }
    return out


def train(args) -> int:
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = CentreCrops.concat([CentreCrops.load(p) for p in args.train.split(",")])
    test = CentreCrops.load(args.test)
    x_all = torch.from_numpy(data.depth.astype(np.float32)[:, None])
    y_all = torch.from_numpy(data.target)
    model = create_model(args.width)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    ck_path = out / "centre.pt"
    epoch, spent, best = 0, 0.0, float("inf")
    if ck_path.is_file():  # resume
        ck = torch.load(ck_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        epoch, spent, best = ck["epoch"], ck["train_s"], ck.get("best_mm", best)
    rng = np.random.default_rng(epoch)
    print(
        f"{len(data)} training crops, {len(test)} validation; before: {report(predict(model, test.depth), test)}"
    )
    budget = args.minutes * 60
    while spent < budget:
        t0 = time.time()
        for g in opt.param_groups:  # cosine decay over the time budget: it ends where it is judged
            g["lr"] = args.lr * 0.5 * (1.0 + np.cos(np.pi * min(spent / budget, 1.0)))
        model.train()
        perm = rng.permutation(len(data))
        for i in range(0, len(perm), args.batch):
            b = torch.from_numpy(perm[i : i + args.batch])
            x, y = x_all[b], y_all[b].clone()
            flip = torch.from_numpy(rng.random(len(b)) < 0.5)
            x[flip] = torch.flip(x[flip], dims=[3])  # a mirrored crop: the offset's x mirrors too
            y[flip, 0] = -y[flip, 0]
            loss = nn.functional.smooth_l1_loss(model(x), y, beta=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
        epoch += 1
        spent += time.time() - t0
        rep = report(predict(model, test.depth), test)
        mm = rep["all"]["moved_mm"]
        ck = {
            "state_dict": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "train_s": spent,
            "best_mm": min(best, mm),
            "width": args.width,
            "config": {k: v for k, v in vars(args).items() if k != "func"},
            "metrics": rep,
        }
        torch.save(ck, ck_path)
        if mm < best:
            best = mm
            torch.save(ck, out / "centre_best.pt")
        print(
            f"epoch {epoch} {spent:.0f} s loss {float(loss.detach()):.4f} validation {json.dumps(rep)}",
            flush=True,
        )
    return 0


def ship(args) -> int:
    """Export the checkpoint to ONNX + manifest (parity checked against PyTorch on validation crops)."""
    from train.crop_classifier import export_crop_net, load_checkpoint

    model, ck = load_checkpoint(args.ship, create_model)
    test = CentreCrops.load(args.test)
    rep = report(predict(model, test.depth), test)
    export_crop_net(
        model,
        ck,
        args.out,
        args.name,
        task="centre",
        preprocessing={
            "input": "depth",
            "crop_size": 64,
            "depth_normalization": "com_cube_clip_-1_1",
            "source": "the pose engine's crop, resized to 64 px (nearest)",
            "output": "offset from the crop's centre to the hand's centre (x, y, z), over half the cube",
        },
        model_path="train.centre.train.create_model",
        training={"data": args.data or "train.centre.data: the runtime's crops of generator sequences"},
        metrics={"validation_crops": rep},
        parity_depth=test.depth,
        output_name="offset",
    )
    print(json.dumps(rep))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", help="training crops (.npz from train.centre.data; several: comma-separated)")
    ap.add_argument("--test", required=True, help="validation crops (other seeds)")
    ap.add_argument("--out", required=True, help="checkpoint folder (training) or engine folder (--ship)")
    ap.add_argument("--ship", help="export this checkpoint instead of training")
    ap.add_argument("--name", default="centre", help="the exported engine's name")
    ap.add_argument("--data", help="the manifest's description of the training crops (--ship)")
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW's decoupled weight decay")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    args = ap.parse_args(argv)
    if not args.ship and not args.train:
        ap.error("name --train crops (or --ship a checkpoint)")
    return ship(args) if args.ship else train(args)


if __name__ == "__main__":
    raise SystemExit(main())
