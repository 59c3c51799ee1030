"""Frames in = records out: a frame a source cannot read (a garbled message in a recording, a corrupt or
wrongly sized file in a folder, a video frame that does not decode) becomes a "no hand" record saying why,
and the stream goes on. Every damaged input is built here, at test time, from real files: recordings
written by librealsense and then garbled in their SQLite table, PNG folders, videos written by OpenCV."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.errors import InputError
from stream.frames import RGBDFrame, camera
from stream.pipeline import Pipeline
from stream.sources import open_source
from stream.stages import PreprocessStage, SmoothStage

N = 60
REPO = Path(__file__).resolve().parents[1]


def handstream(*argv: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: its own process, real exit status, stderr as printed."""
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *argv], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def stderr_lines(out: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in out.stderr, out.stderr
    return [x for x in out.stderr.splitlines() if x.strip()]


def jsonl(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def mp4_frames(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            return out
        out.append(img)


# ---- the representation and the pipeline ----


def test_unreadable_frame_carries_a_reason_and_no_pixels():
    intr = camera("d435_320x240")
    f = RGBDFrame.unreadable(3, 100.0, intr, "folder x", "f3.png: not a readable\nimage")
    assert not f.readable and f.depth_mm is None and f.color_bgr is None
    assert f.unreadable_reason == "f3.png: not a readable image"  # one line
    with pytest.raises(InputError, match="neither depth nor colour"):
        RGBDFrame(0, 0.0, None, intr)  # a readable frame still needs pixels
    with pytest.raises(InputError, match="no pixels"):
        RGBDFrame(0, 0.0, np.zeros(intr.shape, np.uint16), intr, unreadable_reason="x")


def test_pipeline_turns_it_into_a_no_hand_result_without_running_the_stages():
    from stream.sources.synthetic import SyntheticSource

    stages = [PreprocessStage(), SmoothStage()]
    pipe = Pipeline(stages)
    good = next(iter(SyntheticSource(n_frames=1, seed=2)))
    assert pipe.process(good).stage_ms["preprocess"] > 0
    assert stages[0]._prev is not None  # the hand it found, tracked into the next frame
    bad = RGBDFrame.unreadable(1, 33.3, good.intrinsics, "s", "garbled")
    r = pipe.process(bad)
    assert (r.index, r.timestamp_ms, r.hand_found) == (1, 33.3, False)
    assert r.reason == "unreadable: garbled" and r.error == "" and r.image is None
    assert r.stage_ms == {"preprocess": 0.0, "smooth": 0.0}
    assert stages[0]._prev is None  # tracking does not carry over a gap
    rec = r.to_record()
    assert rec["reason"] == "unreadable: garbled" and rec["joints_xyz_mm"] is None


# ---- recordings ----


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    pytest.importorskip(
        "pyrealsense2", reason="pyrealsense2 is not installed (pip install 'handstream[realsense]')"
    )
    from stream.sources.rs_writer import write_recording
    from stream.sources.synthetic import SyntheticSource

    out = tmp_path_factory.mktemp("rec") / "good.db3"
    write_recording(SyntheticSource(n_frames=N, seed=5), out)
    return out


@pytest.fixture(scope="module")
def reference():
    from stream.sources.synthetic import SyntheticSource

    return list(SyntheticSource(n_frames=N, seed=5))


def damaged(src, dst, topic: str, positions, action: str = "garble"):
    """A copy of recording `src` with the messages of `topic` (a name suffix) at `positions` (in time
    order; "all" for every one) garbled in place (still valid SQLite) or deleted."""
    shutil.copy(src, dst)
    con = sqlite3.connect(dst)
    (tid,) = con.execute("SELECT id FROM topics WHERE name LIKE ?", (f"%{topic}",)).fetchone()
    ids = [i for (i,) in con.execute("SELECT id FROM messages WHERE topic_id = ? ORDER BY timestamp", (tid,))]
    for k in range(len(ids)) if positions == "all" else positions:
        if action == "delete":
            con.execute("DELETE FROM messages WHERE id = ?", (ids[k],))
        else:
            (n,) = con.execute("SELECT length(data) FROM messages WHERE id = ?", (ids[k],)).fetchone()
            con.execute("UPDATE messages SET data = ? WHERE id = ?", (b"\xab" * n, ids[k]))
    con.commit()
    con.close()
    return dst


DEPTH = "Depth_0/image/data/compressedDepth"


@pytest.mark.parametrize("bad", [[30], [0], [N - 1], [30, 31], [5, 20, 40]])
def test_recording_plays_past_garbled_depth_messages(tmp_path, recording, reference, bad):
    path = damaged(recording, tmp_path / "bad.db3", DEPTH, bad)
    with open_source(str(path)) as src:
        assert src.frame_count == N  # known up front, from the SQLite messages table
        frames = list(src)
    assert [f.index for f in frames] == list(range(N))
    assert [f.index for f in frames if not f.readable] == bad
    for f in frames:
        ref = reference[f.index]
        assert f.timestamp_ms == pytest.approx(ref.timestamp_ms, abs=1e-3)
        if f.readable:
            np.testing.assert_array_equal(f.depth_mm, ref.depth_mm)
            assert f.meta["frame_number"] == f.index + 1
            # the colour frame after a damaged one may be lost (see recording.py), never replaced by another's
            if f.color_bgr is not None or f.index - 1 not in bad:
                np.testing.assert_array_equal(f.color_bgr, ref.color_bgr)
        else:
            assert f"depth message {f.index + 1} of {N}" in f.unreadable_reason
            assert "damaged" in f.unreadable_reason
    assert (src.readable_frames, src.unreadable_frames) == (N - len(bad), len(bad))
    # a seek onto a damaged message makes librealsense start over: noticed at once, not replayed in full
    assert src.duplicates <= len(bad)


def test_run_on_a_damaged_recording_gives_one_record_per_frame(tmp_path, recording):
    path = damaged(recording, tmp_path / "bad.db3", DEPTH, [30])
    j, v = tmp_path / "r.jsonl", tmp_path / "r.mp4"
    out = handstream("run", "--source", str(path), "--jsonl", str(j), "--out", str(v), "--quiet")
    assert out.returncode == 0, out.stderr
    assert stderr_lines(out) == []
    assert f"{N - 1} of {N} frames readable" in out.stdout
    recs = jsonl(j)
    assert [r["index"] for r in recs] == list(range(N))
    assert [r["index"] for r in recs if r.get("reason", "").startswith("unreadable: ")] == [30]
    assert not recs[30]["hand_found"] and "depth message 31 of 60" in recs[30]["reason"]
    images = mp4_frames(v)
    assert len(images) == N  # mp4 frames = JSONL records
    assert images[30].mean() < 40 < images[29].mean()  # the unreadable one is a dark frame


def test_record_from_a_damaged_recording_copies_the_readable_frames_and_exits_1(tmp_path, recording):
    path = damaged(recording, tmp_path / "bad.db3", DEPTH, [10, 11])
    copy = tmp_path / "copy.db3"
    out = handstream("record", "--source", str(path), "--out", str(copy))
    assert out.returncode == 1
    (line,) = stderr_lines(out)
    assert f"{N - 2} of {N} frames readable" in line
    with open_source(str(copy)) as src:
        assert src.frame_count == N - 2
        assert sum(f.readable for f in src) == N - 2


def test_benchmark_clip_of_a_damaged_recording_keeps_the_readable_frames(tmp_path, recording):
    from stream.bench.sources import load_clip

    clip = load_clip(str(damaged(recording, tmp_path / "bad.db3", DEPTH, [3])), n=N)
    assert len(clip.frames) == N - 1 and all(f.depth_mm is not None for f in clip.frames)


@pytest.mark.parametrize(
    "topic, positions, action, match",
    [
        (DEPTH, "all", "garble", "none of its 60 frames could be read"),
        (DEPTH, "all", "delete", "holds no depth frames"),
        ("Depth_0/tf/ref_1", "all", "delete", "extrinsics"),
    ],
)
@pytest.mark.parametrize("verb", ["run", "record"])
def test_recording_damaged_beyond_use_is_a_one_line_error(
    tmp_path, recording, topic, positions, action, match, verb
):
    path = damaged(recording, tmp_path / "bad.db3", topic, positions, action)
    dest = (
        ["--jsonl", str(tmp_path / "r.jsonl"), "--quiet"]
        if verb == "run"
        else ["--out", str(tmp_path / "c.db3")]
    )
    if verb == "run" and match == "extrinsics":
        dest += ["--out", str(tmp_path / "r.mp4")]  # the overlay reads colour: the extrinsics are needed
    out = handstream(verb, "--source", str(path), *dest)
    assert out.returncode == 2
    (line,) = stderr_lines(out)
    assert match in line and line.startswith(f"handstream {verb}: error:")
    if verb == "run" and positions == "all" and action == "garble":
        recs = jsonl(tmp_path / "r.jsonl")  # even then every frame got its record before the error
        assert len(recs) == N and all(r.get("reason", "").startswith("unreadable: ") for r in recs)


def test_a_recording_without_extrinsics_still_plays_its_depth_where_no_stage_reads_colour(
    tmp_path, recording
):
    # the depth-to-colour extrinsics only align colour: with the colour stream closed (JSON lines alone),
    # every depth frame is read and gets its record, and nothing is said on stderr
    path = damaged(recording, tmp_path / "bad.db3", "Depth_0/tf/ref_1", "all", "delete")
    out = handstream("run", "--source", str(path), "--jsonl", str(tmp_path / "r.jsonl"), "--quiet")
    assert out.returncode == 0 and stderr_lines(out) == []
    recs = jsonl(tmp_path / "r.jsonl")
    assert len(recs) == N and not any(r.get("reason", "").startswith("unreadable") for r in recs)


# ---- image folders ----


def png_folder(root, n: int = 8, w: int = 160, h: int = 120):
    root.mkdir()
    depths = []
    for i in range(n):
        d = np.full((h, w), 600 + 10 * i, np.uint16)
        d[40:80, 60:100] = 450
        depths.append(d)
        cv2.imwrite(str(root / f"f{i:03d}.png"), d)
    intr = {"fx": 120.0, "fy": 120.0, "cx": (w - 1) / 2, "cy": (h - 1) / 2, "width": w, "height": h}
    (root / "intrinsics.json").write_text(json.dumps(intr))
    return depths


def test_folder_with_a_truncated_png_and_one_of_another_size_goes_on(tmp_path):
    folder = tmp_path / "frames"
    depths = png_folder(folder)
    data = (folder / "f002.png").read_bytes()
    (folder / "f002.png").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(folder / "f005.png"), np.full((60, 80), 500, np.uint16))
    with open_source(str(folder)) as src:
        frames = list(src)
    assert [f.index for f in frames] == list(range(8))
    assert [f.index for f in frames if not f.readable] == [2, 5]
    assert "f002.png" in frames[2].unreadable_reason and "corrupt" in frames[2].unreadable_reason
    assert "f005.png is 80x60, the camera 160x120" in frames[5].unreadable_reason
    assert str(folder) not in frames[2].unreadable_reason  # the file's name, not the whole path
    for i in (0, 1, 3, 4, 6, 7):
        np.testing.assert_array_equal(frames[i].depth_mm, depths[i])
    assert frames[3].timestamp_ms == pytest.approx(100.0)

    j, v = tmp_path / "r.jsonl", tmp_path / "r.mp4"
    out = handstream("run", "--source", str(folder), "--jsonl", str(j), "--out", str(v), "--quiet")
    assert out.returncode == 0 and stderr_lines(out) == []
    assert "6 of 8 frames readable" in out.stdout
    recs = jsonl(j)
    assert [r["index"] for r in recs] == list(range(8))
    assert [r["index"] for r in recs if r.get("reason", "").startswith("unreadable: ")] == [2, 5]
    assert len(mp4_frames(v)) == 8


def test_folder_file_without_read_permission_says_so(tmp_path, unprivileged):
    """Run as a user whom file modes bind (root with its file capabilities dropped, see conftest)."""
    folder = tmp_path / "frames"
    png_folder(folder, n=3)
    (folder / "f001.png").chmod(0)
    out_jsonl = tmp_path / "r.jsonl"
    out = subprocess.run(
        [sys.executable, "-m", "stream.cli", "run", "--source", str(folder), "--jsonl", str(out_jsonl)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=unprivileged,
    )
    assert out.returncode == 0, out.stderr
    recs = jsonl(out_jsonl)
    assert [r["index"] for r in recs] == [0, 1, 2]
    assert recs[1]["reason"] == "unreadable: f001.png: cannot read: Permission denied"
    assert "2 of 3 frames readable" in out.stdout


def test_folder_where_no_file_reads_is_a_one_line_error(tmp_path):
    folder = tmp_path / "frames"
    png_folder(folder, n=3)
    for p in folder.glob("*.png"):
        p.write_bytes(b"\x89PNG broken")
    out = handstream("run", "--source", str(folder), "--jsonl", str(tmp_path / "r.jsonl"), "--quiet")
    assert out.returncode == 2
    (line,) = stderr_lines(out)
    assert "none of its 3 frames could be read" in line and "f000.png" in line


# ---- videos ----


def write_video(path, n: int = 30, fourcc: str = "FFV1"):
    """Frame i is a flat grey of level 8 * i with its number drawn in red: its identity can be read back."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30, (160, 120))
    assert w.isOpened()
    for i in range(n):
        img = np.full((120, 160, 3), 8 * i, np.uint8)
        cv2.putText(img, str(i), (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 255), 2)
        w.write(img)
    w.release()


def level(img: np.ndarray) -> int:
    return int(round(img[:20, :20].mean()))


@pytest.mark.parametrize("cut", ["garble", "truncate"])
def test_video_frames_that_do_not_decode_become_unreadable(tmp_path, cut):
    good = tmp_path / "v.mkv"
    write_video(good)
    data = bytearray(good.read_bytes())
    mid = len(data) // 2
    if cut == "garble":
        data[mid : mid + 2000] = b"\xab" * 2000
    else:
        data = data[: int(len(data) * 0.6)]
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    with open_source(str(bad)) as src:
        assert src.frame_count == 30
        frames = list(src)
    assert [f.index for f in frames] == list(range(30))
    lost = [f.index for f in frames if not f.readable]
    assert lost and len(lost) < 30
    assert all("does not decode" in frames[i].unreadable_reason for i in lost)
    for f in frames:
        if f.readable:  # every decoded frame keeps its own index
            assert level(f.color_bgr) == pytest.approx(8 * f.index, abs=2)
    if cut == "truncate":
        assert lost == list(range(lost[0], 30))  # the tail of a cut file

    out = handstream("run", "--source", str(bad), "--jsonl", str(tmp_path / "r.jsonl"), "--quiet")
    # FFmpeg prints its own decoder complaints ("[ffv1 @ ...] ..."), beyond our control; nothing of ours
    assert out.returncode == 0 and not [x for x in stderr_lines(out) if not x.startswith("[")]
    assert f"{30 - len(lost)} of 30 frames readable" in out.stdout
    assert len(jsonl(tmp_path / "r.jsonl")) == 30


def test_intact_video_has_no_unreadable_frames(tmp_path):
    write_video(tmp_path / "v.mkv")
    with open_source(str(tmp_path / "v.mkv")) as src:
        frames = list(src)
    assert len(frames) == 30 and all(f.readable for f in frames)
    assert [level(f.color_bgr) for f in frames] == pytest.approx([8 * i for i in range(30)], abs=2)
