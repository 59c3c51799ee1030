"""The canonicalization's moments form (train/canonical.py) is the pixel-by-pixel definition, and a pose
engine respun with it (engines/canonical_graph.py) gives the joints it gave before."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import torch.nn.functional as F  # noqa: E402

from engines.canonical_graph import network_cut, parity, respin, respin_engine  # noqa: E402
from train.canonical import (  # noqa: E402
    pixel_grid,
    principal_angle,
    principal_angle_reference,
    rotate_crops,
    rotation_matrices,
)

ROOT = Path(__file__).resolve().parents[1]


def _silhouettes(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Hand-like crops: a bar (fingers) at a random angle and place with a wider blob (palm) at one end,
    depth varying, background 1; the first is empty."""
    rng = np.random.default_rng(seed)
    g = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    gx, gy = np.meshgrid(g, g)
    out = np.ones((n, 1, size, size), np.float32)
    for i in range(1, n):
        a, cx, cy = rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3)
        along = (gx - cx) * np.cos(a) + (gy - cy) * np.sin(a)
        across = -(gx - cx) * np.sin(a) + (gy - cy) * np.cos(a)
        bar = (np.abs(across) < 0.08) & (np.abs(along) < 0.6)
        blob = (along - 0.4) ** 2 + across**2 < 0.3**2
        m = bar | blob
        out[i, 0][m] = (0.3 * along + rng.normal(0, 0.05, m.shape))[m].astype(np.float32)
    return torch.from_numpy(out)


def test_moments_form_is_the_definition() -> None:
    x = _silhouettes(40)
    a, b = principal_angle(x), principal_angle_reference(x)
    d = torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi
    assert float(d.abs().max()) < 1e-4
    assert float(a[0]) == 0.0  # no foreground: no turn
    # and the ends were told apart: the blob end sits on the same side for every crop after the turn
    assert len({round(float(v), 2) for v in a}) > 30


def test_rotation_grid_is_the_batched_product() -> None:
    x = _silhouettes(12, 32, seed=1)
    rot = rotation_matrices(torch.linspace(0.1, 6.0, 12))
    s = x.shape[-1]
    g = pixel_grid(s, x)
    q = torch.stack([g.view(1, s).expand(s, s), g.view(s, 1).expand(s, s)], -1).reshape(1, s * s, 2)
    grid = torch.matmul(q, rot).reshape(12, s, s, 2)
    want = F.grid_sample(x - 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) + 1
    assert torch.equal(rotate_crops(x, rot), want)


def _crops(size: int, n: int = 24) -> np.ndarray:
    return _silhouettes(n, size, seed=2).numpy()


def test_shipped_pose_engine_is_cut_at_its_network_and_respun_unchanged(tmp_path: Path) -> None:
    src = ROOT / "engines" / "default" / "pose.onnx"
    model = onnx.load(str(src))
    crops, joints = network_cut(model.graph)
    assert crops != joints
    new = respin(model, ((1, 1), (-1, -1)), 64)
    path = tmp_path / "pose.onnx"
    onnx.save(new, str(path))
    assert parity(src, path, _crops(64)) < 1e-5


def test_a_fresh_canonical_export_respins_to_the_same_joints(tmp_path: Path) -> None:
    """A small canonical model exported as every engine is, then respun through the tool's whole path
    (manifest read, parity on the pipeline's crops, manifest written)."""
    from engines.export import export_onnx
    from train.models import create_model

    torch.manual_seed(0)
    model = create_model(
        "compact_s_canon", num_joints=21, input_size=64, fc_width=16, test_shifts_px=((1, 1), (-1, -1))
    )
    src = export_onnx(
        model,
        tmp_path / "src",
        "pose",
        (1, 1, 64, 64),
        {
            "version": "0.0.1",
            "task": "pose",
            "preprocessing": {"crop_size": 64, "cube_mm": 300.0},
            "training": {
                "model": "compact_s_canon",
                "model_kwargs": {"input_size": 64, "test_shifts_px": [[1, 1], [-1, -1]]},
            },
        },
    )
    out, diff = respin_engine(src, tmp_path / "pose_respun.onnx")
    assert diff < 1e-5 and out.is_file() and out.with_suffix(".json").is_file()
    assert parity(src, out, _crops(64)) < 1e-5
