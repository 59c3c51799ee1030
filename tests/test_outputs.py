"""Outputs never destroy inputs, write errors are one line, SIGTERM/SIGHUP stop a run cleanly.

Most tests run the real CLI in a subprocess (`python -m stream.cli`): stderr, the exit status and signals
are only what a user sees from a separate process. Inputs are real files made here (an mp4 written with
OpenCV, 16-bit PNGs, a RealSense recording when pyrealsense2 is installed).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.errors import InputError
from stream.outputs import check_outputs

REPO = Path(__file__).resolve().parents[1]


def cli(args: list[str], cwd: Path, preexec_fn=None, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


def start_cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """The CLI in its own process, left running (to be signalled), its output piped. It starts with SIGINT at
    its default, as under a terminal: a suite started in the background by a non-interactive shell ignores
    SIGINT and would hand that on, and a process that inherits an ignored SIGINT rightly keeps ignoring it
    (a background job is not stopped by Ctrl-C)."""
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli", *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def one_error_line(r: subprocess.CompletedProcess) -> str:
    """The run failed with status 2 and exactly one stderr line, a handstream error, no traceback."""
    lines = r.stderr.splitlines()
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("handstream ") and ": error: " in lines[0], lines[0]
    return lines[0]


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def write_mp4(path: Path, frames: int = 5) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
    assert w.isOpened()
    for i in range(frames):
        w.write(np.full((48, 64, 3), 20 * i, np.uint8))
    w.release()
    return path


def write_png16(path: Path) -> Path:
    from stream.depth_io import write_depth
    from stream.synth.scene import HandSynthesizer, SceneConfig

    write_depth(path, HandSynthesizer(SceneConfig(), 3).sample().frame.depth_mm)
    return path


def mp4_frames(path: Path) -> int:
    """Frames that actually decode (not the container's claim)."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def leftovers(folder: Path) -> list[str]:
    """Temporary files our writers would leave behind (they start with a dot)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---- the shared check, in-process ---------------------------------------------------------------------


def test_check_outputs_same_file_by_path_link_and_inode(tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(b"x")
    (tmp_path / "sym.mp4").symlink_to(src)
    os.link(src, tmp_path / "hard.mp4")
    for out in (src, tmp_path / "sym.mp4", tmp_path / "hard.mp4", tmp_path / "sub" / ".." / "in.mp4"):
        with pytest.raises(InputError, match="is the input"):
            check_outputs([("--out", out)], [src])
    check_outputs([("--out", tmp_path / "other.mp4")], [src, "synthetic"])  # a different file is fine


def test_check_outputs_inside_an_input_folder_and_between_outputs(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "0.png").write_bytes(b"x")
    with pytest.raises(InputError, match="inside the input folder"):
        check_outputs([("--jsonl", frames / "new.jsonl")], [frames])
    os.link(frames / "0.png", tmp_path / "elsewhere.jsonl")  # a hard link to a frame, outside the folder
    with pytest.raises(InputError, match="inside the input folder"):
        check_outputs([("--jsonl", tmp_path / "elsewhere.jsonl")], [frames])
    with pytest.raises(InputError, match="same file"):
        check_outputs([("--jsonl", tmp_path / "x"), ("--out", tmp_path / "x")], [])
    check_outputs([("--jsonl", tmp_path / "x.jsonl"), ("--out", tmp_path / "x.mp4")], [frames])


# ---- every collision refused by the CLI, the input untouched ------------------------------------------


def _collisions(tmp: Path) -> list[tuple[list[str], Path]]:
    """(argv, the input that must survive). A .db3 input need not be a real recording: the check refuses
    before anything is read."""
    a = tmp / "a.db3"
    a.write_bytes(os.urandom(4096))
    e = write_mp4(tmp / "e.mp4")
    (tmp / "link.db3").symlink_to(a)
    os.link(e, tmp / "hard.jsonl")
    frames = tmp / "frames"
    frames.mkdir()
    f0 = write_png16(frames / "0000.png")
    (tmp / "p").mkdir()
    (tmp / "q").mkdir()
    p = write_png16(tmp / "p" / "f.png")
    write_png16(tmp / "q" / "f.png")
    return [
        (["record", "--source", str(a), "--out", str(a)], a),
        (["record", "--source", str(a), "--out", str(tmp / "link.db3")], a),
        (["run", "--source", str(a), "--jsonl", str(a)], a),
        (["run", "--source", str(e), "--out", str(e)], e),
        (["run", "--source", str(e), "--jsonl", str(tmp / "hard.jsonl")], e),
        (["run", "--source", "synthetic", "--jsonl", str(tmp / "x.mp4"), "--out", str(tmp / "x.mp4")], e),
        (["run", "--source", str(frames), "--jsonl", str(frames / "0000.png")], f0),
        (["run", "--source", str(frames), "--jsonl", str(frames / "out.jsonl")], f0),
        (["locate", str(p), str(tmp / "q" / "f.png"), "--camera", "d435_320x240", "--crops", str(tmp)], p),
        (["bench", "--json", str(tmp / "b.json"), "--md", str(tmp / "b.json")], e),
    ]


def test_outputs_never_overwrite_inputs(tmp_path):
    cases = _collisions(tmp_path)
    before = {str(path): digest(path) for _, path in cases}
    for argv, keep in cases:
        line = one_error_line(cli(argv, tmp_path))
        assert "input" in line or "same file" in line, line
        assert digest(keep) == before[str(keep)], argv
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "frames" / "out.jsonl").exists()
    assert not (tmp_path / "b.json").exists()


def test_failed_record_leaves_the_existing_output_untouched(tmp_path):
    pytest.importorskip("pyrealsense2", reason="recording needs pyrealsense2")
    out = tmp_path / "keep.db3"
    out.write_bytes(os.urandom(2048))
    before = digest(out)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 50)
    line = one_error_line(cli(["record", "--source", str(bad), "--out", str(out)], tmp_path))
    assert "bad.mp4" in line
    assert digest(out) == before
    assert leftovers(tmp_path) == []


# ---- full disks ---------------------------------------------------------------------------------------


def test_jsonl_to_a_full_device_is_one_line(tmp_path):
    (tmp_path / "full.jsonl").symlink_to("/dev/full")
    args = ["run", "--source", "synthetic", "--frames", "40", "--quiet", "--jsonl", "full.jsonl"]
    line = one_error_line(cli(args, tmp_path))
    assert line == "handstream run: error: writing full.jsonl failed: No space left on device"


def test_mp4_to_a_device_is_refused_and_the_device_kept(tmp_path):
    (tmp_path / "full.mp4").symlink_to("/dev/full")
    args = ["run", "--source", "synthetic", "--frames", "5", "--quiet", "--out", "full.mp4"]
    line = one_error_line(cli(args, tmp_path))
    assert "full.mp4" in line and "not a regular file" in line
    assert Path("/dev/full").is_char_device() and leftovers(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 200 kB tmpfs: real ENOSPC from the kernel. Needs root and a kernel that lets us mount."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'mount failed'})")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_mp4_record_crops_are_one_line(tiny_disk, tmp_path):
    keep = tiny_disk / "keep.mp4"
    keep.write_bytes(os.urandom(1000))
    before = digest(keep)
    mp4 = ["run", "--source", "synthetic", "--frames", "150", "--quiet", "--out", str(keep)]
    assert one_error_line(cli(mp4, tmp_path)).endswith(f"writing {keep} failed: No space left on device")
    assert digest(keep) == before  # the old video survives a failed run
    assert leftovers(tiny_disk) == []

    pngs = [str(write_png16(tmp_path / f"f{i}.png")) for i in range(6)]
    crops = tiny_disk / "crops"
    r = cli(["locate", *pngs, "--camera", "d435_320x240", "--crops", str(crops)], tmp_path)
    assert "No space left on device" in one_error_line(r)
    for png in crops.glob("*.png"):  # whatever was written before the disk filled is whole
        assert cv2.imread(str(png), cv2.IMREAD_UNCHANGED) is not None, png

    if __import__("importlib").util.find_spec("pyrealsense2") is not None:
        rec = tiny_disk / "r.db3"
        r = cli(["record", "--source", "synthetic", "--frames", "30", "--out", str(rec)], tmp_path)
        assert one_error_line(r).endswith(f"writing {rec} failed: No space left on device")
        assert not rec.exists() and leftovers(tiny_disk) == []


# ---- signals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_signal_stops_a_replay_cleanly(tmp_path, sig, status):
    """The mp4 decodes to exactly as many frames as the JSONL has records (both closed properly)."""
    mp4, jsonl = tmp_path / "X.mp4", tmp_path / "X.jsonl"
    args = ["run", "--source", "synthetic", "--frames", "3000", "--quiet", "--out", str(mp4)]
    proc = start_cli([*args, "--jsonl", str(jsonl)], tmp_path)
    try:
        deadline = time.monotonic() + 120  # model loading on a busy machine: wait for frames, not a clock
        while time.monotonic() < deadline and proc.poll() is None:
            if jsonl.exists() and jsonl.stat().st_size > 0:
                break
            time.sleep(0.1)
        time.sleep(1.5)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    records = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert 0 < len(records) < 3000
    assert mp4_frames(mp4) == len(records)
    assert [r["index"] for r in records] == list(range(len(records)))


# ---- permissions --------------------------------------------------------------------------------------


def test_permission_errors_are_one_line_and_not_called_corrupt(tmp_path, unprivileged):
    png = write_png16(tmp_path / "f.png")
    png.chmod(0)
    video = write_mp4(tmp_path / "v.mp4")
    video.chmod(0)
    intr = tmp_path / "intr.json"
    intr.write_text(json.dumps({"fx": 200, "fy": 200, "cx": 32, "cy": 24, "width": 64, "height": 48}))
    intr.chmod(0)
    ok_video = write_mp4(tmp_path / "ok.mp4")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    cases = [
        (["locate", str(png), "--camera", "d435_320x240"], f"{png}: cannot read: Permission denied"),
        (["run", "--source", str(video), "--quiet"], f"{video}: cannot read: Permission denied"),
        (
            ["run", "--source", str(ok_video), "--intrinsics", str(intr), "--quiet"],
            f"cannot read {intr}: Permission denied",
        ),
        (["run", "--source", "synthetic", "--jsonl", str(ro / "o.jsonl")], "Permission denied"),
        (["locate", str(write_png16(tmp_path / "g.png")), "--camera", "nyu", "--crops", str(ro)], "denied"),
    ]
    for argv, expected in cases:
        r = cli(argv, tmp_path, preexec_fn=unprivileged)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        last = r.stderr.splitlines()[-1]
        assert expected in last and "corrupt" not in last, (argv, r.stderr)


def test_sink_group_holds_a_signal_until_every_sink_has_the_result():
    """A signal that arrives while one sink writes (here sent from another thread, so a per-thread mask
    would not hold it) is raised only after every sink has the result; the old handler is put back."""
    from stream.sinks import SinkGroup

    class Counting:
        def __init__(self, signal_during_write: bool) -> None:
            self.n, self.signal_during_write, self.closed = 0, signal_during_write, False

        def write(self, result, frame=None) -> bool:
            if self.signal_during_write:
                t = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM))
                t.start()
                t.join()
                time.sleep(0.05)  # an unheld handler runs here, before the count and the next sink
            self.n += 1
            return True

        def close(self) -> None:
            self.closed = True

    def stop(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, stop)
    try:
        first, second = Counting(True), Counting(False)
        group = SinkGroup([first, second])
        with pytest.raises(KeyboardInterrupt):
            group.write(None)
        assert first.n == second.n == 1
        group.close()
        assert first.closed and second.closed
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, old)


def test_video_is_renamed_into_place_with_the_usual_mode(tmp_path):
    """The mp4 is written beside the output and renamed: a new file gets the umask's mode (not mkstemp's
    private 0600), a replaced file keeps its own; nothing temporary is left."""
    from types import SimpleNamespace

    from stream.sinks import VideoSink

    def write(path: Path) -> None:
        sink = VideoSink(path, fps=10.0, threaded=False)
        for i in range(3):
            sink.write(SimpleNamespace(image=np.full((48, 64, 3), 60 * i, np.uint8)))
        sink.close()

    umask = os.umask(0o022)
    os.umask(umask)
    new, old = tmp_path / "new.mp4", tmp_path / "old.mp4"
    write(new)
    assert mp4_frames(new) == 3 and (new.stat().st_mode & 0o777) == (0o666 & ~umask)
    old.write_bytes(b"old")
    old.chmod(0o640)
    write(old)
    assert mp4_frames(old) == 3 and (old.stat().st_mode & 0o777) == 0o640
    assert leftovers(tmp_path) == []


def test_unwritable_output_paths_are_one_line_before_any_work(tmp_path):
    """A parent that is a file, a folder that is a file, /proc: refused up front (bench before it runs)."""
    f = tmp_path / "FILE"
    f.write_text("x")
    png = str(write_png16(tmp_path / "f.png"))
    cases = [
        (["record", "--source", "synthetic", "--frames", "3", "--out", str(f / "x.db3")], "not a folder"),
        (["synth", "--out", str(f / "ds"), "--frames", "2"], "FILE/ds"),
        (["synth", "--out", str(f), "--frames", "2"], "not a folder"),
        (["locate", png, "--camera", "d435_320x240", "--crops", str(f)], "not a folder"),
        (["locate", png, "--camera", "d435_320x240", "--crops", "/proc/handstream-x"], "/proc/handstream-x"),
        (["bench", "--frames", "2", "--json", "/proc/handstream-x.json"], "/proc/handstream-x.json"),
        (["run", "--source", "synthetic", "--jsonl", str(f / "r.jsonl")], "not a folder"),
        (["demo", "--out-dir", str(f), "--frames", "2"], "not a folder"),
    ]
    for argv, expected in cases:
        r = cli(argv, tmp_path)
        assert expected in one_error_line(r), (argv, r.stderr)
        assert r.stdout == "", argv  # nothing done first (the bench prints its report only after a run)
    assert f.read_text() == "x"


def test_corrupt_png_is_one_line_without_libpng_text(tmp_path):
    """libpng prints its complaint from C to fd 2; the user sees only our line."""
    ok, buf = cv2.imencode(".png", (np.arange(64 * 48).reshape(48, 64) * 7).astype(np.uint16))
    data = bytearray(buf.tobytes())
    data[60:70] = bytes(10)  # inside the compressed image data: libpng fails while decoding
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    r = cli(["locate", str(bad), "--format", "png16", "--camera", "d435_320x240"], tmp_path)
    line = one_error_line(r)
    assert line.endswith(f"{bad}: not a readable image (corrupt or not a PNG)")
    assert "libpng" not in r.stderr and json.loads(r.stdout)["error"]


def test_sigterm_during_record_keeps_a_playable_recording(tmp_path):
    """SIGTERM stops a recording like Ctrl-C: the frames so far are finished, renamed into place and play."""
    pytest.importorskip("pyrealsense2", reason="recording needs pyrealsense2")
    rec = tmp_path / "R.db3"
    args = ["record", "--source", "synthetic", "--frames", "3000", "--out", str(rec)]
    proc = start_cli(args, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.stat().st_size > 1 << 20 for p in tmp_path.glob(".R.*.db3")):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "SIGTERM" in err
    assert rec.is_file() and leftovers(tmp_path) == []
    jsonl = tmp_path / "R.jsonl"
    r = cli(["run", "--source", str(rec), "--jsonl", str(jsonl), "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr
    n = len(jsonl.read_text().splitlines())
    assert 0 < n < 3000
