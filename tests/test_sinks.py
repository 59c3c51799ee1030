"""Sinks write real files that read back: JSON lines (one per result) and an mp4."""

import json

import cv2
import numpy as np
import pytest

from stream.errors import InputError
from stream.pipeline import FrameResult
from stream.sinks import JsonlSink, VideoSink, WindowSink


def _result(i, image=None, found=True):
    j = np.arange(63, dtype=np.float64).reshape(21, 3) + i
    return FrameResult(
        index=i,
        timestamp_ms=i * 33.3,
        hand_found=found,
        joints_xyz_mm=j if found else None,
        joints_uvd=j if found else None,
        stage_ms={"preprocess": 1.0, "pose": 0.5},
        latency_ms=2.0,
        image=image,
        reason="" if found else "no hand",
    )


def test_jsonl_one_record_per_result(tmp_path):
    s = JsonlSink(tmp_path / "sub" / "out.jsonl")
    for i in range(5):
        s.write(_result(i, found=i != 2))
    s.close()
    recs = [json.loads(x) for x in (tmp_path / "sub" / "out.jsonl").read_text().splitlines()]
    assert [r["index"] for r in recs] == list(range(5))
    assert (
        recs[2]["hand_found"] is False and recs[2]["joints_xyz_mm"] is None and recs[2]["reason"] == "no hand"
    )
    assert recs[1]["joints_xyz_mm"][0] == [1.0, 2.0, 3.0] and recs[1]["stage_ms"]["pose"] == 0.5
    assert len(recs[1]["joints_uv_px"][0]) == 2


def test_mp4_written_and_read_back(tmp_path):
    path = tmp_path / "v.mp4"
    s = VideoSink(path, fps=20)
    for i in range(7):
        img = np.zeros((48, 96, 3), np.uint8)
        img[:, : 10 * i + 5] = 255
        s.write(_result(i, image=img))
    s.close()
    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        assert f.shape == (48, 96, 3)
        n += 1
    assert n == 7
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(20)


def test_output_errors_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(InputError, match=".mp4"):
        VideoSink(tmp_path / "v.gif")
    with pytest.raises(InputError, match="folder"):
        JsonlSink(tmp_path)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(InputError, match="display"):
        WindowSink()
