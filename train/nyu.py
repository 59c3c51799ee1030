"""NYU Hand Pose (Tompson et al. 2014) formats, numpy only (no torch).

Community files: one line per frame, 14 joints x (u, v, d), u/v in pixels of the 640x480 image, d in mm.
World coordinates as the community scripts compute them: x = (u - cx) d / fx, y = -(v - cy) d / fy, z = d.
(The evaluation uses that flipped-y frame so our means match the published ones; it does not matter for
distances. Our own camera frame has y down: `nyu_uvd_to_camera` gives that one.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stream.errors import InputError
from stream.frames import KNOWN_CAMERAS, CameraIntrinsics

NYU_CAMERA: CameraIntrinsics = KNOWN_CAMERAS["nyu"]
NYU_EVAL_JOINTS = 14
# The 14 evaluation joints as indices into the 36 joints of joint_data.mat (the community protocol used by
# the DeepPrior / V2V-PoseNet loaders): two points per finger from pinky to index (tip, middle), three on
# the thumb, two on the wrist, one palm centre -- the order of the label file (checked on its line 1: the
# tips are the topmost points, joints 11-12 the lowest).
NYU_36_TO_14: tuple[int, ...] = (0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30, 31, 32)
NYU_JOINT_NAMES: tuple[str, ...] = (
    "pinky_tip",
    "pinky_mid",
    "ring_tip",
    "ring_mid",
    "middle_tip",
    "middle_mid",
    "index_tip",
    "index_mid",
    "thumb_tip",
    "thumb_mid",
    "thumb_base",
    "wrist_a",
    "wrist_b",
    "palm_center",
)


def load_uvd_file(path: str | Path, joints: int = NYU_EVAL_JOINTS) -> np.ndarray:
    """(N, J, 3) float64 (u, v, d) from a community prediction / label file; InputError when malformed."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such file: {p}")
    try:
        data = np.loadtxt(p, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise InputError(f"{p}: not a whitespace-separated table of numbers ({exc})") from None
    if data.size == 0:
        raise InputError(f"{p}: empty file")
    if data.shape[1] != 3 * joints:
        raise InputError(
            f"{p}: expected {3 * joints} numbers per line ({joints} joints x u,v,d), got {data.shape[1]}"
        )
    if not np.isfinite(data).all():
        raise InputError(f"{p}: contains non-finite numbers")
    return data.reshape(len(data), joints, 3)


def nyu_uvd_to_xyz(uvd: np.ndarray, intr: CameraIntrinsics = NYU_CAMERA) -> np.ndarray:
    """(..., 3) (u, v, d) -> (x, y, z) mm in the community's frame (y up: y = -(v - cy) d / fy)."""
    uvd = np.asarray(uvd, dtype=np.float64)
    out = np.empty_like(uvd)
    d = uvd[..., 2]
    out[..., 0] = (uvd[..., 0] - intr.cx) * d / intr.fx
    out[..., 1] = -(uvd[..., 1] - intr.cy) * d / intr.fy
    out[..., 2] = d
    return out


def nyu_uvd_to_camera(uvd: np.ndarray, intr: CameraIntrinsics = NYU_CAMERA) -> np.ndarray:
    """(..., 3) (u, v, d) -> our camera frame (OpenCV, y down), as stream.geometry.uvd_to_xyz."""
    xyz = nyu_uvd_to_xyz(uvd, intr)
    xyz[..., 1] *= -1.0
    return xyz


def read_nyu_depth_png(path: str | Path) -> np.ndarray:
    """NYU depth PNG -> (H, W) uint16 mm: depth = (G << 8) | B of the 8-bit image (OpenCV BGR order)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image {path}")
    return ((img[:, :, 1].astype(np.uint16) << 8) | img[:, :, 0].astype(np.uint16)).astype(np.uint16)


def default_gt_path() -> Path | None:
    """../shared/data/nyu/nyu_test_groundtruth_label.txt beside the checkout, when present."""
    repo = Path(__file__).resolve().parents[1]
    p = repo.parent / "shared" / "data" / "nyu" / "nyu_test_groundtruth_label.txt"
    return p if p.is_file() else None
