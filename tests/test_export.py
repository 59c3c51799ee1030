"""Export: every model of train/ goes to ONNX and matches PyTorch within 1e-4 (FP32) in ONNX Runtime.

The seed's Net1-Net9 family has fc-4096 heads (~150 M parameters); the parity test builds them with
fc_width=32 at a 32 px crop (the smallest Net8's five poolings allow; the compact nets too), which
exercises exactly the same layer types and export path in about a second each on a shared 2-core VM, which exercises exactly the same
layer types and export path in a fraction of a second each."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="export needs torch (pip install 'handstream[train]')")
pytest.importorskip("onnx", reason="export needs onnx")

import torch  # noqa: E402

import engines  # noqa: E402
from engines.backends.torch_eager import TorchEngine  # noqa: E402
from engines.calibration import synthetic_crops  # noqa: E402
from engines.export import ExportError, export_onnx  # noqa: E402
from engines.export_model import export_model  # noqa: E402
from stream.errors import InputError  # noqa: E402

models = pytest.importorskip("train.models", reason="train.models not available")
MODEL_NAMES = list(models.MODEL_SPECS)
SMALL = {"fc_width": 32}
SMALL_SIZE = 32


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny convs on a shared 2-core CI box: one thread is faster than fighting over two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _small_kwargs(name: str) -> tuple[int, dict]:
    return SMALL_SIZE, dict(SMALL)


def test_every_model_of_train_is_covered():
    assert {"net1", "net6", "net9", "depthnet", "rgbdnet", "fusepred", "fusenet_conv", "compact_s"} <= set(
        MODEL_NAMES
    )


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_export_parity_onnxruntime_vs_torch(name, tmp_path):
    size, kwargs = _small_kwargs(name)
    torch.manual_seed(0)
    model = models.create_model(name, input_size=size, **kwargs).eval()
    torch.manual_seed(0)  # export_model builds the same model with the same weights
    path = export_model(name, tmp_path, crop_size=size, model_kwargs=kwargs, num_parity=2)
    m = engines.load_manifest(path)
    spec = models.MODEL_SPECS[name]
    assert m.inputs[0].shape == (1, spec.in_channels, size, size)
    assert m.outputs[0].shape == (1, 63) and m.num_joints == 21
    assert m.training["model"] == name and m.training["model_kwargs"]["input_size"] == size
    assert m.export["parity_max_abs_diff"] <= 1e-4 and m.metrics["trained"] is False
    engines.validate(m, path)
    # Independent check on new crops: the seeded PyTorch twin vs the exported engine in ONNX Runtime.
    ort_eng = engines.load_engine(path, backend="onnxruntime", threads=1)
    ref = TorchEngine(model, ort_eng.manifest)
    crops = synthetic_crops(2, size, spec.in_channels, seed=7)
    for c in crops:
        a, b = ort_eng.infer(c[None])["joints"], ref.infer(c[None])["joints"]
        assert a.shape == b.shape == (1, 63)
        assert np.max(np.abs(a - b)) <= 1e-4
        assert np.std(a) > 0  # not a degenerate all-equal output


def test_parity_on_a_real_nyu_crop(nyu_dir, tmp_path):
    """Parity on a real sensor crop (NYU test frame 1, cut around its ground-truth joints' centre)."""
    from stream.depth_io import read_depth
    from stream.frames import camera
    from stream.geometry import uvd_to_xyz
    from stream.preprocess.cube import crop_cube

    depth = read_depth(nyu_dir / "depth_1_0000001.png")
    uvd = np.loadtxt(nyu_dir / "nyu_test_groundtruth_label.txt", max_rows=1).reshape(14, 3)
    intr = camera("nyu")
    com = uvd_to_xyz(uvd, intr).mean(axis=0)  # our y-down camera frame: no NYU y flip needed in uvd
    crop = crop_cube(depth, intr, com, cube_mm=250.0, size=96).depth
    assert 0.05 < np.mean(crop < 1) < 0.9  # a real hand is in the crop
    torch.manual_seed(1)
    model = models.create_model("compact_s").eval()
    path = export_onnx(model, tmp_path, "nyu_parity", (1, 1, 96, 96), {}, parity_inputs=crop[None, None])
    m = engines.load_manifest(path)
    assert m.export["parity_inputs"] == 1 and m.export["parity_max_abs_diff"] <= 1e-4


def test_dynamic_batch_export_runs_any_batch(tmp_path):
    path = export_model("compact_gap", tmp_path, dynamic_batch=True, name="dyn")
    eng = engines.load_engine(path, backend="onnxruntime")
    assert eng.manifest.inputs[0].shape[0] == "batch"
    crops = synthetic_crops(3, eng.manifest.crop_size, 1, seed=2)
    batched = eng.infer(crops)["joints"]
    assert batched.shape == (3, 63)
    single = np.concatenate([eng.infer(c[None])["joints"] for c in crops])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_export_with_checkpoint_records_it_and_torch_backend_reproduces(tmp_path):
    torch.manual_seed(3)
    model = models.create_model("compact_gap", num_joints=14, input_size=48)
    ckpt = tmp_path / "ckpt.pt"
    # the layout train/trainer.py writes: weights under model_state, what to rebuild/feed beside them
    meta = {
        "model_name": "compact_gap",
        "model_kwargs": {},
        "crop_size": 48,
        "num_joints": 14,
        "cube_mm": 280.0,
    }
    torch.save(
        {"model_state": model.state_dict(), **meta, "metrics": {"val_mean_mm": 12.5}, "epoch": 7}, ckpt
    )
    path = export_model(None, tmp_path / "out", checkpoint=ckpt, name="hand14")
    m = engines.load_manifest(path)
    assert m.training["model"] == "compact_gap" and m.training["checkpoint"] == "ckpt.pt"
    assert m.training["epoch"] == 7 and m.crop_size == 48 and m.preprocessing["cube_mm"] == 280.0
    assert m.preprocessing["joint_layout"] == "nyu14" and m.outputs[0].shape == (1, 42)
    assert m.metrics == {"val_mean_mm": 12.5, "trained": True}
    ort_eng = engines.load_engine(path, backend="onnxruntime")
    torch_eng = engines.load_engine(path, backend="torch", checkpoint=ckpt)
    assert torch_eng.backend == "torch"
    x = synthetic_crops(1, m.crop_size, 1, seed=5)
    np.testing.assert_allclose(ort_eng.infer(x)["joints"], torch_eng.infer(x)["joints"], atol=1e-4)
    # the manifest names ckpt.pt, which is neither beside the engine nor in checkpoints/: say so, with the name
    with pytest.raises(InputError, match=r"needs the training checkpoint of .*\(ckpt\.pt; looked in"):
        engines.load_engine(path, backend="torch")
    with pytest.raises(InputError, match="does not fit"):
        export_model("compact_s", tmp_path / "bad", checkpoint=ckpt)


def test_export_of_shifted_views_runs_them_inside_the_engine(tmp_path):
    """A canonical checkpoint with test_shifts_px (`handstream train pose views`): the engine averages the
    views itself (ONNX Runtime = the torch backend rebuilt from the manifest's kwargs), and it is not the
    single-view engine."""
    torch.manual_seed(4)
    kw = {"fc_width": 16}
    model = models.create_model("compact_s_canon", num_joints=21, input_size=32, **kw)
    meta = {"model_name": "compact_s_canon", "crop_size": 32, "num_joints": 21, "cube_mm": 300.0}
    paths = {}
    for tag, extra in (("single", {}), ("views", {"test_shifts_px": [[1, 1], [2, 0]]})):
        ckpt = tmp_path / f"{tag}.pt"
        torch.save({"model_state": model.state_dict(), **meta, "model_kwargs": {**kw, **extra}}, ckpt)
        paths[tag] = (export_model(None, tmp_path / tag, checkpoint=ckpt, name="pose"), ckpt)
    m = engines.load_manifest(paths["views"][0])
    assert m.training["model_kwargs"]["test_shifts_px"] == [[1, 1], [2, 0]]
    assert m.inputs[0].shape == (1, 1, 32, 32) and m.outputs[0].shape == (1, 63)
    x = synthetic_crops(1, 32, 1, seed=6)
    ort_views = engines.load_engine(paths["views"][0], backend="onnxruntime").infer(x)["joints"]
    torch_views = engines.load_engine(paths["views"][0], backend="torch", checkpoint=paths["views"][1])
    np.testing.assert_allclose(ort_views, torch_views.infer(x)["joints"], atol=1e-4)
    single = engines.load_engine(paths["single"][0], backend="onnxruntime").infer(x)["joints"]
    assert np.abs(ort_views - single).max() > 1e-3


def test_parity_failure_writes_nothing(tmp_path):
    class Flaky(torch.nn.Module):
        """Export traces one branch; eager takes another on the parity inputs -> parity must fail."""

        def forward(self, x):
            if float(x.mean()) > 0.99:  # the traced example: all background
                return x.flatten(1)[:, :6] * 0
            return x.flatten(1)[:, :6] + 2

    bg = np.ones((2, 1, 8, 8), np.float32)
    bg[1, 0, :4] = -1  # second parity input takes the other branch
    with pytest.raises(ExportError, match="parity failed"):
        export_onnx(Flaky(), tmp_path, "flaky", (1, 1, 8, 8), {}, parity_inputs=bg, simplify=False)
    assert not (tmp_path / "flaky.onnx").exists() and not (tmp_path / "flaky.json").exists()


def test_export_rejects_bad_requests(tmp_path):
    with pytest.raises(InputError, match="unknown model"):
        export_model("net42", tmp_path)
    with pytest.raises(InputError, match="opset"):
        export_onnx(torch.nn.Flatten(), tmp_path, "x", (1, 1, 4, 4), {}, opset=11)
    with pytest.raises(InputError, match="takes rgb input, not depth"):
        export_model("rgbnet", tmp_path, crop_size=SMALL_SIZE, model_kwargs=SMALL, input_kind="depth")


def test_cli_export_writes_engine_and_manifest(tmp_path, capsys):
    from stream.cli import main

    rc = main(["export", "compact_gap", "--out", str(tmp_path), "--num-joints", "14", "--crop-size", "64"])
    assert rc == 0
    assert "parity max |diff|" in capsys.readouterr().out
    m = json.loads((tmp_path / "compact_gap.json").read_text())
    assert m["inputs"][0]["shape"] == [1, 1, 64, 64] and m["outputs"][0]["shape"] == [1, 42]
    assert main(["export", "no_such_model", "--out", str(tmp_path)]) == 2


def test_build_default_engines_from_a_checkpoint_folder(tmp_path):
    """The one command that produces the shipped engines, on a trainer-style checkpoint."""
    from tests.conftest import load_tool

    tool = load_tool("build_default_engines")
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    tool.placeholder_checkpoint(ckpts / "pose.pt", "compact_gap", 21, crop_size=48, cube_mm=260.0)
    assert tool.main(["--checkpoints", str(ckpts), "--out", str(tmp_path / "default")]) == 0
    m = engines.load_manifest(tmp_path / "default" / "pose.onnx")
    assert m.training["model"] == "compact_gap" and m.crop_size == 48 and m.preprocessing["cube_mm"] == 260.0
    assert m.metrics["trained"] is True
    eng = engines.load_engine(
        tmp_path / "default" / "pose.onnx", expect={"crop_size": 48, "input_channels": 1}
    )
    joints = eng.infer(synthetic_crops(1, 48))["joints"].reshape(21, 3)
    assert abs(joints[0, 1] - 0.55) < 0.2  # the placeholder's open-hand bias: wrist below the centre
    assert tool.main(["--checkpoints", str(tmp_path / "nothing")]) == 2
