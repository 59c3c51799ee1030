"""Values users type are range-checked in one line, options a source ignores are refused, run statistics
stay a fixed size, and paced sources report how far behind real time they fall."""

from __future__ import annotations

import time

import numpy as np
import pytest

from stream.argtypes import check_fps, check_frames, check_seed, fps_type, frames_type, seed_type
from stream.cli import main as cli
from stream.errors import InputError
from stream.overlay import hud_text
from stream.pipeline import FrameResult, Hud, LogHistogram, RunStats, build_pipeline, run_stream
from stream.sources import open_source
from stream.sources.base import LagMeter, Pacer
from stream.sources.synthetic import SyntheticSource
from stream.synth import HandSynthesizer, SceneConfig


def _one_line_error(argv, capsys) -> str:
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and "usage:" not in err
    return err


# ------------------------------------------------------------------------------------------ CLI values
@pytest.mark.parametrize(
    "argv, match",
    [
        (["run", "--source", "synthetic", "--frames", "0"], "--frames '0' is out of range"),
        (["run", "--source", "synthetic", "--frames", "ten"], "--frames 'ten' is not an integer"),
        (["run", "--source", "synthetic", "--fps", "1e-9", "--live"], "between 0.1 and 1000"),
        (["run", "--source", "synthetic", "--fps", "inf"], "--fps 'inf' is not finite"),
        (["run", "--source", "synthetic", "--fps", "nan"], "--fps 'nan' is not finite"),
        (["run", "--source", "synthetic", "--fps", "0"], "out of range"),
        (["run", "--source", "synthetic:-3"], "synthetic:SEED '-3' is out of range"),
        (["run", "--source", "synthetic:x"], "synthetic:SEED 'x' is not an integer"),
        (["run", "--source", "synthetic", "--width", "-1"], "--width '-1' is out of range"),
        (["demo", "--seed", "-1"], "--seed '-1' is out of range"),
        (["demo", "--frames", "0"], "--frames"),
        (["synth", "--out", "x", "--frames", "3", "--seed", "-5"], "--seed '-5'"),
        (["synth", "--preview", "x.png", "--frames", "0"], "--frames '0'"),
        (
            ["locate", "f.png", "--size", "100000"],
            "--size '100000' is out of range; valid values are between 8",
        ),
        (
            ["record", "--source", "synthetic", "--out", "x.db3", "--fps=-inf"],
            "--fps '-inf' is not finite",
        ),
    ],
)
def test_bad_values_are_one_line(argv, match, capsys):
    assert match in _one_line_error(argv, capsys)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--depth", "d"], "--depth only applies to a video source, not to the synthetic generator"),
        (["--intrinsics", "i.json"], "--intrinsics only applies to a video or a folder source"),
        (["--realtime"], "--realtime only applies to a recording source"),
        (["--width", "320"], "--width only applies to a RealSense camera source"),
    ],
)
def test_options_the_synthetic_source_ignores_are_refused(extra, match, capsys):
    assert match in _one_line_error(["run", "--source", "synthetic", *extra], capsys)


def test_options_a_folder_or_recording_ignores_are_refused(tmp_path, capsys):
    err = _one_line_error(["run", "--source", str(tmp_path), "--frames", "10"], capsys)
    assert "--frames only applies to the synthetic generator source, not to a folder" in err
    err = _one_line_error(["run", "--source", str(tmp_path), "--live"], capsys)
    assert "--live only applies to the synthetic generator" in err
    rec = tmp_path / "r.db3"
    rec.write_bytes(b"x")
    assert "--fps only applies" in _one_line_error(["run", "--source", str(rec), "--fps", "30"], capsys)
    # a missing file is still "not found", whatever else was given
    assert "not found" in _one_line_error(
        ["run", "--source", str(tmp_path / "no.mp4"), "--frames", "3"], capsys
    )


def test_types_accept_what_is_valid_and_the_api_checks_the_same():
    assert fps_type()("0.1") == 0.1 and fps_type()("1000") == 1000.0
    assert frames_type()("1") == 1 and seed_type()("0") == 0
    assert check_fps(30) == 30.0 and check_frames(300.0) == 300 and check_seed(2**40) == 2**40
    for bad in (lambda: check_frames(2.5), lambda: check_fps(float("inf")), lambda: check_seed(-1)):
        with pytest.raises(InputError):
            bad()
    with pytest.raises(InputError, match="--frames '0'"):
        open_source("synthetic", frames=0)  # 0 is not "the default 300"
    with pytest.raises(InputError, match="--depth only applies"):
        open_source("synthetic", depth="d")
    with pytest.raises(InputError, match="seed must be an integer >= 0"):
        HandSynthesizer(SceneConfig(), seed=-1)
    assert open_source("synthetic:4", frames=5).frame_count == 5


def test_synthetic_source_is_lazy_and_a_longer_sequence_starts_the_same():
    """A billion-frame sequence gives its first frame at once (no trajectory precomputed for all of it),
    and the first frames of the same seed do not depend on the sequence's length."""
    with open_source("synthetic:3", frames=10**9) as long_src:
        first_long = [long_src.read() for _ in range(3)]
    with open_source("synthetic:3", frames=3) as short_src:
        first_short = list(short_src)
    assert len(first_short) == 3
    for a, b in zip(first_long, first_short, strict=True):
        np.testing.assert_array_equal(a.depth_mm, b.depth_mm)
        assert a.timestamp_ms == b.timestamp_ms


# -------------------------------------------------------------------------------------- run statistics
def test_histogram_percentiles_within_stated_accuracy_and_fixed_size():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.lognormal(1.0, 0.8, 20_000), [0.0, 1e-9, 2e5]])
    h = LogHistogram()
    size = h.counts.nbytes
    for v in x:
        h.add(v)
    h.add(float("nan"))
    assert h.counts.nbytes == size and len(h) == x.size and h.nan == 1
    exact = np.percentile(x, [50, 95, 99], method="inverted_cdf")  # nearest rank
    got = h.percentiles((50, 95, 99))
    np.testing.assert_allclose(got, exact, rtol=0.006)
    assert h.percentiles((0, 100)) == [0.0, 2e5]  # under/overflow report the exact min/max
    assert h.mean == pytest.approx(x.mean())
    assert np.isnan(LogHistogram().median())


def _result(i: int, ms: float) -> FrameResult:
    return FrameResult(i, 0.0, i % 2 == 0, None, None, {"preprocess": ms, "pose": 2 * ms}, 4 * ms)


def test_runstats_same_shape_and_no_per_frame_lists():
    st = RunStats()
    for i in range(5000):
        st.record(_result(i, 1.0 + (i % 10) / 10), sinks_ms=0.5)
    assert st.samples is None and st.frames == 5000 and st.hands == 2500
    assert all(isinstance(h, LogHistogram) for h in st.stage_ms.values())
    pct = st.percentiles()
    assert list(pct) == ["preprocess", "pose", "sinks", "pipeline total", "latency"]
    assert pct["pipeline total"][0] == pytest.approx(3 * 1.45, rel=0.07)  # stages' sum, sinks excluded
    assert pct["latency"][2] == pytest.approx(4 * 1.9, rel=0.006)
    table = st.table().splitlines()
    assert table[0] == "| stage | p50 ms | p95 ms | p99 ms |" and len(table) == 2 + 5
    st.wall_s = 1.0
    s = st.summary()
    assert s.startswith("5000 frames, 5000.0 FPS") and "hand in 2500/5000, dropped 0" in s
    assert "real time" not in s  # a replay is not paced: no lag clause


def test_run_stream_keeps_samples_only_when_asked():
    with build_pipeline(backend="onnxruntime", overlay=False) as pipe:
        stats = run_stream(SyntheticSource(n_frames=3, seed=1), pipe, keep_samples=True)
    assert set(stats.samples) == {"preprocess", "pose", "fit", "smooth", "latency"}
    assert all(len(v) == 3 for v in stats.samples.values())
    assert stats.pacing is None


# ------------------------------------------------------------------------------------------------ lag
def test_lag_meter_counts_speed_frames_behind_and_skipped():
    m = LagMeter()
    assert m.lag() is None
    for i in range(31):  # a 30 FPS stream delivered every 50 ms: 2/3 of real time
        m.observe(i * 1000 / 30, now_ns=i * 50_000_000, frame_number=i + (i >= 10) * 3)
    lag = m.lag()
    assert lag.speed == pytest.approx(2 / 3) and lag.behind_ms == pytest.approx(500.0)
    assert lag.behind_frames == 15 and lag.skipped == 3
    text = lag.describe()
    assert "speed 0.67x real time" in text and "15 frames" in text and "3 frames skipped" in text


def test_pacer_reports_a_source_slower_than_its_timestamps():
    """Timestamps 1 ms apart, each read taking >= 5 ms (a decoder that cannot keep up): the pacer never
    sleeps, drops nothing, and its lag says the stream ran at <= 1/5 of real time."""
    p = Pacer()
    for i in range(20):
        p.wait(float(i))
        time.sleep(0.005)
    lag = p.lag()
    assert lag.frames == 20 and lag.speed <= 0.21 and lag.behind_frames >= 19 * 4 - 1


def test_live_synthetic_run_reports_lag_in_summary_and_hud():
    """At 1000 FPS the generator (tens of ms a frame) falls behind: the summary and HUD say so."""
    src = SyntheticSource(n_frames=6, fps=1000.0, seed=2, live=True)
    with build_pipeline(backend="onnxruntime", overlay=False) as pipe:
        stats = run_stream(src, pipe)
        hud_lag = pipe.hud.lag
    assert stats.pacing is not None and stats.pacing.speed < 0.9 and stats.pacing.behind_frames > 0
    assert "x real time" in stats.summary()
    assert hud_lag is not None and hud_lag.frames >= 1
    hud = Hud()
    hud.lag = stats.pacing
    assert f"{stats.pacing.speed:.2f}x real time" in hud_text(hud, "hand")
    assert "real time" not in hud_text(Hud(), "hand")


def test_realtime_replay_reports_its_speed_and_lossless_does_not(tmp_path, capsys):
    pytest.importorskip(
        "pyrealsense2", reason="pyrealsense2 is not installed (pip install 'handstream[realsense]')"
    )
    rec = tmp_path / "r.db3"
    assert cli(["record", "--source", "synthetic:3", "--frames", "8", "--out", str(rec)]) == 0
    capsys.readouterr()
    base = ["run", "--source", str(rec), "--backend", "onnxruntime", "--quiet"]
    assert cli([*base, "--realtime"]) == 0
    paced = capsys.readouterr().out
    assert "x real time" in paced and "dropped" in paced
    assert cli(base) == 0
    assert "real time" not in capsys.readouterr().out
