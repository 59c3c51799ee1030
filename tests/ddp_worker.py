"""One rank of the 2-process DDP test (tests/test_train_ddp.py runs it under torchrun; not a test itself).

Writes OUT/rank{R}.pt with what the parent compares: the rank's batch indices and weights after one DDP
step of a BatchNorm-free toy net (so a single-process step on the concatenated batch is an exact
reference), and the weights `train.trainer.train` ends with after one epoch of a real compact model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch


def toy_net() -> torch.nn.Module:
    """Linear on flattened 8x8 crops -> 2 joints; no BatchNorm, whose statistics are per process."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 6))


def toy_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(16, 1, 8, 8, generator=g) * 2 - 1, torch.rand(16, 6, generator=g) * 2 - 1


def main(out: Path, crops: Path) -> int:
    from train.data import PoseArrays
    from train.trainer import (
        TrainConfig,
        distributed_from_env,
        epoch_order,
        finish_distributed,
        local_batch_size,
        pose_loss,
        train,
        train_step,
        wrap_model,
    )

    torch.set_num_threads(1)
    ctx = distributed_from_env("cpu")
    x, y = toy_data()
    model = toy_net()
    net = wrap_model(model, ctx, torch.device("cpu"))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    idx = epoch_order(len(x), 1, 0, ctx)[: local_batch_size(8, ctx)]
    loss = train_step(net, opt, pose_loss, x[idx], y[idx])

    data = PoseArrays.load(crops)
    n_val = len(data) // 4
    cfg = TrainConfig(
        name="ddp",
        model="compact_gap",
        model_kwargs={"fc_width": 16},
        optimizer="adamw",
        lr=0.01,
        batch_size=8,
        epochs=1,
        out_dir=str(out / "runs"),
        progress=False,
        tensorboard=False,
        threads=1,
    )
    res = train(cfg, data.subset(np.arange(n_val, len(data))), data.subset(np.arange(n_val)))
    torch.save(
        {
            "world_size": ctx.world_size,
            "indices": idx,
            "loss": loss,
            "toy_state": model.state_dict(),
            "train_params": dict(res.model.named_parameters()),
            "val_loss": res.best_val_loss,
        },
        out / f"rank{ctx.rank}.pt",
    )
    finish_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
