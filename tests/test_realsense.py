"""Real librealsense: `handstream record` writes a .db3 through rs.software_device + rs.recorder, and the
recording source plays it back through librealsense (frames in = frames out, intrinsics preserved)."""

import time

import numpy as np
import pytest

pytest.importorskip(
    "pyrealsense2", reason="pyrealsense2 is not installed (pip install 'handstream[realsense]')"
)

from stream.capture import CaptureThread  # noqa: E402
from stream.cli import main as cli  # noqa: E402
from stream.errors import InputError  # noqa: E402
from stream.sources import open_source  # noqa: E402
from stream.sources.recording import RecordingSource  # noqa: E402
from stream.sources.synthetic import SyntheticSource  # noqa: E402

N = 24


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "synth.db3"
    assert cli(["record", "--source", "synthetic:3", "--frames", str(N), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def reference():
    return list(SyntheticSource(n_frames=N, seed=3))


def test_lossless_playback_frames_in_equal_frames_out(recorded, reference):
    src = open_source(str(recorded))
    assert isinstance(src, RecordingSource) and not src.live
    with src:
        frames = list(src)
    assert len(frames) == N
    assert [f.index for f in frames] == list(range(N))
    assert [f.meta["frame_number"] for f in frames] == list(range(1, N + 1))
    for got, ref in zip(frames, reference):
        np.testing.assert_array_equal(got.depth_mm, ref.depth_mm)
        np.testing.assert_array_equal(got.color_bgr, ref.color_bgr)
        assert got.timestamp_ms == pytest.approx(ref.timestamp_ms, abs=1e-3)
    assert src.duplicates == 0


def test_uncompressed_recording_is_larger_and_plays_back_the_same(tmp_path, recorded, reference):
    out = tmp_path / "raw.db3"
    args = ["record", "--source", "synthetic:3", "--frames", str(N), "--out", str(out), "--no-compress"]
    assert cli(args) == 0
    # lz4 is librealsense's default: the same frames stored raw take clearly more room
    assert out.stat().st_size > 1.5 * recorded.stat().st_size
    with open_source(str(out)) as src:
        frames = list(src)
    assert len(frames) == N
    for got, ref in zip(frames, reference):
        np.testing.assert_array_equal(got.depth_mm, ref.depth_mm)
        np.testing.assert_array_equal(got.color_bgr, ref.color_bgr)


def test_intrinsics_and_depth_unit_preserved(recorded, reference):
    with open_source(str(recorded)) as src:
        intr = src.intrinsics
        assert src.fps == 30
    ref = reference[0].intrinsics
    for k in ("fx", "fy", "cx", "cy", "width", "height", "depth_unit_mm"):
        assert getattr(intr, k) == pytest.approx(getattr(ref, k), rel=1e-6), k


def test_playback_is_deterministic_under_a_slow_consumer(recorded):
    src = RecordingSource(recorded, buffer_frames=2)
    with CaptureThread(src, capacity=1) as cap:
        got = []
        for f in cap:
            got.append((f.index, int(f.depth_mm.sum())))
            time.sleep(0.01)
    assert cap.dropped == 0
    with RecordingSource(recorded) as again:
        assert [(f.index, int(f.depth_mm.sum())) for f in again] == got


def test_realtime_mode_is_live_and_paced(recorded):
    src = RecordingSource(recorded, realtime=True)
    assert src.live
    t0 = time.monotonic()
    with src:
        frames = [src.read() for _ in range(6)]
    # six frames 33 ms apart take >= 5 periods when paced by their timestamps
    assert time.monotonic() - t0 >= 5 * 0.033 * 0.9
    assert all("t_capture_ns" in f.meta for f in frames)


def test_early_close_does_not_hang(recorded):
    t0 = time.monotonic()
    src = RecordingSource(recorded, buffer_frames=1)
    with src:
        assert src.read() is not None
    assert time.monotonic() - t0 < 5.0


@pytest.mark.parametrize(
    "content, match",
    [(b"", "empty file"), (b"not a database at all" * 10, "cannot read it"), (None, "truncated")],
)
def test_corrupt_truncated_missing_are_one_line_errors(tmp_path, recorded, content, match):
    p = tmp_path / "bad.db3"
    p.write_bytes(recorded.read_bytes()[:20000] if content is None else content)
    with pytest.raises(InputError, match=match) as ei:
        RecordingSource(p).open()
    assert "\n" not in str(ei.value)
    with pytest.raises(InputError, match="not found"):
        open_source(str(tmp_path / "missing.db3"))


def test_cli_errors_are_one_line(tmp_path, capsys):
    p = tmp_path / "x.db3"
    p.write_bytes(b"garbage")
    assert cli(["run", "--source", str(p), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("handstream run: error:") and "\n" not in err
    assert cli(["record", "--source", "synthetic", "--frames", "2", "--out", str(tmp_path / "a.bag")]) == 2
    assert ".db3" in capsys.readouterr().err


def test_missing_camera_is_a_clear_message_not_a_hang():
    import pyrealsense2 as rs

    if len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense camera is connected; this test needs none")
    t0 = time.monotonic()
    with pytest.raises(InputError, match="no RealSense camera found"):
        open_source("realsense").open()
    assert time.monotonic() - t0 < 10


def test_depth_only_playback_gives_the_same_depth_without_colour(recorded, reference):
    # a pipeline that reads no colour lets the recording leave its colour stream closed: every depth frame
    # still comes, bit-identical and in order, and no frame carries colour
    src = RecordingSource(recorded, color=False)
    with src:
        frames = list(src)
    assert len(frames) == N
    assert src.color_intrinsics is None
    for got, ref in zip(frames, reference):
        assert got.color_bgr is None
        np.testing.assert_array_equal(got.depth_mm, ref.depth_mm)
        assert got.timestamp_ms == pytest.approx(ref.timestamp_ms, abs=1e-3)


def test_run_decodes_colour_only_when_a_stage_reads_it(recorded, tmp_path, monkeypatch):
    # `handstream run` sets the source's want_color from the pipeline: JSON lines alone need depth only,
    # an annotated video needs the colour the overlay draws on
    seen = []
    real_open = RecordingSource._open

    def spy(self):
        real_open(self)
        seen.append((self.want_color, self.color_intrinsics is not None))

    monkeypatch.setattr(RecordingSource, "_open", spy)
    jsonl = tmp_path / "a.jsonl"
    assert cli(["run", "--source", str(recorded), "--jsonl", str(jsonl), "--quiet", "--no-fit"]) == 0
    out = tmp_path / "a.mp4"
    assert cli(["run", "--source", str(recorded), "--out", str(out), "--quiet", "--no-fit"]) == 0
    assert seen == [(False, False), (True, True)]
    assert len(jsonl.read_text().splitlines()) == N
