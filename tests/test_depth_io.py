"""Depth files: NYU (G<<8)|B PNGs, 16-bit PNGs with a depth unit, npz; round trips and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from stream.depth_io import guess_format, read_depth, write_depth
from stream.errors import InputError


@pytest.fixture
def depth() -> np.ndarray:
    d = np.random.default_rng(0).integers(0, 4000, size=(48, 64)).astype(np.uint16)
    d[0, 0], d[0, 1] = 0, 65535
    return d


@pytest.mark.parametrize("fmt,suffix", [("nyu", ".png"), ("png16", ".png"), ("npz", ".npz")])
def test_round_trip(tmp_path, depth, fmt, suffix):
    p = write_depth(tmp_path / f"d{suffix}", depth, fmt)
    assert guess_format(p) == fmt
    back = read_depth(p)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, depth)


def test_depth_unit(tmp_path, depth):
    mm = depth.astype(np.float32) * 0.125
    p = write_depth(tmp_path / "sr300.png", mm, "png16", depth_unit_mm=0.125)
    back = read_depth(p, "png16", depth_unit_mm=0.125)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, mm)


def test_nyu_byte_order(tmp_path):
    import cv2

    img = np.zeros((2, 2, 3), np.uint8)
    img[0, 0] = (0x34, 0x12, 0xFF)  # B = low byte, G = high byte, R ignored
    cv2.imwrite(str(tmp_path / "n.png"), img)
    assert read_depth(tmp_path / "n.png", "nyu")[0, 0] == 0x1234


def test_real_nyu_frame(nyu_dir):
    d = read_depth(nyu_dir / "depth_1_0000001.png")
    assert d.shape == (480, 640) and d.dtype == np.uint16
    gt = np.loadtxt(nyu_dir / "nyu_test_groundtruth_label.txt", max_rows=1).reshape(14, 3)
    u, v, z = gt[13]
    assert abs(float(d[int(round(v)), int(round(u))]) - z) < 40.0  # the palm label sits on the hand


def test_float_npz(tmp_path):
    d = np.full((4, 5), 512.5, np.float32)
    p = write_depth(tmp_path / "f.npz", d, "npz")
    out = read_depth(p)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, d)


def test_errors(tmp_path, depth):
    with pytest.raises(InputError, match="no such file"):
        read_depth(tmp_path / "missing.png")
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="not a readable image"):
        read_depth(bad)
    badz = tmp_path / "corrupt.npz"
    badz.write_bytes(b"garbage")
    with pytest.raises(InputError, match="npz"):
        read_depth(badz)
    many = tmp_path / "many.npz"
    np.savez(many, a=depth, b=depth)
    with pytest.raises(InputError, match="depth_mm"):
        read_depth(many)
    p16 = write_depth(tmp_path / "d.png", depth, "png16")
    with pytest.raises(InputError, match="8-bit 3-channel"):
        read_depth(p16, "nyu")
    with pytest.raises(InputError, match="unknown depth format"):
        read_depth(p16, "tiff")
    with pytest.raises(InputError, match="depth unit"):
        read_depth(p16, "png16", depth_unit_mm=0.0)
    txt = tmp_path / "x.txt"
    txt.write_text("1")
    with pytest.raises(InputError, match="--format"):
        read_depth(txt)
    for err in (InputError("x"),):
        assert "\n" not in str(err)
