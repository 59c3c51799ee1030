import numpy as np
import pytest

from stream.errors import InputError
from stream.frames import KNOWN_CAMERAS, CameraIntrinsics, RGBDFrame
from stream.geometry import depth_to_points, depth_to_xyz_image, points_to_depth, uvd_to_xyz, xyz_to_uvd

CAM = KNOWN_CAMERAS["d435_640x480"]


def test_round_trip_points_any_shape():
    rng = np.random.default_rng(0)
    xyz = rng.uniform([-200, -150, 300], [200, 150, 900], size=(5, 21, 3))
    back = uvd_to_xyz(xyz_to_uvd(xyz, CAM), CAM)
    np.testing.assert_allclose(back, xyz, atol=1e-9)


def test_projection_matches_pinhole_equations():
    # a point on the optical axis lands on the principal point; one 100 mm right at 500 mm lands fx*0.2 right
    uvd = xyz_to_uvd(np.array([[0.0, 0.0, 500.0], [100.0, -50.0, 500.0]]), CAM)
    np.testing.assert_allclose(uvd[0], [CAM.cx, CAM.cy, 500.0])
    np.testing.assert_allclose(uvd[1], [CAM.cx + CAM.fx * 0.2, CAM.cy - CAM.fy * 0.1, 500.0])


def test_point_behind_camera_is_nan_pixel():
    uvd = xyz_to_uvd(np.array([10.0, 10.0, 0.0]), CAM)
    assert np.isnan(uvd[0]) and np.isnan(uvd[1])


def test_depth_image_round_trip():
    cam = KNOWN_CAMERAS["d435_320x240"]
    depth = np.zeros(cam.shape, np.uint16)
    depth[100:140, 150:200] = 600
    depth[110:120, 160:170] = 550
    pts = depth_to_points(depth, cam)
    assert pts.shape == ((depth > 0).sum(), 3)
    xyz = depth_to_xyz_image(depth, cam)
    np.testing.assert_allclose(xyz[depth > 0], pts, rtol=1e-6)
    np.testing.assert_array_equal(points_to_depth(pts, cam), depth.astype(np.float32))


def test_scaled_intrinsics_keep_rays():
    big = KNOWN_CAMERAS["d435_640x480"]
    small = big.scaled(320, 240)
    # pixel centre (u+0.5)/W is preserved: the same 3-D point lands at half the (centre-based) coordinate
    p = np.array([30.0, -20.0, 450.0])
    ub, vb, _ = xyz_to_uvd(p, big)
    us, vs, _ = xyz_to_uvd(p, small)
    assert us == pytest.approx((ub + 0.5) / 2 - 0.5)
    assert vs == pytest.approx((vb + 0.5) / 2 - 0.5)


def test_bad_intrinsics_and_frames_rejected():
    with pytest.raises(InputError):
        CameraIntrinsics(float("nan"), 1, 1, 1, 10, 10)
    with pytest.raises(InputError):
        CameraIntrinsics(-1, 1, 1, 1, 10, 10)
    with pytest.raises(InputError):
        RGBDFrame(0, 0.0, np.zeros((10, 10), np.uint16), CAM)
    with pytest.raises(InputError):
        RGBDFrame(0, 0.0, np.zeros(CAM.shape, np.int32), CAM)
    assert CameraIntrinsics.from_dict(CAM.to_dict()) == CAM
