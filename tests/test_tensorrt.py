"""TensorRT: everything that needs no GPU (plan cache keys, calibration data, the import guard) is tested
here; building and running a plan needs TensorRT + a CUDA device and skips with the reason otherwise."""

from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.backends import trt as trt_backend
from engines.calibration import calibration_batches, synthetic_crops
from engines.manifest import pose_manifest
from engines.trt_cache import CacheKey, default_cache_dir, find_plan, make_key, plan_path, store_plan
from stream.errors import InputError, MissingDependencyError

BASE = dict(onnx_sha256="a" * 64, trt_version="10.3.0", gpu_name="NVIDIA GeForce RTX 4090", precision="fp16")


def test_cache_key_changes_when_any_part_changes():
    base = make_key(**BASE, workspace_mb=1024)
    variants = [
        make_key(**{**BASE, "onnx_sha256": "b" * 64}, workspace_mb=1024),
        make_key(**{**BASE, "trt_version": "10.4.0"}, workspace_mb=1024),
        make_key(**{**BASE, "gpu_name": "NVIDIA A10"}, workspace_mb=1024),
        make_key(**{**BASE, "precision": "int8"}, workspace_mb=1024),
        make_key(**{**BASE, "precision": "fp32"}, workspace_mb=1024),
        make_key(**BASE, workspace_mb=2048),
        make_key(**BASE),
    ]
    names = {k.filename("pose") for k in variants}
    assert base.filename("pose") not in names and len(names) == len(variants)
    # ...and is stable: same parts (options in any order) -> same key and file name
    again = make_key(**BASE, workspace_mb=1024)
    assert again == base and again.digest() == base.digest()
    a = make_key(**BASE, workspace_mb=1, max_batch=8)
    b = CacheKey(**BASE, builder=(("max_batch", 8), ("workspace_mb", 1)))
    assert a.digest() == b.digest()
    assert base.filename("pose").startswith("pose.fp16.") and base.filename("pose").endswith(".plan")


def test_cache_key_rejects_bad_parts():
    with pytest.raises(InputError, match="precision"):
        make_key(**{**BASE, "precision": "bf8"})
    with pytest.raises(InputError, match="GPU name"):
        make_key(**{**BASE, "gpu_name": ""})


def test_backend_cache_key_includes_calibration_and_batch_range():
    static = pose_manifest("pose", crop_size=96, num_joints=21)
    dynamic = pose_manifest("pose", crop_size=96, num_joints=21, dynamic_batch=True)
    kw = dict(version="10.3.0", gpu="A10")
    fp16 = trt_backend.cache_key(static, "c" * 64, "fp16", **kw)
    int8 = trt_backend.cache_key(static, "c" * 64, "int8", **kw)
    int8_other_calib = trt_backend.cache_key(static, "c" * 64, "int8", calibration="synthetic:64:1", **kw)
    assert "calibration" not in dict(fp16.builder) and "calibration" in dict(int8.builder)
    assert int8.digest() != int8_other_calib.digest()
    dyn8 = trt_backend.cache_key(dynamic, "c" * 64, "fp16", **kw)
    dyn16 = trt_backend.cache_key(dynamic, "c" * 64, "fp16", max_batch=16, **kw)
    assert dict(dyn8.builder)["max_batch"] == "8" and dyn8.digest() != dyn16.digest() != fp16.digest()


def test_plan_store_and_find(tmp_path):
    key = make_key(**BASE)
    assert find_plan(key, "pose", [tmp_path / "a", tmp_path / "b"]) is None
    path = store_plan(key, "pose", b"\x00plan-bytes", tmp_path / "b")
    assert path == plan_path(key, "pose", tmp_path / "b") and path.read_bytes() == b"\x00plan-bytes"
    assert path.with_suffix(".json").is_file()  # the key in clear, beside the plan
    assert find_plan(key, "pose", [tmp_path / "a", tmp_path / "b"]) == path
    other = make_key(**{**BASE, "trt_version": "10.5.0"})  # a TensorRT upgrade never picks up the old plan
    assert find_plan(other, "pose", [tmp_path / "b"]) is None
    assert not list((tmp_path / "b").glob("*.tmp*"))


def test_default_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HANDSTREAM_TRT_CACHE", str(tmp_path / "plans"))
    assert default_cache_dir() == tmp_path / "plans"
    monkeypatch.delenv("HANDSTREAM_TRT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "handstream" / "tensorrt"


def test_calibration_batches_have_the_engine_shape_and_real_looking_content():
    batches = calibration_batches((4, 1, 96, 96), num_images=18, seed=3)
    assert len(batches) == 4  # 18 images -> 4 full batches of 4, the partial one dropped
    for b in batches:
        assert b.shape == (4, 1, 96, 96) and b.dtype == np.float32 and b.flags.c_contiguous
        assert b.min() >= -1 and b.max() <= 1
        hand = b < 0.9
        assert 0.05 < hand.mean() < 0.8  # a hand on background, not noise and not empty
        assert np.abs(b[hand]).mean() < 0.5  # the hand surface sits near the cube centre (depth 0)
    # deterministic per seed, different across seeds
    np.testing.assert_array_equal(batches[0], calibration_batches((4, 1, 96, 96), 18, seed=3)[0])
    assert not np.array_equal(batches[0], calibration_batches((4, 1, 96, 96), 18, seed=4)[0])


def test_calibration_batches_from_given_crops_and_shape_checks():
    crops = synthetic_crops(5, 32, 4, seed=0)
    assert crops.shape == (5, 4, 32, 32)
    batches = calibration_batches((1, 4, 32, 32), crops=crops)
    assert len(batches) == 5 and np.array_equal(batches[2][0], crops[2])
    with pytest.raises(ValueError, match="static"):
        calibration_batches(("batch", 1, 32, 32))
    with pytest.raises(ValueError, match="takes"):
        calibration_batches((1, 1, 32, 32), crops=crops)


def test_tensorrt_modules_are_behind_an_import_guard():
    ok, why = engines.tensorrt_available()
    if ok:
        pytest.skip("TensorRT is installed here; the guard is exercised by test_build_and_run_on_gpu")
    assert why
    with pytest.raises(MissingDependencyError, match=r"handstream\[tensorrt\]"):
        trt_backend.trt_version()
    with pytest.raises(MissingDependencyError):
        engines.choose_backend("tensorrt")
    assert engines.choose_backend("auto") == "onnxruntime"


def test_cli_build_without_tensorrt_is_a_one_line_error(capsys):
    if engines.tensorrt_available()[0]:
        pytest.skip("TensorRT is installed here")
    from stream.cli import main

    assert main(["build", str(engines.default_engine_path().parent), "--precision", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "handstream[tensorrt]" in err and len(err.splitlines()) == 1
    assert main(["build", "/no/such/dir"]) == 2


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_and_run_on_gpu(tmp_path, precision):
    ok, why = engines.tensorrt_available()
    if not ok:
        pytest.skip(f"needs TensorRT and a CUDA device: {why}")
    ref = engines.load_engine("pose", backend="onnxruntime")
    eng = engines.load_engine("pose", backend="tensorrt", precision=precision, cache_dir=tmp_path)
    assert eng.backend == "tensorrt" and list(tmp_path.glob(f"pose.{precision}.*.plan"))
    x = synthetic_crops(4, ref.manifest.crop_size, 1, seed=11)
    tol = {"fp32": 1e-3, "fp16": 2e-2, "int8": 1e-1}[precision]
    for c in x:
        np.testing.assert_allclose(eng.infer(c[None])["joints"], ref.infer(c[None])["joints"], atol=tol)
    eng.close()
    again = engines.load_engine("pose", backend="tensorrt", precision=precision, cache_dir=tmp_path)
    assert len(list(tmp_path.glob(f"pose.{precision}.*.plan"))) == 1  # loaded from the cache, not rebuilt
    again.close()
