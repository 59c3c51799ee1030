"""Video files, image folders and the generator as sources: real files written and read back."""

import json

import cv2
import numpy as np
import pytest

from stream.depth_io import write_depth
from stream.errors import InputError
from stream.sources import open_source
from stream.sources.folder import FolderSource
from stream.sources.synthetic import SyntheticSource
from stream.sources.video import VideoSource

W, H = 64, 48
INTR = {"fx": 60.0, "fy": 61.0, "cx": 31.5, "cy": 23.5, "width": W, "height": H}


def _frames(n):
    rng = np.random.default_rng(0)
    colors = [np.full((H, W, 3), (10 * i, 100, 200 - 5 * i), np.uint8) for i in range(n)]
    depths = [rng.integers(0, 2000, (H, W)).astype(np.uint16) for _ in range(n)]
    return colors, depths


def test_synthetic_is_deterministic_and_paced_when_live():
    a = [f.depth_mm.sum() for f in SyntheticSource(n_frames=3, seed=5)]
    b = [f.depth_mm.sum() for f in open_source("synthetic:5", frames=3)]
    assert a == b
    live = open_source("synthetic", frames=2, live=True)
    assert live.live
    assert all("t_capture_ns" in f.meta for f in live)


def test_video_written_and_read_back_with_depth_folder(tmp_path):
    colors, depths = _frames(5)
    vid = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (W, H))
    for c in colors:
        w.write(c)
    w.release()
    ddir = tmp_path / "depth"
    ddir.mkdir()
    for i, d in enumerate(depths):
        write_depth(ddir / f"{i:04d}.png", d)
    (tmp_path / "cam.json").write_text(json.dumps(INTR))
    src = open_source(str(vid), depth=str(ddir), intrinsics=str(tmp_path / "cam.json"))
    assert isinstance(src, VideoSource)
    with src:
        frames = list(src)
    assert len(frames) == 5 and src.fps == pytest.approx(15.0)
    assert src.intrinsics.fx == 60.0 and src.intrinsics.cy == 23.5
    for f, c, d in zip(frames, colors, depths):
        np.testing.assert_array_equal(f.depth_mm, d)  # PNG depth is lossless
        assert np.abs(f.color_bgr.astype(int) - c).mean() < 8  # mp4 is lossy, but close
    assert frames[2].timestamp_ms == pytest.approx(2 * 1000 / 15)


def test_video_with_lossless_depth_video(tmp_path):
    colors, depths = _frames(4)
    vid, dvid = tmp_path / "c.avi", tmp_path / "d.mkv"
    wc = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (W, H))
    wd = cv2.VideoWriter(str(dvid), cv2.VideoWriter_fourcc(*"FFV1"), 30.0, (W, H))
    if not wd.isOpened():
        pytest.skip("this OpenCV build has no FFV1 encoder")
    for c, d in zip(colors, depths):
        wc.write(c)
        nyu = np.zeros((H, W, 3), np.uint8)
        nyu[..., 0], nyu[..., 1] = d & 0xFF, d >> 8
        wd.write(nyu)
    wc.release()
    wd.release()
    with VideoSource(vid, depth=dvid) as src:
        frames = list(src)
        assert "assumed" in src.note
    assert len(frames) == 4
    for f, d in zip(frames, depths):
        np.testing.assert_array_equal(f.depth_mm, d)


def test_nyu_folder(nyu_dir, tmp_path):
    for name in ("depth_1_0000001.png", "rgb_1_0000001.png"):
        (tmp_path / name).write_bytes((nyu_dir / name).read_bytes())
    src = open_source(str(tmp_path))
    assert isinstance(src, FolderSource)
    with src:
        frames = list(src)
    assert len(frames) == 1 and src.intrinsics.name == "nyu"
    f = frames[0]
    assert f.depth_mm.shape == (480, 640) and f.color_bgr.shape == (480, 640, 3)
    assert 500 < np.median(f.depth_mm[f.depth_mm > 0]) < 3000


def test_plain_folder_with_depth_and_color_subfolders(tmp_path):
    colors, depths = _frames(3)
    (tmp_path / "depth").mkdir()
    (tmp_path / "color").mkdir()
    for i, (c, d) in enumerate(zip(colors, depths)):
        write_depth(tmp_path / "depth" / f"f{i}.png", d, depth_unit_mm=0.5)
        cv2.imwrite(str(tmp_path / "color" / f"f{i}.png"), c)
    (tmp_path / "intrinsics.json").write_text(json.dumps(INTR | {"depth_unit_mm": 0.5}))
    with open_source(str(tmp_path)) as src:
        frames = list(src)
    assert len(frames) == 3
    np.testing.assert_allclose(frames[1].depth_mm, depths[1].astype(np.float32) / 2 * 2, atol=0.5)
    np.testing.assert_array_equal(frames[2].color_bgr, colors[2])


def test_bad_inputs_are_one_line_errors(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    cases = [
        lambda: open_source(str(tmp_path / "nope.mp4")),
        lambda: open_source(str(bad)).open(),
        lambda: open_source(str(tmp_path / "x.txt")),
    ]
    (tmp_path / "x.txt").write_text("hi")
    (tmp_path / "cam.json").write_text("{not json")
    from stream.sources.intrinsics_file import load_intrinsics

    cases.append(lambda: load_intrinsics(tmp_path / "cam.json"))
    (tmp_path / "cam2.json").write_text('{"fx": 1, "fy": 1}')
    cases.append(lambda: load_intrinsics(tmp_path / "cam2.json"))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append(lambda: open_source(str(empty)).open())
    noint = tmp_path / "noint"
    noint.mkdir()
    write_depth(noint / "a.png", np.ones((4, 4), np.uint16))
    cases.append(lambda: open_source(str(noint)).open())
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "depth_1_0000001.png").write_bytes(b"\x89PNG broken")
    cases.append(lambda: list(open_source(str(corrupt))))
    for case in cases:
        with pytest.raises(InputError) as ei:
            case()
        assert "\n" not in str(ei.value)
