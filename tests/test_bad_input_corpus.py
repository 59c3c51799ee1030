"""A corpus of damaged inputs, generated here at test time from real files (nothing committed): truncated,
bit-flipped and zeroed RealSense recordings, videos and PNG folders, malformed intrinsics and prediction
files. Whatever the damage, the CLI either plays every frame into a record (exit 0, frames in = records
out) or says what is wrong in exactly one line (non-zero exit), and never prints a traceback.

Runs the CLI in this process with stderr captured at the file-descriptor level (capfd), so lines that
native libraries (librealsense, FFmpeg, libpng) print count too."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.cli import main as cli
from stream.frames import camera
from stream.sources.synthetic import SyntheticSource

pytestmark = pytest.mark.slow
FRAMES = 10


def _run(capfd, *argv: str) -> tuple[int, str, list[str]]:
    capfd.readouterr()
    rc = cli(list(argv))
    out, err = capfd.readouterr()
    assert "Traceback" not in err and "Traceback" not in out, err
    return rc, out, [x for x in err.splitlines() if x.strip()]


def _check_outcome(rc: int, out: str, err: list[str], jsonl: Path, verb: str = "run") -> int:
    """The promise, for one damaged input: exit 0 with one record per frame the summary counts, or a
    non-zero exit with exactly one line. Returns the number of records (0 on an error)."""
    if rc != 0:
        assert rc in (1, 2), (rc, err)
        assert len(err) == 1 and err[0].startswith(f"handstream {verb}: "), err
        return 0
    recs = [json.loads(x) for x in jsonl.read_text().splitlines()]
    m = re.search(r"handstream run: (\d+) frames(?: \((\d+) of (\d+) frames readable\))?", out)
    assert m, out
    assert len(recs) == int(m.group(1))
    if m.group(3):
        assert int(m.group(3)) == len(recs)
        assert sum(r.get("reason", "").startswith("unreadable") for r in recs) == len(recs) - int(m.group(2))
    assert [r["index"] for r in recs] == sorted(r["index"] for r in recs)
    return len(recs)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    from stream.sources.rs_writer import write_recording

    path = tmp_path_factory.mktemp("corpus") / "clean.db3"
    write_recording(SyntheticSource(n_frames=FRAMES, seed=4), path, compress=False)
    return path


def _damaged(data: bytes, how: str, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    if how.startswith("cut"):
        return bytes(b[: int(len(b) * float(how[3:]))])
    if how == "flip":
        for i in rng.integers(0, len(b), 48):
            b[i] ^= 1 << int(rng.integers(8))
        return bytes(b)
    if how == "zero_page":
        at = int(rng.integers(len(b) // 4, len(b) - 4096))
        b[at : at + 4096] = bytes(4096)
        return bytes(b)
    if how == "noise":
        return rng.integers(0, 256, len(b), dtype=np.uint8).tobytes()
    raise ValueError(how)


DAMAGE = ("cut0.02", "cut0.3", "cut0.7", "cut0.97", "flip", "flip", "zero_page", "zero_page", "noise")


@pytest.mark.parametrize("i,how", list(enumerate(DAMAGE)))
def test_damaged_recordings(tmp_path, recording, capfd, i, how):
    bad = tmp_path / f"bad{i}.db3"
    bad.write_bytes(_damaged(recording.read_bytes(), how, np.random.default_rng(i)))
    rc, out, err = _run(capfd, "run", "--source", str(bad), "--jsonl", str(tmp_path / "r.jsonl"), "--quiet")
    n = _check_outcome(rc, out, err, tmp_path / "r.jsonl")
    assert n in (0, FRAMES) or how.startswith(
        "cut"
    )  # damage inside frames keeps the count; a cut file may not


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "clean.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(FRAMES):
        w.write(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    w.release()
    return path


@pytest.mark.parametrize(
    "i,how", list(enumerate(("cut0.1", "cut0.5", "cut0.95", "flip", "zero_page", "noise")))
)
def test_damaged_videos(tmp_path, video, capfd, i, how):
    bad = tmp_path / f"bad{i}.avi"
    bad.write_bytes(_damaged(video.read_bytes(), how, np.random.default_rng(i)))
    rc, out, err = _run(
        capfd,
        "run",
        "--source",
        str(bad),
        "--camera",
        "d435_320x240",
        "--jsonl",
        str(tmp_path / "v.jsonl"),
        "--quiet",
    )
    _check_outcome(rc, out, err, tmp_path / "v.jsonl")


def _png16(depth: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", depth)
    assert ok
    return buf.tobytes()


FOLDER_DAMAGE = {
    "empty file": lambda good, rng: b"",
    "truncated": lambda good, rng: good[: len(good) // 3],
    "random bytes": lambda good, rng: rng.integers(0, 256, 2000, dtype=np.uint8).tobytes(),
    "8-bit grey": lambda good, rng: _png16(np.zeros((240, 320), np.uint8)),
    "colour": lambda good, rng: _png16(np.zeros((240, 320, 3), np.uint8)),
    "other size": lambda good, rng: _png16(np.full((120, 160), 500, np.uint16)),
    "1x1": lambda good, rng: _png16(np.full((1, 1), 500, np.uint16)),
    "all zero": lambda good, rng: _png16(np.zeros((240, 320), np.uint16)),
    "all max": lambda good, rng: _png16(np.full((240, 320), 65535, np.uint16)),
}


@pytest.mark.parametrize("damage", list(FOLDER_DAMAGE))
def test_folders_with_one_damaged_frame(tmp_path, capfd, damage):
    folder = tmp_path / "frames"
    folder.mkdir()
    cam = camera("d435_320x240")
    src = SyntheticSource(n_frames=4, seed=1)
    good = [_png16(f.depth_mm) for f in src]
    for k, data in enumerate(good):
        (folder / f"{k:04d}.png").write_bytes(data)
    (folder / "0002.png").write_bytes(FOLDER_DAMAGE[damage](good[2], np.random.default_rng(0)))
    (folder / "intrinsics.json").write_text(json.dumps(cam.to_dict()))
    rc, out, err = _run(
        capfd, "run", "--source", str(folder), "--jsonl", str(tmp_path / "f.jsonl"), "--quiet"
    )
    assert rc == 0, err  # one bad file never ends the stream
    assert _check_outcome(rc, out, err, tmp_path / "f.jsonl") == 4


INTRINSICS = {
    "not json": "{fx: ",
    "a list": "[1, 2, 3]",
    "missing cx": json.dumps({"fx": 380, "fy": 380, "cy": 120, "width": 320, "height": 240}),
    "negative fx": json.dumps({"fx": -1, "fy": 380, "cx": 160, "cy": 120, "width": 320, "height": 240}),
    "nan": '{"fx": NaN, "fy": 380, "cx": 160, "cy": 120, "width": 320, "height": 240}',
    "text": json.dumps({"fx": "abc", "fy": 380, "cx": 160, "cy": 120, "width": 320, "height": 240}),
    "huge": json.dumps({"fx": 380, "fy": 380, "cx": 160, "cy": 120, "width": 10**9, "height": 240}),
    "wrong size": json.dumps({"fx": 380, "fy": 380, "cx": 320, "cy": 240, "width": 640, "height": 480}),
    "binary": "\x00\xff\x00garbage",
}


@pytest.mark.parametrize("bad", list(INTRINSICS))
def test_bad_intrinsics(tmp_path, capfd, bad):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, f in enumerate(SyntheticSource(n_frames=2, seed=1)):
        (folder / f"{k}.png").write_bytes(_png16(f.depth_mm))
    (tmp_path / "intr.json").write_text(INTRINSICS[bad], encoding="latin-1")
    argv = [
        "run",
        "--source",
        str(folder),
        "--intrinsics",
        str(tmp_path / "intr.json"),
        "--jsonl",
        str(tmp_path / "i.jsonl"),
    ]
    rc, out, err = _run(capfd, *argv, "--quiet")
    if bad == "wrong size":  # readable intrinsics that do not fit the images: every frame is unreadable
        assert rc != 0 or _check_outcome(rc, out, err, tmp_path / "i.jsonl") == 2
    else:
        assert rc == 2 and len(err) == 1, (bad, err)


PREDICTIONS = {
    "empty": "",
    "one column": "1.0\n2.0\n",
    "nan": " ".join(["nan"] * 42) + "\n",
    "letters": " ".join(["x"] * 42) + "\n",
    "ragged": " ".join(["1"] * 42) + "\n" + " ".join(["1"] * 10) + "\n",
    "binary": "\x00\x01\x02\xff" * 20,
}


@pytest.mark.parametrize("bad", list(PREDICTIONS))
def test_bad_prediction_files(tmp_path, capfd, bad):
    p = tmp_path / "pred.txt"
    p.write_text(PREDICTIONS[bad], encoding="latin-1")
    gt = tmp_path / "gt.txt"
    gt.write_text(" ".join(["1"] * 42) + "\n")
    rc, out, err = _run(capfd, "eval", "nyu", str(p), "--gt", str(gt), "--json")
    assert rc == 2 and len(err) == 1 and err[0].startswith("handstream eval: error:"), (bad, err)


def test_a_source_that_fails_to_open_leaves_existing_outputs_alone(tmp_path, recording, capfd):
    bad = tmp_path / "bad.db3"
    bad.write_bytes(recording.read_bytes()[:5000])
    old_jsonl, old_mp4 = tmp_path / "old.jsonl", tmp_path / "old.mp4"
    old_jsonl.write_text('{"index": 0}\n')
    old_mp4.write_bytes(b"an earlier video")
    rc, out, err = _run(capfd, "run", "--source", str(bad), "--jsonl", str(old_jsonl), "--out", str(old_mp4))
    assert rc == 2 and len(err) == 1
    assert old_jsonl.read_text() == '{"index": 0}\n' and old_mp4.read_bytes() == b"an earlier video"
