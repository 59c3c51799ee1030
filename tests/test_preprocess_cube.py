"""Cube normalization, joint (de)normalization, the image <-> crop transform, the RGB crop, mask from depth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.errors import InputError
from stream.frames import KNOWN_CAMERAS
from stream.geometry import uvd_to_xyz, xyz_to_uvd
from stream.preprocess import (
    crop_cube,
    crop_rgb,
    denormalize_joints,
    mask_from_depth,
    normalize_joints,
)

INTR = KNOWN_CAMERAS["d435_640x480"]


def _plane(z: float) -> np.ndarray:
    return np.full(INTR.shape, z, np.float32)


@settings(max_examples=60, deadline=None)
@given(
    com=st.tuples(st.floats(-300, 300), st.floats(-300, 300), st.floats(200, 1500)),
    cube=st.floats(100, 400),
    seed=st.integers(0, 2**31),
)
def test_normalize_denormalize_is_the_identity(com, cube, seed):
    crop = crop_cube(_plane(com[2]), INTR, np.array(com), cube_mm=cube, size=32)
    joints = np.array(com) + np.random.default_rng(seed).uniform(-cube, cube, size=(2, 21, 3))
    norm = normalize_joints(joints, crop)
    assert norm.dtype == np.float32 and norm.shape == joints.shape
    back = denormalize_joints(norm, crop)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, joints, atol=1e-4 * cube)
    # eqs. 4.7-4.9 with the 3-D centre: the centre maps to 0, the cube's faces to +-1
    np.testing.assert_allclose(normalize_joints(np.array(com), crop), 0.0, atol=1e-6)
    face = np.array(com) + np.array([cube / 2, -cube / 2, cube / 2])
    np.testing.assert_allclose(normalize_joints(face, crop), [1.0, -1.0, 1.0], atol=1e-5)


def test_depth_normalization_values():
    com = np.array([0.0, 0.0, 500.0])
    d = _plane(500.0)
    d[:, :100] = 700.0  # behind the cube (500 + 125 < 700)
    d[:, 100:200] = 300.0  # in front of the cube
    d[:, 200:220] = 0.0  # missing
    d[:, 220:240] = np.nan
    d[:, 240:260] = -3.0
    d[:, 600:] = 550.0  # inside, 50 mm behind the centre
    full = crop_cube(d, INTR, com, cube_mm=250.0, size=64)
    assert full.depth.shape == (64, 64) and full.depth.dtype == np.float32
    assert full.depth.min() >= -1.0 and full.depth.max() <= 1.0
    # map back to check each region: crop column -> image column
    u = full.crop_to_uvd(np.stack([np.arange(64), np.full(64, 32), np.zeros(64)], 1))[:, 0]
    row = full.depth[32]
    for j in range(64):
        col = int(round(u[j]))
        expected = {True: None}
        if col < 100:
            expected = 1.0
        elif col < 200:
            expected = -1.0
        elif col < 260:
            expected = 1.0
        elif col >= 600:
            expected = 50.0 / 125.0
        else:
            expected = 0.0
        assert row[j] == pytest.approx(expected, abs=1e-6), (j, col)


def test_mask_sets_background():
    d = _plane(500.0)
    mask = np.zeros(INTR.shape, bool)
    mask[200:280, 280:360] = True
    c = crop_cube(d, INTR, np.array([0.0, 0.0, 500.0]), mask=mask, size=64)
    assert set(np.unique(c.depth)) == {0.0, 1.0}
    inside = c.depth == 0.0
    # the masked square covers the centre of the crop and not its corners
    assert inside[32, 32] and not inside[0, 0] and not inside[63, 63]
    with pytest.raises(InputError):
        crop_cube(d, INTR, np.array([0.0, 0.0, 500.0]), mask=mask[:10])


def test_window_and_transform_match_the_projection():
    com = np.array([40.0, -30.0, 600.0])
    c = crop_cube(_plane(600.0), INTR, com, cube_mm=250.0, size=128)
    u0, v0, u1, v1 = c.window_uv
    assert u1 - u0 == pytest.approx(INTR.fx * 250.0 / 600.0)
    # the centre of mass lands in the middle of the crop, the window edges on the crop edges
    cu, cv, cz = c.uvd_to_crop(xyz_to_uvd(com, INTR))
    assert (cu, cv, cz) == pytest.approx((63.5, 63.5, 0.0))
    assert c.uvd_to_crop(np.array([u0, v0, 600.0]))[:2] == pytest.approx((-0.5, -0.5))
    assert c.uvd_to_crop(np.array([u1, v1, 600.0]))[:2] == pytest.approx((127.5, 127.5))
    pts = np.random.default_rng(1).uniform([0, 0, 300], [640, 480, 900], (50, 3))
    np.testing.assert_allclose(c.crop_to_uvd(c.uvd_to_crop(pts)), pts, atol=1e-9)
    xyz = uvd_to_xyz(pts, INTR)
    np.testing.assert_allclose(c.crop_to_xyz(c.xyz_to_crop(xyz)), xyz, atol=1e-6)
    np.testing.assert_allclose(c.crop_to_image @ np.array([63.5, 63.5, 1.0]), c.com_uvd[:2], atol=1e-9)


def test_a_marked_pixel_lands_where_the_transform_says():
    d = _plane(0.0)
    com = np.array([10.0, 20.0, 500.0])
    uvd = np.array([350.0, 270.0, 520.0])
    d[270, 350] = 520.0
    c = crop_cube(d, INTR, com, cube_mm=250.0, size=192)  # upsampling: the pixel covers a block
    cu, cv, cz = c.uvd_to_crop(uvd)
    hits = np.argwhere(c.depth < 1.0)
    assert len(hits) > 0
    assert abs(hits[:, 0].mean() - cv) < 1.0 and abs(hits[:, 1].mean() - cu) < 1.0
    assert c.depth[hits[0][0], hits[0][1]] == pytest.approx(cz, abs=1e-6)


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_crops_at_the_border_are_padded_not_shifted(side):
    u, v = {"left": (5.0, 240.0), "right": (634.0, 240.0), "top": (320.0, 3.0), "bottom": (320.0, 476.0)}[
        side
    ]
    com = uvd_to_xyz(np.array([u, v, 500.0]), INTR)
    c = crop_cube(_plane(500.0), INTR, com, size=64)
    # the centre still maps to the middle of the crop: the window was not moved back into the image
    assert c.uvd_to_crop(np.array([u, v, 500.0]))[:2] == pytest.approx((31.5, 31.5))
    # crop pixels whose source lies outside the image are background (1), the others are the plane (0)
    grid = np.stack(np.meshgrid(np.arange(64), np.arange(64)), -1).reshape(-1, 2).astype(float)
    src = c.crop_to_uvd(np.concatenate([grid, np.zeros((len(grid), 1))], 1))
    outside = (
        (np.rint(src[:, 0]) < 0)
        | (np.rint(src[:, 0]) > 639)
        | (np.rint(src[:, 1]) < 0)
        | (np.rint(src[:, 1]) > 479)
    )
    vals = c.depth.reshape(-1)
    assert outside.sum() > 500
    assert np.all(vals[outside] == 1.0)
    # half-pixel rounding on the boundary column can go either way; everything clearly inside is 0
    clearly_in = (src[:, 0] > 1) & (src[:, 0] < 638) & (src[:, 1] > 1) & (src[:, 1] < 478)
    assert np.all(vals[clearly_in] == 0.0)


def test_crop_rejects_bad_centres():
    d = _plane(500.0)
    for com in ([0, 0, 0], [0, 0, -10], [np.nan, 0, 500], [1, 2]):
        with pytest.raises(InputError):
            crop_cube(d, INTR, np.array(com, float))
    with pytest.raises(InputError):
        crop_cube(d, INTR, np.array([0, 0, 500.0]), cube_mm=0)
    with pytest.raises(InputError):
        crop_cube(d[:100], INTR, np.array([0, 0, 500.0]))
    with pytest.raises(InputError):
        normalize_joints(np.zeros((3, 2)), crop_cube(d, INTR, np.array([0, 0, 500.0])))


def test_crop_rgb_masks_normalizes_and_orders_rgb():
    color = np.zeros(INTR.shape + (3,), np.uint8)
    color[..., 0], color[..., 1], color[..., 2] = 10, 20, 30  # B, G, R
    d = _plane(0.0)
    d[200:280, 280:360] = 500.0  # the "hand": a square at the centre
    crop = crop_cube(d, INTR, np.array([0.0, 0.0, 500.0]), size=64)
    mean, std = (1.0, 2.0, 3.0), (2.0, 4.0, 5.0)
    out = crop_rgb(color, crop, mean=mean, std=std)
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    hand = crop.depth < 1
    assert hand.any() and (~hand).any()
    np.testing.assert_allclose(out[:, hand].mean(1), [(30 - 1) / 2, (20 - 2) / 4, (10 - 3) / 5], atol=1e-5)
    np.testing.assert_allclose(out[:, ~hand].mean(1), [-1 / 2, -2 / 4, -3 / 5], atol=1e-4)
    # an explicit image-space mask gives the same result as the depth-derived one here
    m = d > 0
    np.testing.assert_allclose(crop_rgb(color, crop, mask=m, mean=mean, std=std), out)
    with pytest.raises(InputError):
        crop_rgb(color[:, :, :2], crop)
    with pytest.raises(InputError):
        crop_rgb(color, crop, std=(1.0, 0.0, 1.0))


def test_mask_from_depth_matches_a_brute_force_median():
    rng = np.random.default_rng(3)
    pred = rng.uniform(0, 1, (40, 50)).astype(np.float32)
    m = mask_from_depth(pred, (40, 50), kernel=7, threshold=0.5)
    assert m.shape == (40, 50) and m.dtype == bool
    padded = np.pad(pred, 3, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (7, 7))
    brute = np.median(windows.reshape(40, 50, -1), axis=-1) > 0.5
    np.testing.assert_array_equal(m, brute)


def test_mask_from_depth_resizes_and_removes_speckle():
    pred = np.zeros((60, 80), np.float32)
    pred[20:40, 30:50] = 0.9
    pred[5, 5] = 1.0  # a speckle the median removes
    m = mask_from_depth(pred, 128)
    assert m.shape == (128, 128)
    assert m[64, 64] and not m[0, 0] and not m[10, 8]
    u8 = mask_from_depth((pred * 255).astype(np.uint8), 128)
    np.testing.assert_array_equal(u8, m)
    with pytest.raises(InputError):
        mask_from_depth(pred, 64, kernel=4)
    with pytest.raises(InputError):
        mask_from_depth(np.zeros((3, 3, 3)), 64)
