"""The one inference interface: shipped engines load, infer, and refuse what does not fit."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

import engines
from engines.calibration import synthetic_crops
from stream.errors import InputError, MissingDependencyError


@pytest.fixture
def pose_copy(tmp_path):
    """A private copy of the shipped pose engine that a test may edit."""
    src = engines.default_engine_path("pose")
    dst = tmp_path / "pose.onnx"
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def test_shipped_pose_engine_follows_the_io_convention():
    path = engines.default_engine_path()
    assert path.name == "pose.onnx" and path.with_suffix(".json").is_file()
    m = engines.load_manifest(path)
    s, j = m.preprocessing["crop_size"], m.preprocessing["num_joints"]
    assert m.inputs[0].name == "input" and m.inputs[0].shape == (1, 1, s, s)
    assert m.outputs[0].name == "joints" and m.outputs[0].shape == (1, 3 * j)
    assert m.preprocessing["input"] == "depth" and m.preprocessing["cube_mm"] > 0
    engines.validate(m, path)
    # package-data ships exactly these patterns (pyproject: engines = ["default/*.onnx", "default/*.json"])
    assert path.stat().st_size < 20e6


def test_load_by_name_and_infer(caplog):
    with caplog.at_level(logging.INFO, logger="handstream.engines"):
        eng = engines.load_engine("pose", backend="auto", threads=1)
    with eng:
        assert eng.backend == "onnxruntime"  # no TensorRT on a CPU machine
        assert any("auto -> onnxruntime" in r.getMessage() for r in caplog.records)
        assert eng.input_names == ("input",) and eng.output_names == ("joints",)
        s = eng.manifest.crop_size
        crops = synthetic_crops(2, s, 1, seed=3)
        out = eng.infer(crops[:1])
        assert set(out) == {"joints"}
        joints = out["joints"]
        assert joints.shape == (1, 3 * eng.manifest.num_joints) and joints.dtype == np.float32
        assert np.all(np.isfinite(joints))
        # dict input and float64 input give the same answer as the bare float32 array
        np.testing.assert_array_equal(eng.infer({"input": crops[:1].astype(np.float64)})["joints"], joints)
        # a different crop gives a different answer (the engine really reads its input)
        assert not np.array_equal(eng.infer(crops[1:2])["joints"], joints)
    with pytest.raises(InputError, match="closed"):
        eng.infer(crops[:1])


def test_infer_rejects_wrong_shapes_and_names():
    eng = engines.load_engine("pose", backend="onnxruntime")
    s = eng.manifest.crop_size
    with pytest.raises(InputError, match="shape"):
        eng.infer(np.zeros((1, 1, s + 1, s), np.float32))
    with pytest.raises(InputError, match="takes inputs"):
        eng.infer({"depth": np.zeros((1, 1, s, s), np.float32)})


def test_expect_mismatch_is_one_line_input_error():
    m = engines.load_manifest(engines.default_engine_path())
    s = m.crop_size
    engines.load_engine("pose", expect={"crop_size": s, "input_channels": 1, "num_joints": m.num_joints})
    with pytest.raises(InputError, match=f"crop_size={s}") as exc:
        engines.load_engine("pose", expect={"crop_size": s // 2, "input_channels": 1})
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="input_channels"):
        engines.load_engine("pose", expect={"input_channels": 4})
    with pytest.raises(InputError, match="unknown expectation"):
        engines.load_engine("pose", expect={"colour": True})


def test_engine_with_tampered_onnx_is_refused(pose_copy):
    engines.load_engine(pose_copy)  # the untouched copy loads
    data = bytearray(pose_copy.read_bytes())
    data[-10] ^= 0xFF  # flip bits inside the last initializer: still a loadable graph, different weights
    pose_copy.write_bytes(bytes(data))
    with pytest.raises(InputError, match="does not match its manifest"):
        engines.load_engine(pose_copy)


def test_engine_whose_manifest_lies_about_io_is_refused(pose_copy):
    meta = json.loads(pose_copy.with_suffix(".json").read_text())
    meta["outputs"][0]["name"] = "keypoints"
    pose_copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="differ from the manifest"):
        engines.load_engine(pose_copy, backend="onnxruntime")


def test_missing_manifest_and_unknown_names():
    with pytest.raises(InputError, match="no shipped engine named 'nope'"):
        engines.load_engine("nope")
    with pytest.raises(InputError, match="not found"):
        engines.load_engine("/no/such/engine.onnx")
    with pytest.raises(InputError, match="backend 'cuda'"):
        engines.load_engine("pose", backend="cuda")


def test_missing_manifest_is_refused(pose_copy):
    pose_copy.with_suffix(".json").unlink()
    with pytest.raises(InputError, match="manifest .* not found"):
        engines.load_engine(pose_copy)


def test_tensorrt_request_without_tensorrt_says_what_to_install():
    ok, why = engines.tensorrt_available()
    if ok:
        pytest.skip("TensorRT and a CUDA device are present here")
    with pytest.raises(MissingDependencyError, match=r"handstream\[tensorrt\]") as exc:
        engines.load_engine("pose", backend="tensorrt")
    assert why in str(exc.value)


def test_importing_engines_does_not_import_torch():
    code = "import engines, sys; print(','.join(k for k in sys.modules if k.split('.')[0] in ('torch', 'onnx', 'tensorrt', 'train')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_onnxruntime_options_take_effect():
    fast = engines.load_engine("pose", backend="onnxruntime", threads=1, optimization="all", device="cpu")
    plain = engines.load_engine(
        "pose", backend="onnxruntime", threads=2, optimization="disable", device="cpu"
    )
    assert fast.session.get_session_options().intra_op_num_threads == 1
    assert plain.session.get_session_options().intra_op_num_threads == 2
    assert fast.device == plain.device == "CPUExecutionProvider"
    x = synthetic_crops(1, fast.manifest.crop_size, 1, seed=9)
    # graph optimisations (fusions) change float rounding only
    np.testing.assert_allclose(fast.infer(x)["joints"], plain.infer(x)["joints"], atol=1e-5)
    with pytest.raises(InputError, match="graph optimization"):
        engines.load_engine("pose", backend="onnxruntime", optimization="max")
    with pytest.raises(InputError, match="threads"):
        engines.load_engine("pose", backend="onnxruntime", threads=0)


def test_torch_backend_without_checkpoint_says_what_it_needs(tmp_path):
    pytest.importorskip("torch", reason="the torch backend needs torch")
    # a copy of the shipped engine whose manifest names no checkpoint, and one naming a missing checkpoint
    src = engines.default_engine_path()
    m = json.loads(src.with_suffix(".json").read_text())
    for case, training in (
        ("none", {k: v for k, v in m["training"].items() if not k.startswith("checkpoint")}),
        ("missing", {**m["training"], "checkpoint": "no_such_checkpoint_xyz.pt"}),
    ):
        d = tmp_path / case
        d.mkdir()
        shutil.copy(src, d / "pose.onnx")
        (d / "pose.json").write_text(json.dumps({**m, "training": training}))
        with pytest.raises(InputError, match="needs the (training )?checkpoint"):
            engines.load_engine(d / "pose.onnx", backend="torch")
