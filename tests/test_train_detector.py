"""`handstream train detector` (train/recipes/detector.py) end to end on a handful of frames: it generates and caches its data, trains in
NHWC memory, and saves and exports a model in the default NCHW layout that ONNX Runtime runs like torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from train.recipes.detector import main as train_detector

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("channels_last", [True, False])
def test_train_detector_recipe_runs_saves_and_exports(tmp_path, channels_last):
    data, runs, out = tmp_path / "data", tmp_path / "runs", tmp_path / "engines"
    argv = ["--frames", "8", "--val-frames", "4", "--batch", "4", "--minutes", "0.02", "--threads", "1"]
    argv += ["--data-dir", str(data), "--runs", str(runs), "--out", str(out)]
    if not channels_last:
        argv.append("--no-channels-last")
    assert train_detector(argv) == 0
    assert len(list(data.glob("*.npz"))) == 2  # train and validation frames, cached
    history = json.loads((runs / "history.json").read_text())
    assert history and history[-1]["step"] >= 1
    ck = torch.load(runs / "last.pt", weights_only=False)
    convs = [v for v in ck["state_dict"].values() if v.dim() == 4]
    assert convs and all(v.is_contiguous() for v in convs)  # saved NCHW whatever it trained in
    manifest = json.loads((out / "detector.json").read_text())
    assert manifest["training"]["steps"] == history[-1]["step"]
    # precise BN after training: one pass over the 8 training frames in batches of 4
    assert manifest["training"]["bn_stats_batches"] == 2
    from stream.preprocess.detect import HandDetector

    det = HandDetector(out / "detector.onnx")
    res = det.run(np.full((240, 320), 600, np.uint16))
    assert res.heatmap.shape == res.mask_logits.shape and np.isfinite(res.heatmap).all()
