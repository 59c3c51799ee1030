"""bf16 autocast against fp32 for the shipped pose model's training step (compact_l_dense_canon, fc 512, 64 px,
batch 128, AdamW lr 2e-3 wd 1e-4, the pose recipe's augmentation, NHWC), one thread, through
train.trainer.train_step: ms per step (wall and CPU), the loss, and validation mm after the same number of
steps from the same init and batches. Prints one JSON object.

    nice -n 10 .venv/bin/python tools/bench_train_amp.py --train CHUNK.npz --val CHUNK.npz --steps 10
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> int:
    import torch

    from train.augment import AugmentConfig, augment_batch
    from train.data import PoseArrays
    from train.models import create_model
    from train.recipes.pose import usable
    from train.trainer import LOSSES, as_tensors, predict, train_step

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True, help="a chunk of `handstream train pose gen`")
    ap.add_argument("--val", required=True, help="another chunk, for validation mm")
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(1)
    tr, va = usable(PoseArrays.load(a.train)), usable(PoseArrays.load(a.val))
    xt, yt = as_tensors(tr)
    xv, yv = as_tensors(va)
    half = tr.cube_mm / 2.0
    aug = AugmentConfig(
        rotation_deg=10.0, scale_range=(0.95, 1.05), translate_xy=0.03, translate_z=0.03, noise_std=0.01
    )
    out: dict = {"train_crops": len(tr), "val_crops": len(va), "steps": a.steps}
    for amp in ("", "bf16"):
        torch.manual_seed(0)
        model = create_model("compact_l_dense_canon", num_joints=21, input_size=64, fc_width=512, dropout=0.0)
        model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
        g = torch.Generator().manual_seed(1)
        times, losses = [], []
        model.train()
        for _ in range(a.steps):
            idx = torch.randint(0, len(xt), (128,), generator=g)
            xb, yb = augment_batch(xt[idx], yt[idx], aug)
            xb = xb.contiguous(memory_format=torch.channels_last)
            t, c = time.perf_counter(), time.thread_time()
            losses.append(train_step(model, opt, LOSSES["eq4.14"], xb, yb, amp))
            times.append(((time.perf_counter() - t) * 1e3, (time.thread_time() - c) * 1e3))
        model.eval()
        pred = predict(model, xv).numpy().reshape(len(xv), -1, 3) * half
        gt = yv.numpy().reshape(len(xv), -1, 3) * half
        w = np.array(times[5:] or times)
        out[amp or "fp32"] = {
            "wall_ms_p50": float(np.median(w[:, 0])),
            "cpu_ms_p50": float(np.median(w[:, 1])),
            "loss_last": float(np.mean(losses[-5:])),
            "val_mm": float(np.linalg.norm(pred - gt, axis=2).mean()),
        }
    out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    out["load_average"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
