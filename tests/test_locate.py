"""`handstream locate`: JSON lines per frame, crops and overlays written, one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from stream.cli import main as cli_main
from stream.depth_io import write_depth
from stream.frames import KNOWN_CAMERAS

sys.path.insert(0, str(Path(__file__).parent))
from test_preprocess_segment import Scene  # noqa: E402


def _scene_file(tmp_path: Path, name: str = "hand.png", unit: float = 1.0) -> Path:
    scene = Scene(KNOWN_CAMERAS["d435_640x480"]).body((0.0, 150.0, 1100.0)).hand((30.0, 0.0, 550.0))
    return write_depth(tmp_path / name, scene.depth, "png16", depth_unit_mm=unit)


def test_locate_prints_json_and_writes_crops(tmp_path, capsys):
    f = _scene_file(tmp_path)
    empty = write_depth(tmp_path / "empty.png", np.zeros((480, 640), np.uint16), "png16")
    rc = cli_main(
        ["locate", str(f), str(empty), "--camera", "d435_640x480", "--crops", str(tmp_path / "out")]
    )
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == 2
    rec = lines[0]
    assert {"file", "hand", "confidence", "com_uvd", "com_xyz_mm", "bbox"} <= rec.keys()
    assert rec["hand"] is True and 0 < rec["confidence"] <= 1
    assert abs(rec["com_xyz_mm"][2] - 550.0) < 40.0
    assert lines[1]["hand"] is False and lines[1]["reason"] == "all depth missing"
    crop = cv2.imread(str(tmp_path / "out" / "hand_crop.png"), cv2.IMREAD_UNCHANGED)
    assert crop.shape == (128, 128) and crop.dtype == np.uint8 and crop.min() < 128 and crop.max() == 255
    for stem in ("hand", "empty"):
        ov = cv2.imread(str(tmp_path / "out" / f"{stem}_overlay.png"))
        assert ov.shape == (480, 640, 3)


def test_locate_intrinsics_and_depth_unit(tmp_path, capsys):
    intr = KNOWN_CAMERAS["d435_640x480"]
    f = _scene_file(tmp_path, "sr.png", unit=0.125)
    args = ["locate", str(f), "--depth-unit-mm", "0.125", "--cube-mm", "300", "--size", "96"]
    rc = cli_main(args + ["--intrinsics", f"{intr.fx},{intr.fy},{intr.cx},{intr.cy}"])
    assert rc == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["hand"] and abs(rec["com_xyz_mm"][2] - 550.0) < 40.0


def test_locate_errors_are_one_line(tmp_path, capsys):
    f = _scene_file(tmp_path)
    assert cli_main(["locate", str(f)]) == 2  # a 16-bit PNG needs intrinsics
    err = capsys.readouterr()
    assert "intrinsics" in err.out and "Traceback" not in err.err
    assert cli_main(["locate", str(tmp_path / "nope.png"), "--camera", "nyu"]) == 2
    out = capsys.readouterr()
    assert json.loads(out.out)["error"].endswith("no such file")
    assert len(out.err.strip().splitlines()) == 1
    assert cli_main(["locate", str(f), "--intrinsics", "1,2,3", "--format", "png16"]) == 2
    assert cli_main(["locate", str(f), "--camera", "nyu", "--cube-mm", "-5"]) == 2


def test_locate_real_nyu_frame(nyu_dir, capsys):
    assert cli_main(["locate", str(nyu_dir / "depth_1_0000001.png")]) == 0
    rec = json.loads(capsys.readouterr().out)
    gt = np.loadtxt(nyu_dir / "nyu_test_groundtruth_label.txt", max_rows=1).reshape(14, 3)
    assert rec["hand"] and np.hypot(*(np.array(rec["com_uvd"][:2]) - gt[13, :2])) < 30.0
