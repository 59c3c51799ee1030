"""`handstream bench` end to end on tiny real runs: real frames, real ONNX Runtime sessions, real files.

Structure is asserted (keys, units, consistency, files written and read back), never a speed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.bench import report as rep
from stream.bench.cli import check_targets, main
from stream.bench.runtime import CAPTURE_KEY
from stream.bench.sources import ClipSource, clip_recording, is_raw, load_clip, load_npz_clip, save_clip
from stream.errors import InputError
from tests.conftest import REPO


@pytest.fixture(scope="module")
def clip_npz(tmp_path_factory):
    """Three synthetic 640x480 frames (depth + colour) written as an .npz clip."""
    from stream.frames import KNOWN_CAMERAS
    from stream.synth import HandSynthesizer, SceneConfig

    synth = HandSynthesizer(SceneConfig(camera=KNOWN_CAMERAS["d435_640x480"]), seed=3)
    frames = [s.frame for s in synth.sequence(3, 30.0)]
    return save_clip(tmp_path_factory.mktemp("clip") / "clip.npz", frames), frames


def test_clip_round_trip(clip_npz):
    path, frames = clip_npz
    back = load_npz_clip(path)
    assert len(back) == 3 and back[0].intrinsics == frames[0].intrinsics
    np.testing.assert_array_equal(back[2].depth_mm, frames[2].depth_mm)
    np.testing.assert_array_equal(back[1].color_bgr, frames[1].color_bgr)
    assert load_clip(str(path), 2).describe()["distinct_frames"] == 2
    with pytest.raises(InputError):
        load_clip("/no/such/file.npz")


def test_tiny_bench_writes_json_markdown_and_plots(clip_npz, tmp_path, capsys):
    path, _ = clip_npz
    js, md, plots = tmp_path / "b.json", tmp_path / "b.md", tmp_path / "plots"
    argv = ["--source", str(path), "--frames", "6", "--warmup", "2", "--engine-frames", "4"]
    argv += ["--slow-frames", "1", "--backends", "onnxruntime_t1,tensorrt", "--variants", "default"]
    argv += ["--accuracy-data", "none", "--json", str(js), "--md", str(md), "--plots", str(plots)]
    assert main(argv) == 0
    r = rep.read_json(js)
    pipe = r["pipeline"]
    assert pipe["path"] == "stream.pipeline" and ".db3" in r["input"]["timed_through"]
    assert pipe["frames"] == 6 and pipe["end_to_end_ms"]["n"] == 6
    e2e = pipe["end_to_end_ms"]
    assert 0 < e2e["min"] <= e2e["p50"] <= e2e["p95"] <= e2e["p99"] <= e2e["max"]
    # the runtime's own stages, in its order; capture/decode is timed on the capture thread, beside them
    # (two hands by default, as `handstream run`: the handedness stage runs before the pose engine)
    assert list(pipe["stages_ms"]) == ["preprocess", "handedness", "pose", "fit", "smooth"]
    assert r["input"]["max_hands"] == 2
    assert pipe["off_path_ms"][CAPTURE_KEY]["n"] == 6 and pipe["off_path_ms"][CAPTURE_KEY]["p50"] > 0
    # end-to-end is timed outside the stages' own timers, so per frame it is never below their sum
    assert pipe["overhead_ms"]["min"] >= 0.0
    assert pipe["end_to_end_cpu_ms"]["n"] == 6 and pipe["end_to_end_cpu_ms"]["p50"] > 0
    assert pipe["peak_rss_mb"] > 10 and pipe["fps"] > 0 and pipe["dropped_frames"] == 0
    pmem = r["pipeline_memory"]  # the same path, frames from memory: same stages, same hands
    assert list(pmem["stages_ms"]) == list(pipe["stages_ms"]) and pmem["hand_frames"] == pipe["hand_frames"]
    assert "memory" in pmem["description"] and pmem["end_to_end_ms"]["n"] == 6
    replay = r["replay"]  # run_stream + OverlayStage + VideoSink: a real mp4, read back
    assert replay["frames"] == 6 and replay["video_frames"] == 6 and replay["video_bytes"] > 1000
    assert list(replay["stages_ms"]) == [
        "preprocess",
        "handedness",
        "pose",
        "fit",
        "smooth",
        "overlay",
        "sinks",
    ]
    assert replay["off_path_ms"][CAPTURE_KEY]["n"] == 6 and replay["fps"] > 0
    mem = r["replay_memory"]  # the same frames from memory, encoder inline
    assert mem["video_frames"] == 6 and "memory" in mem["description"]
    assert mem["hand_frames"] == replay["hand_frames"]  # same frames, same pipeline: same hands
    e2e_target = next(t for t in r["targets"] if t["name"] == "default pose path end-to-end p50")
    assert e2e_target["note"].startswith("largest stage ") and "CPU time" in e2e_target["note"]
    target = next(t for t in r["targets"] if t["name"] == "replay with overlay + mp4 encoding")
    assert "decode alone" in target["note"] and "from memory" in target["note"]
    assert r["backends"]["onnxruntime_t1"]["infer_ms"]["n"] == 4
    assert "skipped" in r["backends"]["tensorrt"] or r["backends"]["tensorrt"]["infer_ms"]["n"] == 4
    assert "samples_ms" not in r["backends"]["onnxruntime_t1"]  # raw samples only feed the plots
    v = r["variants"]["default"]
    shipped = json.loads((REPO / "engines" / "default" / "pose.json").read_text())["training"]["model"]
    assert v["infer_ms"]["n"] == 4 and v["end_to_end_ms"]["n"] == 4 and v["model"] == shipped
    assert r["command"].startswith("handstream bench --source")
    assert r["machine"]["usable_cores"] >= 1 and "onnxruntime" in r["machine"]["versions"]
    assert r["input"]["width"] == 640 and r["input"]["distinct_frames"] == 3
    names = [t["name"] for t in r["targets"]]
    assert "default pose path end-to-end p50" in names
    text = md.read_text()
    assert text == rep.render_markdown(r) and "**Default pose path**" in text
    assert "capture/decode" in text and text in capsys.readouterr().out
    if r.get("plots"):
        for p in r["plots"]:
            assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    else:
        assert any("plot" in n for n in r["notes"])


def test_clip_recording_plays_back_losslessly(clip_npz, tmp_path):
    """The recording the timed runs play holds the clip's frames, cycled, bit for bit."""
    pytest.importorskip("pyrealsense2", reason="writing a RealSense recording needs pyrealsense2")
    from stream.sources.recording import RecordingSource

    path, frames = clip_npz
    clip = load_clip(str(path))
    rec = clip_recording(clip, 5, cache_dir=tmp_path)
    assert rec.suffix == ".db3" and clip_recording(clip, 5, cache_dir=tmp_path) == rec  # cached
    with RecordingSource(rec) as src:
        back = list(src)
    assert len(back) == 5
    for i, f in enumerate(back):
        np.testing.assert_array_equal(f.depth_mm, frames[i % 3].depth_mm)
        np.testing.assert_array_equal(f.color_bgr, frames[i % 3].color_bgr)
    lz4 = clip_recording(clip, 4, cache_dir=tmp_path)  # another length replaces it
    assert lz4.name == rec.name.replace("_n5", "_n4")
    assert [p.name for p in tmp_path.glob("*.db3")] == [lz4.name]
    # --uncompressed-recording: a raw file beside the lz4 one (neither replaces the other), same frames
    raw = clip_recording(clip, 4, cache_dir=tmp_path, compress=False)
    assert is_raw(raw) and not is_raw(lz4) and raw.stat().st_size > 1.5 * lz4.stat().st_size
    assert sorted(p.name for p in tmp_path.glob("*.db3")) == sorted([raw.name, lz4.name])
    with RecordingSource(raw) as src:
        back = list(src)
    assert len(back) == 4 and all(
        np.array_equal(f.depth_mm, frames[i % 3].depth_mm) for i, f in enumerate(back)
    )
    mem = list(ClipSource(clip, 5))
    assert [f.index for f in mem] == list(range(5)) and mem[4].timestamp_ms > mem[3].timestamp_ms


def test_bench_on_the_real_nyu_frame(nyu_dir, tmp_path):
    js = tmp_path / "nyu.json"
    argv = ["--source", str(nyu_dir / "depth_1_0000001.png"), "--frames", "3", "--warmup", "1"]
    argv += ["--backends", "none", "--variants", "none", "--no-replay", "--json", str(js)]
    argv += ["--slow-frames", "1", "--engine-frames", "1"]
    assert main(argv) == 0
    r = json.loads(js.read_text())
    assert r["input"]["has_color"] is True and r["input"]["distinct_frames"] == 1
    assert r["pipeline"]["hand_frames"] == 3  # a real, clearly visible hand
    assert "backends" not in r and "variants" not in r


def test_bad_options_are_one_line_errors():
    with pytest.raises(InputError):
        main(["--frames", "0"])
    with pytest.raises(InputError):
        main(["--peers", "openpose"])
    with pytest.raises(InputError, match="--max-hands 2"):
        main(["--two-hands", "--max-hands", "1"])


def test_two_hands_against_one_in_alternating_rounds(clip_npz, tmp_path):
    """`--two-hands`: the default path on the generator's two-hand scene and on the input, alternately; each
    round's ratio is its two runs' figures, and the target row is the rounds' median."""
    path, _ = clip_npz
    js = tmp_path / "b.json"
    argv = ["--source", str(path), "--frames", "5", "--warmup", "1", "--two-hands", "--two-hand-clip", "3"]
    argv += ["--rounds", "2", "--backends", "none", "--variants", "none", "--no-replay"]
    argv += ["--accuracy-data", "none", "--json", str(js), "--md", str(tmp_path / "b.md")]
    assert main(argv) == 0
    r = rep.read_json(js)
    two = r["two_hands"]
    assert two["clip"]["distinct_frames"] == 3 and "two-hand" in two["clip"]["description"]
    assert len(two["rounds"]) == 2
    for row in two["rounds"]:
        one, both = row["one_hand"]["end_to_end_ms"], row["two_hands"]["end_to_end_ms"]
        assert one["n"] == both["n"] == 5
        assert row["ratio_p50"] == pytest.approx(both["p50"] / one["p50"])
        assert row["ratio_mean"] == pytest.approx(both["mean"] / one["mean"])
        assert list(row["two_hands"]["stages_p50_ms"]) == [
            "preprocess",
            "handedness",
            "pose",
            "fit",
            "smooth",
        ]
    ratios = [row["ratio_p50"] for row in two["rounds"]]
    assert two["ratio_p50_range"] == [min(ratios), max(ratios)]
    assert two["ratio_p50_median"] == pytest.approx(sum(ratios) / 2)
    target = next(t for t in r["targets"] if t["name"] == "two hands vs one hand, end-to-end p50")
    assert target["met"] == (two["ratio_p50_median"] <= 2.0) and "2 alternating rounds" in target["note"]
    text = (tmp_path / "b.md").read_text()
    assert "**Two hands against one**" in text and "two hands vs one hand" in text


def test_targets_from_figures():
    r = {
        "pipeline": {"end_to_end_ms": {"p50": 2.0}, "overhead_fraction": 0.2},
        "pipeline_memory": {"end_to_end_ms": {"p50": 3.5}},
        "peers": {"mediapipe_tracking_c1": {"p50": 3.0}},
        "replay": {"fps": 75.0},
        "variants": {"net6": {"engine_vs_bare_ort": {"ratio_p50": 1.05}}},
        "two_hands": {"rounds": [{}, {}, {}], "ratio_p50_median": 2.4, "ratio_p50_range": [2.3, 2.7]},
    }
    got = {t["name"]: t["met"] for t in check_targets(r)}
    assert got == {
        "default pose path end-to-end p50": True,
        "the same, frames from memory (no decoding thread)": False,
        "vs MediaPipe tracking, complexity 1": False,  # 1.5x < 2x
        "pipeline overhead (p50, of stage sum)": False,
        "replay with overlay + mp4 encoding": True,
        "net6 via our engine vs bare ORT session": True,
        "two hands vs one hand, end-to-end p50": False,
    }
    assert check_targets({}) == []


def test_first_version_call_with_a_bare_clip_still_works(clip_npz):
    """pose_path_run/replay_run(clip, engine, threads, n, warmup): a Clip is served from memory."""
    from stream.bench.runtime import pose_path_run, replay_run

    clip = load_clip(str(clip_npz[0]))
    run, info = pose_path_run(clip, "pose", 1, 3, 1)
    assert run.summary.frames == 3 and "memory" in info["description"]
    run, info = replay_run(clip, "pose", 1, 2, 1)
    assert info["video_frames"] == 2 and list(run.samples_ms)[-2:] == ["sinks", "end_to_end"]
