"""The per-frame pipeline with the shipped engine on real ONNX Runtime: results per frame, stage timing,
smoothing reset on loss, and a failing stage turning a frame into a "no hand" result reported once."""

import logging

import numpy as np
import pytest

from stream.frames import RGBDFrame
from stream.pipeline import FrameResult, Pipeline, build_pipeline, parse_models, run_stream
from stream.sinks import JsonlSink
from stream.sources.synthetic import SyntheticSource


@pytest.fixture(scope="module")
def frames():
    return list(SyntheticSource(n_frames=12, seed=2))


@pytest.fixture(scope="module")
def pipe():
    p = build_pipeline(backend="onnxruntime", models="pose", overlay=False)
    yield p
    p.close()


def test_process_gives_one_frozen_result_per_frame(pipe, frames):
    pipe.reset()
    results = [pipe.process(f) for f in frames]
    assert [r.index for r in results] == [f.index for f in frames]
    assert sum(r.hand_found for r in results) >= len(frames) // 2
    r = next(r for r in results if r.hand_found)
    j = pipe.engines[0].manifest.num_joints
    assert isinstance(r, FrameResult) and r.joints_xyz_mm.shape == (j, 3) and r.joints_uvd.shape == (j, 3)
    assert list(r.stage_ms) == ["preprocess", "pose", "fit", "smooth"]  # the hand-model fit is on by default
    assert all(v >= 0 for v in r.stage_ms.values()) and r.latency_ms >= r.total_ms * 0.5
    with pytest.raises(AttributeError):
        r.hand_found = False  # frozen
    # joints project where the hand is: near the detected centre of mass
    assert np.linalg.norm(np.median(r.joints_xyz_mm, 0) - r.com_xyz_mm) < 200


def test_smoothing_changes_joints_and_resets_when_hand_lost(pipe, frames):
    pipe.reset()
    a = [pipe.process(f) for f in frames[:4]]
    if not all(r.hand_found for r in a):
        pytest.skip("generator sequence without a hand in the first frames")
    last = a[-1]
    assert not np.allclose(last.joints_xyz_mm, last.joints_raw_xyz_mm)  # filtered, not raw
    empty = RGBDFrame(99, frames[4].timestamp_ms, np.zeros_like(frames[4].depth_mm), frames[4].intrinsics)
    lost = pipe.process(empty)
    assert not lost.hand_found and lost.reason and not lost.error
    back = pipe.process(frames[5])
    if back.hand_found:  # first sample after a reset passes through unfiltered
        np.testing.assert_allclose(back.joints_xyz_mm, back.joints_raw_xyz_mm)


class Exploding:
    name = "explode"

    def __init__(self, every=2):
        self.every, self.calls = every, 0

    def run(self, st):
        self.calls += 1
        if st.frame.index % self.every == 0:
            raise ValueError(f"bad frame {st.frame.index}")


def test_failing_stage_gives_no_hand_results_reported_once(pipe, frames, caplog):
    stages = [pipe.stages[0], pipe.stages[1], Exploding(), pipe.stages[2]]
    p = Pipeline(stages)
    with caplog.at_level(logging.WARNING, logger="handstream.pipeline"):
        results = [p.process(f) for f in frames[:6]]
    assert len(results) == 6
    bad = [r for r in results if r.index % 2 == 0]
    assert all(not r.hand_found and r.error.startswith("explode: ValueError") for r in bad)
    assert p.errors == 3
    msgs = [m for m in caplog.messages if "explode" in m]
    assert len(msgs) == 1 and "frame 0" in msgs[0]


class InterruptedInsideCompiledCode:
    """What a signal handler that raises during a numba or numpy call leaves: a SystemError whose cause is the
    KeyboardInterrupt (Python's 'returned a result with an exception set')."""

    name = "compiled"

    def run(self, st):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as stop:
            raise SystemError("CPUDispatcher(kernel) returned a result with an exception set") from stop


def test_an_interrupt_wrapped_by_compiled_code_stops_the_pipeline(pipe, frames):
    """A Ctrl-C / SIGTERM that lands inside a kernel is a stop, not a bad frame counted and forgotten."""
    p = Pipeline([pipe.stages[0], pipe.stages[1], InterruptedInsideCompiledCode()])
    with pytest.raises(KeyboardInterrupt):
        p.process(frames[0])
    assert p.errors == 0


def test_run_stream_replay_frames_in_equal_records_out(pipe, tmp_path):
    import json

    pipe.reset()
    out = tmp_path / "r.jsonl"
    stats = run_stream(SyntheticSource(n_frames=8, seed=4), pipe, [JsonlSink(out)])
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert stats.frames == len(recs) == 8 and stats.dropped == 0
    assert [r["index"] for r in recs] == list(range(8))
    assert set(recs[0]) >= {
        "index",
        "timestamp_ms",
        "hand_found",
        "joints_xyz_mm",
        "joints_uv_px",
        "stage_ms",
    }
    assert "frames" in stats.summary()


def test_parse_models():
    assert parse_models("pose, hand_size") == ["pose", "hand_size"]
    assert parse_models(None) == ["pose"]
    with pytest.raises(Exception, match="names no engine"):
        parse_models(" , ")


def test_other_engines_selected_by_name_report_raw_outputs(frames):
    from engines.registry import default_engine_path

    second = str(default_engine_path("pose"))  # any engine file; here the shipped one a second time
    with build_pipeline(backend="onnxruntime", models=["pose", second], overlay=False) as p:
        names = [s.name for s in p.stages]
        results = [p.process(f) for f in frames[:4]]
    assert names == ["preprocess", "pose", "pose_2", "fit", "smooth"]
    r = next(r for r in results if r.hand_found)
    assert set(r.outputs) == {"pose", "pose_2"}
    np.testing.assert_allclose(r.outputs["pose_2"], r.outputs["pose"], rtol=1e-5, atol=1e-5)
    assert "pose_2" in r.stage_ms


class InterruptAt:
    """A sink standing in for the user's Ctrl-C arriving while frame `at` is written."""

    def __init__(self, at):
        self.at, self.closed = at, False

    def write(self, result, frame=None):
        if result.index == self.at:
            raise KeyboardInterrupt
        return True

    def close(self):
        self.closed = True


def test_ctrl_c_shuts_down_cleanly(pipe, tmp_path):
    import threading

    pipe.reset()
    src = SyntheticSource(n_frames=40, seed=4)
    out = tmp_path / "r.jsonl"
    jsonl, stopper = JsonlSink(out), InterruptAt(3)
    with pytest.raises(KeyboardInterrupt):
        run_stream(src, pipe, [jsonl, stopper])
    assert stopper.closed and jsonl._f.closed
    assert len(out.read_text().splitlines()) == 4  # frames 0..3 were written before the interrupt
    assert src._closed  # the capture thread closed the source
    assert not any(t.name.startswith("capture-") for t in threading.enumerate())
    assert pipe.capture is None
