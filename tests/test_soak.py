"""tools/soak.py on a short run: the report's fields are there and sane (the long soak is run by hand)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.errors import InputError
from tests.conftest import load_tool


def test_slope_fit_and_rss_reading():
    soak = load_tool("soak")
    n = np.arange(0, 1000, 100)
    assert soak.slope_kb_per_frame(n, 100.0 + n * (0.5 / 1024)) == pytest.approx(0.5)
    assert soak.slope_kb_per_frame(n, np.full(n.shape, 100.0)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError):
        soak.slope_kb_per_frame(n[:1], n[:1] * 1.0)
    assert 1.0 < soak.rss_mb() < 1e6


def test_short_soak_reports_slope_and_percentiles(tmp_path, capsys):
    soak = load_tool("soak")
    out = tmp_path / "soak.json"
    assert (
        soak.main(["--frames", "300", "--warmup", "100", "--every", "20", "--clip", "8", "--json", str(out)])
        == 0
    )
    assert "kB/frame" in capsys.readouterr().out
    rep = json.loads(out.read_text())
    assert rep["frames"] == 300 and rep["warmup_frames"] == 100 and rep["errors"] == 0
    assert rep["rss_samples"] == 10  # frames 120, 140, ..., 300
    assert np.isfinite(rep["rss_slope_kb_per_frame"]) and rep["rss_end_mb"] > 10
    for key in ("pipeline_ms", "latency_ms"):
        p = rep[key]
        assert 0 < p["p50"] <= p["p95"] <= p["p99"]
    assert rep["hands"] > 0 and rep["fps"] > 0


def test_soak_refuses_a_run_too_short_for_a_slope(capsys):
    soak = load_tool("soak")
    assert soak.main(["--frames", "100", "--warmup", "90", "--every", "20"]) == 2
    assert "fewer than two RSS samples" in capsys.readouterr().err
