"""`handstream eval synthetic` end to end: a real checkpoint and the ONNX engine exported from it, on a small
`handstream synth` dataset, through our segmentation and cube crop; and `handstream models --json`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from train.cli_eval import main as eval_main
from train.cli_models import main as models_main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    from stream.synth import write_dataset
    from train.data import default_scene

    d = tmp_path_factory.mktemp("synth")
    write_dataset(d, 6, seed=7, config=default_scene(), progress=False)
    return d


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from train.models import create_model

    torch.manual_seed(0)
    kwargs = {"num_joints": 21, "input_size": 32, "fc_width": 16}
    model = create_model("compact_gap", **kwargs)
    p = tmp_path_factory.mktemp("ck") / "tiny.pt"
    meta = {
        "model_name": "compact_gap",
        "model_kwargs": kwargs,
        "crop_size": 32,
        "cube_mm": 300.0,
        "num_joints": 21,
    }
    torch.save({"model_state": model.state_dict(), **meta}, p)
    return p


def test_eval_synthetic_checkpoint_json(synth_dir, checkpoint, capsys):
    assert eval_main(["synthetic", str(checkpoint), "--data", str(synth_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames_total"] == 6 and 0 <= out["found"] <= 6
    if out["found"]:
        assert len(out["per_joint_mm"]) == 21
        assert out["mean_mm"] == pytest.approx(np.mean(out["per_joint_mm"]))
        assert out["mean_mm"] > 0
    rates = [out["success_rate"][k] for k in ("20", "40", "80")]
    assert rates == sorted(rates) and all(0 <= r <= 1 for r in rates)


def test_engine_and_checkpoint_agree(synth_dir, checkpoint, tmp_path):
    from engines.export_model import export_model
    from train.evaluate import evaluate_synthetic

    onnx = export_model(None, tmp_path, name="tiny", checkpoint=checkpoint, crop_size=32, cube_mm=300.0)
    a = evaluate_synthetic(str(checkpoint), synth_dir, gt_centre=True)
    b = evaluate_synthetic(str(onnx), synth_dir, gt_centre=True)
    assert a["found"] == b["found"] > 0
    assert a["mean_mm"] == pytest.approx(b["mean_mm"], abs=1e-3)  # the same network through ONNX Runtime


def test_models_cli_json(capsys):
    assert models_main(["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"]: r for r in rows}
    assert {"net1", "net6", "depthnet", "fusenet_cat", "compact_s"} <= set(names)
    assert names["net6"]["params"] == names["depthnet"]["params"] > 100_000_000
    assert models_main([]) == 0
    assert "compact_s" in capsys.readouterr().out
