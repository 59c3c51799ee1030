"""Geometric features of a hand for the linear baseline and the skeleton-derived estimate (no torch).

Two kinds: the metric extent of the segmented hand (its crop pixels back in camera millimetres: the cube
crop is metric, a pixel spans cube_mm / size mm at the centre's depth, scaled by z / com_z elsewhere) and
bone lengths of the skeleton the pose engine predicts. The skeleton-derived hand length is the wrist ->
middle MCP -> PIP -> DIP -> tip chain, the definition of the label (wrist crease to middle fingertip).
"""

from __future__ import annotations

import numpy as np

FEATURE_NAMES: tuple[str, ...] = (
    "extent_major_mm",  # 2-98 % range of the hand's points along their first principal axis
    "extent_minor_mm",  # ... along the second
    "sqrt_area_mm",  # square root of the hand's metric image area
    "chain_middle_mm",  # skeleton: wrist -> middle MCP -> PIP -> DIP -> tip
    "mcp_span_mm",  # skeleton: index MCP to pinky MCP
    "palm_length_mm",  # skeleton: wrist to middle MCP
    "finger_sum_mm",  # skeleton: mean of the index, ring and pinky MCP -> tip chains
)
MIDDLE_CHAIN = (0, 9, 10, 11, 12)
INDEX_MCP, PINKY_MCP = 5, 17


def chain_length(joints: np.ndarray, chain: tuple[int, ...]) -> np.ndarray:
    """Summed bone lengths along `chain` of (..., 21, 3) joints."""
    j = np.asarray(joints, np.float64)
    return sum(np.linalg.norm(j[..., b, :] - j[..., a, :], axis=-1) for a, b in zip(chain[:-1], chain[1:]))


def skeleton_features(joints_mm: np.ndarray | None) -> np.ndarray:
    """(4,) chain_middle, mcp_span, palm_length, finger_sum of one skeleton (NaN when there is none)."""
    if joints_mm is None or not np.isfinite(joints_mm).all():
        return np.full(4, np.nan)
    j = np.asarray(joints_mm, np.float64)
    fingers = [chain_length(j, (m, m + 1, m + 2, m + 3)) for m in (5, 13, 17)]
    return np.array(
        [
            chain_length(j, MIDDLE_CHAIN),
            np.linalg.norm(j[INDEX_MCP] - j[PINKY_MCP]),
            np.linalg.norm(j[9] - j[0]),
            float(np.mean(fingers)),
        ]
    )


def crop_points_mm(crop) -> np.ndarray:
    """(P, 3) camera-frame millimetres of the hand pixels of a CubeCrop (depth < 1), relative to its centre."""
    d = crop.depth
    rows, cols = np.nonzero(d < 1.0)
    if len(rows) == 0:
        return np.zeros((0, 3))
    half, size = crop.half_mm, crop.size
    z = crop.com_xyz_mm[2] + d[rows, cols].astype(np.float64) * half
    scale = z / crop.com_xyz_mm[2] * (2.0 * half / size)
    x = (cols + 0.5 - size / 2.0) * scale
    y = (rows + 0.5 - size / 2.0) * scale
    return np.stack([x, y, z - crop.com_xyz_mm[2]], axis=1)


def extent_features(crop) -> np.ndarray:
    """(3,) major and minor extents and the square root of the metric area of the segmented hand."""
    p = crop_points_mm(crop)
    if len(p) < 10:
        return np.full(3, np.nan)
    q = p - p.mean(0)
    _, _, vt = np.linalg.svd(q, full_matrices=False)
    proj = q @ vt[:2].T
    lo, hi = np.percentile(proj, [2.0, 98.0], axis=0)
    pix = (2.0 * crop.half_mm / crop.size) * (p[:, 2] + crop.com_xyz_mm[2]) / crop.com_xyz_mm[2]
    return np.array([hi[0] - lo[0], hi[1] - lo[1], np.sqrt(float((pix**2).sum()))])


def geometric_features(crop, joints_mm: np.ndarray | None) -> np.ndarray:
    """(F,) float32 features of FEATURE_NAMES for one frame."""
    return np.concatenate([extent_features(crop), skeleton_features(joints_mm)]).astype(np.float32)
