"""Engine-level bench pieces on real ONNX Runtime sessions: timing helpers, backends, variants, bare ORT.

Only structure and consistency are asserted, never a speed (timing belongs to `handstream bench`)."""

from __future__ import annotations

import numpy as np
import pytest

from stream.bench.engine_timing import backend_entries, engine_vs_bare, fit_crops, time_calls
from stream.bench.variants import _mean_mm_in, parse_variant, variant_entries
from stream.errors import InputError

engines = pytest.importorskip("engines")


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, (3, 1, 128, 128)).astype(np.float32)


def test_time_calls_runs_warmup_then_n():
    seen = []
    ms = time_calls(seen.append, n=4, warmup=2)
    assert seen == [0, 1, 2, 3, 4, 5] and ms.shape == (4,) and np.all(ms >= 0)
    with pytest.raises(InputError):
        time_calls(seen.append, n=0, warmup=0)


def test_fit_crops_resizes_and_pads_channels(crops):
    x = fit_crops(crops, (1, 4, 96, 96))
    assert x.shape == (3, 4, 96, 96) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 1], x[:, 0])  # extra channels repeat depth: shape is what costs
    assert fit_crops(crops[:, 0], (1, 1, 128, 128)).shape == (3, 1, 128, 128)


def test_backends_on_the_shipped_engine(crops):
    out = backend_entries(
        "pose", crops, n=3, warmup=1, backends=["onnxruntime_t1", "onnxruntime_t2", "tensorrt"]
    )
    for b, threads in (("onnxruntime_t1", 1), ("onnxruntime_t2", 2)):
        e = out[b]
        assert e["threads"] == threads and e["backend"] == "onnxruntime"
        assert e["infer_ms"]["n"] == 3 == len(e["samples_ms"])
        assert 0 < e["infer_ms"]["p50"] <= e["infer_ms"]["max"]
    trt_ok, why = engines.tensorrt_available()
    assert ("skipped" in out["tensorrt"]) == (not trt_ok)
    if not trt_ok:
        assert out["tensorrt"]["skipped"] == why


def test_engine_vs_bare_interleaved(crops):
    r = engine_vs_bare("pose", crops, n=4, warmup=1, threads=1)
    assert r["engine_ms"]["n"] == r["bare_session_ms"]["n"] == 4
    assert r["ratio_p50"] == pytest.approx(r["engine_ms"]["p50"] / r["bare_session_ms"]["p50"])


def test_variants_default_and_an_exported_one(crops, tmp_path):
    pytest.importorskip("torch", reason="exporting an untrained variant needs torch (train extra)")
    out = variant_entries(
        ["default", "compact_gap", "nosuchnet", "compact_s"],
        "pose",
        crops,
        3,
        1,
        1,
        None,
        0,
        cache_dir=tmp_path,
    )
    # a variant that is the shipped default's own model is the default row, not a second one
    default_model = engines.load_manifest(engines.resolve_engine_path("pose")).model
    assert ("compact_s" in out) == (default_model != "compact_s")
    assert (
        out["default"]["accuracy"] == {"text": "untrained placeholder engine"}
        or "mean_error_mm" in out["default"]["accuracy"]
    )
    g = out["compact_gap"]
    assert g["model"] == "compact_gap" and g["input_shape"] == [1, 1, 96, 96]
    assert 50_000 < g["params"] < 150_000  # ~86 k in train.models, BN folded into the convs by export
    assert g["accuracy"]["text"].startswith("untrained")
    assert (tmp_path / "compact_gap" / "compact_gap.onnx").is_file()
    assert "unknown model" in out["nosuchnet"]["skipped"]


def test_parse_variant_and_metrics_lookup():
    assert parse_variant("compact_s") == ("compact_s", None)
    assert parse_variant("mine=/x/y.onnx") == ("mine", "/x/y.onnx")
    with pytest.raises(InputError):
        parse_variant("mine=")
    assert _mean_mm_in({"nyu": {"mean_mm": 20.0}, "synthetic": {"mean_mm": 11.5}}) == (
        "synthetic.mean_mm",
        11.5,
    )
    assert _mean_mm_in({"trained": False}) is None


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """Four frames written by `handstream synth` (the format of data/synth_test_4242)."""
    from stream.synth.cli import main as synth_main

    data = tmp_path_factory.mktemp("set") / "set"
    assert synth_main(["--out", str(data), "--frames", "4", "--seed", "7", "--no-color"]) == 0
    return data


def test_accuracy_is_measured_for_a_trained_engine_and_withheld_for_untrained(tmp_path, tiny_set):
    """`handstream eval synthetic` really runs on a tiny synth set for an engine that does not say it is
    untrained; the shipped placeholder and initial-weight exports get a label, never a number."""
    import json
    import shutil

    from stream.bench.variants import accuracy_of

    data = tiny_set
    shipped = engines.resolve_engine_path("pose")
    if not engines.load_manifest(shipped).metrics.get("trained", True):
        assert accuracy_of(shipped, str(data), 0) == {"text": "untrained placeholder engine"}
    # the same graph, its manifest claiming nothing about training: measured, not looked up
    copy = tmp_path / "eng" / "mine.onnx"
    copy.parent.mkdir()
    shutil.copy(shipped, copy)
    m = json.loads(shipped.with_suffix(".json").read_text())
    m["name"], m["metrics"] = "mine", {}
    m["training"].pop("weights", None)
    copy.with_suffix(".json").write_text(json.dumps(m))
    acc = accuracy_of(copy, str(data), 0)
    assert acc.get("frames") == 4, acc
    assert 0 <= acc["found"] <= 4 and acc["mean_error_mm"] > 0 and "eval synthetic mine.onnx" in acc["source"]


def test_checkpoint_variant_is_exported_once_and_evaluated(tmp_path, tiny_set):
    """NAME=ckpt.pt: the checkpoint is exported through engines.export_model (cached by its sha256) and,
    being trained weights, gets a measured accuracy."""
    torch = pytest.importorskip("torch", reason="exporting a checkpoint needs torch (train extra)")
    from stream.bench.variants import accuracy_of, resolve_variant
    from train.models import create_model

    torch.manual_seed(0)
    kwargs = {"num_joints": 21, "input_size": 32, "fc_width": 16}
    ck = tmp_path / "tiny.pt"
    meta = {"model_name": "compact_gap", "model_kwargs": kwargs, "crop_size": 32, "cube_mm": 300.0}
    torch.save({"model_state": create_model("compact_gap", **kwargs).state_dict(), **meta}, ck)
    name, path = resolve_variant(f"mine={ck}", "pose", cache_dir=tmp_path / "cache")
    m = engines.load_manifest(path)
    assert name == "mine" and m.model == "compact_gap" and m.inputs[0].shape[-1] == 32
    assert m.training["checkpoint_sha256"] == engines.manifest.sha256_file(ck)
    mtime = path.stat().st_mtime_ns
    assert resolve_variant(f"mine={ck}", "pose", cache_dir=tmp_path / "cache")[1] == path
    assert path.stat().st_mtime_ns == mtime  # cached, not exported again
    acc = accuracy_of(path, str(tiny_set), 0)
    assert acc["frames"] == 4 and "mean_error_mm" in acc
