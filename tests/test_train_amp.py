"""bf16 autocast training (TrainConfig.amp): the same step as fp32 up to bfloat16 rounding, fp32 weights kept,
a whole run trains and lowers the loss, and an unknown precision is refused in one line."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch

from stream.errors import InputError
from train.data import PoseArrays
from train.models import create_model
from train.trainer import TrainConfig, pose_loss, train, train_step

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _discs(n=64, size=32, seed=0) -> PoseArrays:
    """Crops with one disc whose centre and depth are both joints: a small learnable problem."""
    rng = np.random.default_rng(seed)
    depth = np.ones((n, size, size), np.float32)
    j = np.zeros((n, 2, 3), np.float32)
    for i in range(n):
        x, y = rng.uniform(-0.5, 0.5, 2)
        z = rng.uniform(-0.3, 0.3)
        cv2.circle(depth[i], (int((x + 1) / 2 * size), int((y + 1) / 2 * size)), 5, float(z), -1)
        j[i, :] = (x, y, z)
    return PoseArrays(depth, j, np.zeros((n, 3)), j * 125.0, 250.0, {"toy": True})


def test_a_bf16_step_matches_fp32_and_keeps_fp32_weights():
    torch.manual_seed(0)
    a = create_model("compact_gap", num_joints=2, input_size=32, fc_width=32)
    b = copy.deepcopy(a)
    data = _discs()
    x = torch.from_numpy(data.depth[:16, None])
    y = torch.from_numpy(data.joints[:16].reshape(16, -1))
    la = train_step(a, torch.optim.SGD(a.parameters(), lr=0.01), pose_loss, x, y)
    lb = train_step(b, torch.optim.SGD(b.parameters(), lr=0.01), pose_loss, x, y, amp="bf16")
    assert lb == pytest.approx(la, rel=0.05)
    assert all(p.dtype == torch.float32 for p in b.parameters())
    moved = [float((pa - pb).detach().abs().max()) for pa, pb in zip(a.parameters(), b.parameters())]
    assert max(moved) < 1e-2 and any(m > 0 for m in moved)  # rounding differs, the update does not


def test_a_bf16_run_lowers_the_loss_and_an_unknown_precision_is_refused(tmp_path):
    data = _discs()
    kw = dict(
        model="compact_gap",
        model_kwargs={"fc_width": 32},
        optimizer="adamw",
        lr=0.01,
        batch_size=16,
        epochs=4,
        out_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
        threads=1,
    )
    res = train(TrainConfig(name="bf16", amp="bf16", **kw), data, data)
    hist = res.history
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    with pytest.raises(InputError, match="amp must be"):
        train(TrainConfig(name="fp16", amp="fp16", **kw), data, data)
