"""The training loop the small crop classifiers share (handedness: P(left); presence: P(hand)): the tiny CNN
of `train.handedness.train.create_model` on the pose engine's 64x64 crops, one thread, a time budget with a
cosine learning rate, a checkpoint after every epoch (resumable), a held-out report per epoch.

What differs between them is passed in: how an epoch draws its crops (`draw`: a permutation, or
class-balanced draws) and how a batch is augmented (`augment`: mirroring, with or without swapping the
label), and what the report says. The centre engine's recipe (train/centre) shares the checkpoint and the
export (`load_checkpoint`, `export_crop_net`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def predict(model, depth: np.ndarray, batch: int = 512) -> np.ndarray:
    """The model's output (N,) for (N, S, S) crops, in eval mode, in batches."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(depth), batch):
            x = torch.from_numpy(np.asarray(depth[i : i + batch], np.float32)[:, None])
            out.append(model(x)[:, 0].numpy())
    return np.concatenate(out)


def load_checkpoint(path: str, create_model: Callable[[int], object]) -> tuple[object, dict]:
    """(model in eval mode, checkpoint) of a recipe's checkpoint: `create_model(width)` given its weights."""
    import torch

    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = create_model(ck["width"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck


def export_crop_net(
    model,
    ck: dict,
    out: str,
    name: str,
    *,
    task: str,
    preprocessing: dict,
    model_path: str,
    training: dict,
    metrics: dict,
    parity_depth: np.ndarray,
    output_name: str,
) -> None:
    """Export a network on 64x64 crops to ONNX + manifest (engines.export: parity checked against PyTorch on
    the first 8 of `parity_depth`). The manifest's training fields: the model (`model_path`, its width), the
    checkpoint's epoch, training time and config, then the recipe's own `training`."""
    from engines.export import export_onnx

    export_onnx(
        model,
        Path(out),
        name,
        (1, 1, 64, 64),
        {
            "version": "0.1.0",
            "task": task,
            "preprocessing": preprocessing,
            "training": {
                "model": model_path,
                "model_kwargs": {"width": ck["width"]},
                "epoch": ck["epoch"],
                "train_s": round(ck["train_s"], 1),
                "config": ck["config"],
                **training,
            },
            "metrics": metrics,
        },
        parity_inputs=parity_depth[:8].astype(np.float32)[:, None],
        output_names=(output_name,),
    )


def train_loop(
    model,
    depth: np.ndarray,
    label: np.ndarray,
    ck_path: Path,
    minutes: float,
    lr: float,
    batch: int,
    draw: Callable[[np.random.Generator], np.ndarray],
    augment: Callable,
    evaluate: Callable[[object], tuple[dict, str]],
    extra: dict,
) -> None:
    """Train `model` (binary cross-entropy on its sigmoid output) until `minutes` of training time are spent,
    resuming from `ck_path` when it exists. `draw(rng)` gives an epoch's crop indices; `augment(x, y, rng)`
    changes a batch in place; `evaluate(model)` gives (report, its one-line summary) after each epoch;
    `extra` is stored in every checkpoint (width, config). Each epoch also leaves `epoch-NNN.pt` beside it."""
    import torch

    x_all = torch.from_numpy(depth.astype(np.float32))
    y_all = torch.from_numpy(label.astype(np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    epoch, spent = 0, 0.0
    if ck_path.is_file():  # resume
        ck = torch.load(ck_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["opt"])
        epoch, spent = ck["epoch"], ck["train_s"]
    rng = np.random.default_rng(epoch)
    budget = minutes * 60.0
    while spent < budget:
        t0 = time.perf_counter()
        model.train()
        order = torch.from_numpy(draw(rng))
        rate = lr * 0.5 * (1 + np.cos(np.pi * min(1.0, spent / budget)))
        for g in opt.param_groups:
            g["lr"] = rate
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            x, y = x_all[idx], y_all[idx].clone()
            augment(x, y, rng)
            p = model(x[:, None])[:, 0]
            loss = torch.nn.functional.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        epoch += 1
        spent += time.perf_counter() - t0
        rep, line = evaluate(model)
        print(
            f"epoch {epoch} loss {total / len(order):.4f} lr {rate:.2e} {line} {spent / 60:.1f} min",
            flush=True,
        )
        state = {
            "state_dict": model.state_dict(),
            "opt": opt.state_dict(),
            "epoch": epoch,
            "train_s": spent,
            "test": rep,
            **extra,
        }
        torch.save(state, ck_path)
        torch.save(state, ck_path.parent / f"epoch-{epoch:03d}.pt")
