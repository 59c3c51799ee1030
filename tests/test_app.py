"""The verbs end to end: `handstream demo` (the README's first command) and `handstream run`."""

import json

import cv2
import pytest

from stream.cli import main as cli


def test_demo_writes_video_and_jsonl(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli(["demo", "--out-dir", str(out), "--frames", "12"]) == 0
    text = capsys.readouterr().out
    assert "12 frames" in text and "FPS" in text and "median latency" in text
    assert str(out / "demo.mp4") in text and str(out / "demo.jsonl") in text
    recs = [json.loads(x) for x in (out / "demo.jsonl").read_text().splitlines()]
    assert len(recs) == 12 and sum(r["hand_found"] for r in recs) >= 6
    cap = cv2.VideoCapture(str(out / "demo.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    ok, img = cap.read()
    assert ok and img.shape == (240, 640, 3)  # colour view + depth view side by side


def test_run_synthetic_to_jsonl_with_max_frames(tmp_path, capsys):
    j = tmp_path / "r.jsonl"
    rc = cli(
        [
            "run",
            "--source",
            "synthetic:1",
            "--frames",
            "20",
            "--max-frames",
            "6",
            "--jsonl",
            str(j),
            "--quiet",
        ]
    )
    assert rc == 0
    assert len(j.read_text().splitlines()) == 6
    assert "6 frames" in capsys.readouterr().out


def test_run_recording_frames_in_equal_records_out(tmp_path):
    pytest.importorskip("pyrealsense2", reason="pyrealsense2 is not installed")
    rec, j, v = tmp_path / "r.db3", tmp_path / "r.jsonl", tmp_path / "r.mp4"
    assert cli(["record", "--source", "synthetic:2", "--frames", "10", "--out", str(rec)]) == 0
    assert cli(["run", "--source", str(rec), "--jsonl", str(j), "--out", str(v), "--quiet"]) == 0
    recs = [json.loads(x) for x in j.read_text().splitlines()]
    assert [r["index"] for r in recs] == list(range(10))
    assert int(cv2.VideoCapture(str(v)).get(cv2.CAP_PROP_FRAME_COUNT)) == 10


@pytest.mark.parametrize(
    "argv, match",
    [
        (["run", "--source", "no/such/file.mp4"], "not found"),
        (["run", "--source", "synthetic", "--max-frames", "0"], "max-frames"),
        (
            ["run", "--source", "synthetic", "--backend", "onnxruntime", "--models", "nosuchmodel"],
            "nosuchmodel",
        ),
        (["demo", "--frames", "0"], "frames"),
    ],
)
def test_user_errors_are_one_line(argv, match, capsys):
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err and "Traceback" not in err


def test_demo_needs_only_the_runtime_dependencies(tmp_path):
    """A fresh `pip install -e .` has numpy, OpenCV, ONNX Runtime and tqdm only: the demo must not touch
    torch, onnx, pyrealsense2, yaml, ... (they are made unimportable in a child interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "BLOCK = {'torch', 'torchvision', 'onnx', 'onnxslim', 'pyrealsense2', 'yaml', 'optuna', 'tensorrt',"
        " 'pycuda', 'matplotlib', 'tensorboard', 'train'}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCK:\n"
        "            raise ImportError(f'{name} blocked: not a runtime dependency')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from stream.cli import main\n"
        f"sys.exit(main(['demo', '--out-dir', {str(tmp_path)!r}, '--frames', '4']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "demo.mp4").stat().st_size > 0
    assert len((tmp_path / "demo.jsonl").read_text().splitlines()) == 4
