"""Bench statistics and report rendering on hand-computed cases (no timing is asserted)."""

from __future__ import annotations

import json

import pytest

from stream.bench import report as rep
from stream.bench.machine import describe, machine_info, peak_rss_mb
from stream.bench.stats import StageRecorder, speedup, summarize, summarize_run
from stream.errors import InputError


def test_percentiles_by_hand():
    # numpy's linear interpolation: position p/100 * (n - 1) between order statistics
    s = summarize([5.0, 1.0, 4.0, 2.0, 3.0])
    assert s.n == 5
    assert s.p50 == pytest.approx(3.0)
    assert s.p95 == pytest.approx(4.8)  # 0.95 * 4 = 3.8 -> 4 + 0.8 * (5 - 4)
    assert s.p99 == pytest.approx(4.96)
    assert (s.mean, s.min, s.max) == (3.0, 1.0, 5.0)
    one = summarize([7.5])
    assert one.p50 == one.p99 == 7.5


def test_summarize_rejects_empty_and_nonfinite():
    with pytest.raises(InputError):
        summarize([])
    with pytest.raises(InputError):
        summarize([1.0, float("nan")])


def test_recorder_overhead_fps_and_missing_stage():
    rec = StageRecorder()
    rec.add({"pre": 1.0, "pose": 2.0}, 3.5)  # sum 3, overhead 0.5
    rec.add({"pre": 1.0, "pose": 3.0}, 4.2)  # sum 4, overhead 0.2
    rec.add({"pre": 1.5}, 2.0)  # no hand: engine skipped; sum 1.5, overhead 0.5
    run = rec.summary(wall_s=0.5, dropped_frames=1)
    assert run.frames == 3 and len(rec) == 3
    assert run.stages_ms["pose"].n == 2 and run.stages_ms["pre"].n == 3
    assert run.stage_sum_ms.p50 == pytest.approx(3.0)
    assert run.overhead_ms.p50 == pytest.approx(0.5)
    assert run.overhead_fraction == pytest.approx(0.5 / 3.0)
    assert run.fps == pytest.approx(6.0)
    d = run.to_dict()
    assert d["dropped_frames"] == 1 and d["end_to_end_ms"]["max"] == pytest.approx(4.2)


def test_cpu_time_is_summarized_only_when_every_frame_has_it():
    rec = StageRecorder()
    rec.add({"a": 1.0}, 5.0, cpu_ms=1.2)
    rec.add({"a": 1.0}, 9.0, cpu_ms=1.4)
    run = rec.summary(wall_s=1.0)
    assert run.end_to_end_cpu_ms.p50 == pytest.approx(1.3)
    assert run.to_dict()["end_to_end_cpu_ms"]["n"] == 2
    rec.add({"a": 1.0}, 2.0)  # no CPU figure for this frame: no CPU summary at all
    assert rec.summary(wall_s=1.0).end_to_end_cpu_ms is None
    assert "end_to_end_cpu_ms" not in rec.summary(wall_s=1.0).to_dict()


def test_summarize_run_checks_shapes_and_wall_time():
    with pytest.raises(InputError):
        summarize_run({}, [1.0, 2.0], [1.0], wall_s=1.0)
    with pytest.raises(InputError):
        summarize_run({}, [1.0], [1.0], wall_s=0.0)


def test_speedup():
    assert speedup(20.0, 2.5) == pytest.approx(8.0)
    with pytest.raises(InputError):
        speedup(20.0, 0.0)


def test_machine_info_is_real_and_json_ready():
    info = machine_info()
    assert info["usable_cores"] >= 1 and info["logical_cores"] >= info["usable_cores"]
    assert "numpy" in info["versions"] and info["python"].count(".") == 2
    json.dumps(info)
    assert f"{info['usable_cores']}-core" in describe(info)
    assert peak_rss_mb() > 10  # a Python process with numpy loaded is well above 10 MB


def _report() -> dict:
    rec = StageRecorder()
    for i in range(20):
        rec.add({"preprocess": 1.0 + 0.01 * i, "pose": 0.5, "smoothing": 0.05}, 1.7 + 0.01 * i)
    pipe = rec.summary(wall_s=0.04).to_dict() | {"hand_frames": 20, "peak_rss_mb": 123.0}
    return {
        "schema": rep.SCHEMA,
        "command": "handstream bench --frames 20",
        "machine": machine_info(),
        "input": {"source": "synthetic", "description": "synthetic 640x480"},
        "pipeline": pipe,
        "backends": {
            "onnxruntime_t1": {"infer_ms": summarize([0.5, 0.6]).to_dict(), "end_to_end_ms": {"p50": 1.8}},
            "tensorrt": {"skipped": "no NVIDIA GPU"},
        },
        "variants": {
            "compact": {"params": 250000, "infer_ms": {"p50": 0.5}, "accuracy": {"mean_error_mm": 12.3}}
        },
        "peers": {"mediapipe_tracking_c1": {"p50": 10.0, "p95": 12.0, "p99": 13.0, "detection_rate": 0.5}},
        "targets": [{"name": "e2e p50", "target": "<= 3 ms", "measured": "1.8 ms", "met": True}],
        "notes": ["a note"],
    }


def test_markdown_and_json_round_trip(tmp_path):
    r = _report()
    path = rep.write_json(r, tmp_path / "sub" / "bench.json")
    back = rep.read_json(path)
    assert back["pipeline"]["end_to_end_ms"]["p50"] == pytest.approx(r["pipeline"]["end_to_end_ms"]["p50"])
    md = rep.render_markdown(back)
    assert md == rep.render_markdown(r)
    assert "Command: `handstream bench --frames 20`" in md
    lines = md.splitlines()
    # every table row has as many cells as its header
    header_idx = [i for i, ln in enumerate(lines) if ln.startswith("|---")]
    assert len(header_idx) == 5  # pipeline, backends, variants, peers, targets
    for i in header_idx:
        ncols = lines[i - 1].count("|")
        j = i + 1
        while j < len(lines) and lines[j].startswith("|"):
            assert lines[j].count("|") == ncols, lines[j]
            j += 1
    assert "skipped: no NVIDIA GPU" in md
    assert "12.3 mm" in md and "0.25 M" in md
    e2e = r["pipeline"]["end_to_end_ms"]["p50"]
    assert f"{10.0 / e2e:.1f}×" in md  # speedup uses our end-to-end median
    assert "50 %" in md


def test_read_json_rejects_other_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"schema": "other"}')
    with pytest.raises(InputError):
        rep.read_json(p)
    with pytest.raises(InputError):
        rep.read_json(tmp_path / "missing.json")


def test_plots_written_or_skipped_with_reason(tmp_path):
    from stream.bench import plots

    pytest.importorskip("matplotlib", reason="matplotlib (dev extra) absent: plots are skipped by design")
    h = plots.stage_histograms({"preprocess": [1.0, 1.2, 1.1, 3.0], "pose": [0.5, 0.6]}, tmp_path / "h.png")
    s = plots.latency_vs_accuracy(
        {"a": (0.5, 12.0), "b": (2.0, 9.5), "nan": (1.0, float("nan"))}, tmp_path / "s.png"
    )
    for p in (h, s):
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(plots.PlotSkipped):
        plots.latency_vs_accuracy({"x": (1.0, float("nan"))}, tmp_path / "none.png")
