"""The pose recipe's data plumbing (`handstream train pose`): which chunk validates, the train-vs-validation
`gap` report, and `views`."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stream.errors import InputError  # noqa: E402
from train.data import PoseArrays  # noqa: E402
from train.models import create_model  # noqa: E402
from train.recipes import pose as td  # noqa: E402

KW = {"num_joints": 21, "input_size": 64, "fc_width": 32, "dropout": 0.0}


def _chunk(depth: np.ndarray, joints: np.ndarray) -> PoseArrays:
    n = len(depth)
    return PoseArrays(
        depth.astype(np.float32),
        joints.astype(np.float32),
        np.zeros((n, 3)),
        np.zeros((n, 21, 3)),
        300.0,
        {"size": 64},
    )


def test_chunk_files_puts_the_named_validation_chunk_last(tmp_path):
    for c in (0, 1, 2, 63, 64):
        (tmp_path / f"chunk_{c:03d}.npz").touch()
    (tmp_path / "chunk_065.tmp.npz").touch()  # a chunk still being written is never used
    names = lambda fs: [f.name for f in fs]  # noqa: E731
    assert names(td.chunk_files(tmp_path))[-1] == "chunk_064.npz"
    got = names(td.chunk_files(tmp_path, val_chunk="chunk_063.npz"))
    assert got == ["chunk_000.npz", "chunk_001.npz", "chunk_002.npz", "chunk_064.npz", "chunk_063.npz"]
    # --chunks N keeps the first N by name (as before); a named validation chunk is added if outside them
    assert names(td.chunk_files(tmp_path, limit=2)) == ["chunk_000.npz", "chunk_001.npz"]
    assert names(td.chunk_files(tmp_path, limit=2, val_chunk="chunk_063.npz"))[-1] == "chunk_063.npz"
    with pytest.raises(InputError, match="not in"):
        td.chunk_files(tmp_path, val_chunk="chunk_099.npz")
    with pytest.raises(InputError, match="at least 2"):
        td.chunk_files(tmp_path, limit=1)


def test_gap_reports_training_and_validation_error(tmp_path, capsys):
    """A chunk labelled with the net's own predictions has 0 mm error; a chunk with labels moved by a known
    normalized offset has exactly that error in mm (offset * cube / 2): the report's figures are those."""
    torch.manual_seed(0)
    name = "compact_s_canon"
    net = create_model(name, **KW).eval()
    ck = tmp_path / "net.pt"
    meta = {"model_name": name, "model_kwargs": KW, "crop_size": 64, "cube_mm": 300.0, "num_joints": 21}
    torch.save({"model_state": net.state_dict(), **meta}, ck)
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    offset = np.array([0.02, 0.0, 0.0])  # 0.02 of the half cube: 3 mm
    for c, shift in ((0, 0.0), (1, 0.0), (2, 1.0)):
        depth = np.ones((6, 64, 64))
        depth[:, 16:48, 20:44] = rng.uniform(-0.5, 0.5, (6, 32, 24))  # a foreground blob (depth < 1)
        depth = depth.astype(np.float16).astype(np.float32)  # as a chunk file stores it
        with torch.no_grad():
            pred = net(torch.from_numpy(depth[:, None])).numpy().reshape(6, 21, 3)
        _chunk(depth, pred + shift * offset).save(data / f"chunk_{c:03d}.npz")
    assert td.main(["gap", "--checkpoint", str(ck), "--data-dir", str(data), "--train-chunks", "2"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(res["train_mm"]) == {"chunk_000.npz", "chunk_001.npz"}
    assert res["train_mean_mm"] == pytest.approx(0.0, abs=1e-3)
    assert res["val_chunk"] == "chunk_002.npz"
    assert res["val_mm"] == pytest.approx(3.0, abs=1e-3)
    assert res["gap_mm"] == pytest.approx(3.0, abs=1e-3)


def test_views_writes_a_checkpoint_whose_model_averages_shifted_views(tmp_path, capsys):
    """`views` copies the weights, records the shifts in model_kwargs (so the exporter builds the same
    model), reports the validation error with and without them, and refuses a non-canonical model."""
    torch.manual_seed(0)
    name = "compact_s_canon"
    net = create_model(name, **KW).eval()
    ck = tmp_path / "net.pt"
    meta = {"model_name": name, "model_kwargs": KW, "crop_size": 64, "cube_mm": 300.0, "num_joints": 21}
    torch.save({"model_state": net.state_dict(), **meta, "metrics": {"test_mean_mm": 1.0}}, ck)
    data = tmp_path / "data"
    data.mkdir()
    depth = np.ones((4, 64, 64), np.float32)
    depth[:, 16:48, 20:30] = 0.2
    depth[:, 40:48, 20:44] = -0.3  # an L: no symmetry that would make the views agree by accident
    with torch.no_grad():
        pred = net(torch.from_numpy(depth[:, None])).numpy().reshape(4, 21, 3)
    for c in (0, 1):
        _chunk(depth, pred).save(data / f"chunk_{c:03d}.npz")
    out = tmp_path / "views.pt"
    argv = [
        "views",
        "--checkpoint",
        str(ck),
        "--data-dir",
        str(data),
        "--shifts",
        "1,1 2,0",
        "--out",
        str(out),
    ]
    assert td.main(argv) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["shifts"] == [[1, 1], [2, 0]]
    assert res["val_mm_single"] == pytest.approx(0.0, abs=1e-3)  # labels are the single-view predictions
    assert res["val_mm_views"] > 0.01
    from train.trainer import load_trained

    model, got = load_trained(out)
    assert got["model_kwargs"]["test_shifts_px"] == [[1, 1], [2, 0]]
    assert got["metrics"] == {
        "val_mean_mm": res["val_mm_views"],
        "val_mean_mm_single_view": res["val_mm_single"],
    }
    assert model.test_shifts_px == ((1, 1), (2, 0))
    torch.testing.assert_close(model.state_dict(), net.state_dict())
    with pytest.raises(InputError, match="canonical"):
        torch.save({"model_state": {}, **meta, "model_name": "compact_s"}, ck)
        td.main(
            ["views", "--checkpoint", str(ck), "--data-dir", str(data), "--shifts", "1,1", "--out", str(out)]
        )
    with pytest.raises(SystemExit):  # argparse: not DX,DY pairs
        td.main(["views", "--checkpoint", str(ck), "--shifts", "1,1,2", "--out", str(out)])
