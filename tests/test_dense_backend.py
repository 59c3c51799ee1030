"""The numpy executor for small dense graphs (engines/backends/dense.py): it must give ONNX Runtime's numbers
on the shipped gesture engine and on MLPs exported from torch, and refuse every graph it cannot run exactly."""

from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.backends.dense import compile_dense
from stream.gestures.canonical import canonical_hand
from stream.synth import gestures as vocab


def test_the_shipped_gesture_engine_runs_dense_with_onnx_runtime_numbers():
    rng = np.random.default_rng(3)
    with engines.load_engine("gesture", backend="onnxruntime", threads=1) as eng:
        net = compile_dense(eng)
        assert net is not None and len(net.layers) == 3
        for name in ("fist", "open_palm", "ok", "victory"):
            x = canonical_hand(vocab.gesture_joints(name, rng, noise_mm=5.0))[None]
            ref = eng.infer(x)["embedding"]
            got = net(x)
            assert got.shape == ref.shape == (1, 64)
            assert np.abs(got - ref).max() < 1e-5
            assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-5


def test_a_convolutional_engine_is_refused():
    with engines.load_engine("pose", backend="onnxruntime", threads=1) as eng:
        assert compile_dense(eng) is None


def _export(tmp_path, module, shape, name="mlp"):
    """Through the project's exporter (onnx checker, onnxslim, parity), as shipped engines are made."""
    pytest.importorskip("torch")
    from engines.export import export_onnx

    module.eval()
    x = np.random.default_rng(1).normal(size=(4, *shape[1:])).astype(np.float32)
    path = export_onnx(
        module, tmp_path, name, shape, {"version": "0.0.1", "task": "test"}, parity_inputs=x,
        input_names=("x",), output_names=("y",),
    )  # fmt: skip
    return engines.load_engine(str(path), backend="onnxruntime", threads=1)


def test_mlps_exported_from_torch_match_and_other_graphs_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))
    eng = _export(tmp_path, plain, (1, 4, 3), "plain")
    net = compile_dense(eng)
    assert net is not None and net.take is None and not net.l2_normalize
    x = np.random.default_rng(0).normal(size=(1, 4, 3)).astype(np.float32)
    assert np.abs(net(x) - eng.infer(x)["y"]).max() < 1e-5

    bn = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))
    with torch.no_grad():
        bn[2].running_mean.uniform_(-1, 1)
        bn[2].running_var.uniform_(0.5, 2)
    eng = _export(tmp_path, bn, (1, 12), "bn")
    net = compile_dense(eng)
    assert net is not None and len(net.layers) == 2 and net.layers[0].relu
    assert np.abs(net(x.reshape(1, 12)) - eng.infer(x.reshape(1, 12))["y"]).max() < 1e-5

    squashed = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Sigmoid(), nn.Linear(8, 4))
    assert compile_dense(_export(tmp_path, squashed, (1, 12), "sigmoid")) is None


def test_the_recogniser_gives_the_same_answers_on_both_paths():
    from stream.gestures.stage import GestureStage

    rng = np.random.default_rng(5)
    with engines.load_engine("gesture", backend="onnxruntime", threads=1) as eng:
        dense = GestureStage(eng).recognizer
        plain = GestureStage(eng).recognizer
        plain._dense = None  # the ONNX Runtime path
        assert dense.runs_dense and not plain.runs_dense
        for name in vocab.TRAIN[:8]:
            j = vocab.gesture_joints(name, rng, noise_mm=8.0).astype(np.float64)
            a, b = dense(j), plain(j)
            assert a[0] == b[0] and abs(a[1] - b[1]) < 1e-4
