"""Manifests: round trip, validation against the ONNX bytes, and the pipeline-fit check."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import engines
from engines.manifest import (
    Manifest,
    TensorSpec,
    check_expected,
    load_manifest,
    manifest_path_for,
    pose_manifest,
    save_manifest,
    sha256_file,
    validate,
)
from stream.errors import InputError


def _manifest(**kw) -> Manifest:
    return pose_manifest("pose", crop_size=96, num_joints=21, **kw)


def test_pose_manifest_follows_the_convention():
    m = _manifest()
    assert m.inputs == (TensorSpec("input", (1, 1, 96, 96)),)
    assert m.outputs == (TensorSpec("joints", (1, 63)),)
    assert m.preprocessing["joint_layout"] == "mediapipe21" and m.num_joints == 21
    assert pose_manifest("p", crop_size=64, num_joints=14).preprocessing["joint_layout"] == "nyu14"
    assert pose_manifest("p", crop_size=64, num_joints=14, dynamic_batch=True).inputs[0].shape[0] == "batch"


def test_json_round_trip_and_file_round_trip(tmp_path):
    m = replace(_manifest(training={"model": "compact_s"}, metrics={"mean_mm": 11.0}), onnx_sha256="ab" * 32)
    assert Manifest.from_json(m.to_json()) == m
    path = save_manifest(m, tmp_path / "pose.onnx")  # given the .onnx, it writes the .json beside it
    assert path == tmp_path / "pose.json" == manifest_path_for(tmp_path / "pose.onnx")
    assert load_manifest(tmp_path / "pose.onnx") == m
    assert json.loads(path.read_text())["inputs"][0]["shape"] == [1, 1, 96, 96]


def test_validate_rejects_a_different_onnx(tmp_path):
    onnx = tmp_path / "e.onnx"
    onnx.write_bytes(b"graph v1")
    m = _manifest().with_onnx(onnx)
    assert m.onnx_sha256 == sha256_file(onnx) and m.created
    validate(m, onnx)
    onnx.write_bytes(b"graph v2")
    with pytest.raises(InputError, match="does not match its manifest"):
        validate(m, onnx)
    with pytest.raises(InputError, match="no onnx_sha256"):
        validate(_manifest(), onnx)


@pytest.mark.parametrize(
    "expect, wrong",
    [
        ({"crop_size": 128}, "crop_size=96"),
        ({"input_channels": 4}, "input_channels=1"),
        ({"num_joints": 14}, "num_joints=21"),
        ({"input": "rgbd"}, "input='depth'"),
        ({"joint_layout": "nyu14"}, "joint_layout='mediapipe21'"),
        ({"cube_mm": 300.0}, "cube_mm=250.0"),
        ({"task": "gesture"}, "task='pose'"),
    ],
)
def test_check_expected_names_the_mismatch(expect, wrong):
    m = _manifest()
    with pytest.raises(InputError) as exc:
        check_expected(m, expect)
    assert wrong in str(exc.value) and "\n" not in str(exc.value)


def test_check_expected_accepts_a_fit_and_silence():
    m = _manifest()
    check_expected(m, None)
    check_expected(m, {"crop_size": 96, "input_channels": 1, "num_joints": 21, "cube_mm": 250.0 + 1e-9})
    silent = replace(m, preprocessing={})  # a manifest that says nothing about cube/layout is not wrong
    check_expected(silent, {"cube_mm": 300.0, "joint_layout": "nyu14", "crop_size": 96})


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.pop("inputs"), "missing"),
        (lambda d: d.update(format=99), "newer than this handstream"),
        (lambda d: d["inputs"][0].update(dtype="float99"), "dtype"),
        (lambda d: d["preprocessing"].update(joint_layout="hand42"), "joint_layout"),
        (lambda d: d["preprocessing"].update(input="thermal"), "input 'thermal'"),
        (lambda d: d.update(outputs=[]), "at least one input and one output"),
    ],
)
def test_malformed_manifests_are_one_line_errors(tmp_path, mutate, match):
    d = json.loads(_manifest().to_json())
    mutate(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(InputError, match=match) as exc:
        load_manifest(path)
    assert "\n" not in str(exc.value)


def test_not_json_is_an_input_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_manifest(path)


def test_shipped_manifests_validate():
    names = engines.shipped_engines()
    assert "pose" in names
    for n in names:
        p = engines.default_engine_path(n)
        validate(load_manifest(p), p)
