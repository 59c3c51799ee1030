"""Canonical joints: the same gesture gives the same numbers wherever the hand is, however it is turned and
however big it is, so a small network on 21 joints can recognise it.

Wrist at the origin; y towards the mean of the four finger MCPs (distal); x along index MCP - pinky MCP made
orthogonal to y (towards the thumb side); z = x cross y; lengths divided by the mean wrist-to-MCP distance
(the palm's length). Averaging the four MCPs keeps the frame steady under a pose engine's per-joint noise.

A left hand is the mirror image of a right one, which no rotation undoes: in this frame its fingers bend
towards -z where a right hand's bend towards +z. The embedding is trained on both hands, so it needs no
handedness; a skeleton from a system whose axes are mirrored (y up) simply looks like the other hand.
Works in any unit (mm or m) and any joint order mapped to ours (stream.synth.hand.JOINT_NAMES).
"""

from __future__ import annotations

import math

import numpy as np

WRIST, INDEX_MCP, PINKY_MCP = 0, 5, 17
FINGER_MCPS = (5, 9, 13, 17)


def canonical_joints(joints: np.ndarray) -> np.ndarray:
    """(..., 21, 3) joints -> (..., 21, 3) in the hand's own frame, unit = palm length (float32)."""
    j = np.asarray(joints, dtype=np.float64)
    if j.shape[-2:] != (21, 3):
        raise ValueError(f"expected (..., 21, 3) joints, got {j.shape}")
    rel = j - j[..., WRIST : WRIST + 1, :]
    mcps = rel[..., FINGER_MCPS, :]
    y = mcps.mean(-2)
    scale = np.linalg.norm(mcps, axis=-1).mean(-1)
    y = y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-12)
    x = rel[..., INDEX_MCP, :] - rel[..., PINKY_MCP, :]
    x = x - (x * y).sum(-1, keepdims=True) * y
    x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    z = np.cross(x, y)
    rot = np.stack([x, y, z], axis=-2)  # rows are the new axes
    out = np.einsum("...ij,...kj->...ki", rot, rel) / np.maximum(scale, 1e-12)[..., None, None]
    return out.astype(np.float32)


def canonical_hand(joints: np.ndarray) -> np.ndarray:
    """`canonical_joints` for one (21, 3) hand, on the per-frame path: the frame is built from the four MCPs
    in plain Python floats, written out (on 3-vectors numpy's per-call cost is most of the time; np.cross
    alone costs more than all of this) and applied with one matrix product. Same numbers as
    `canonical_joints` to float32 precision (tested)."""
    j = np.asarray(joints, dtype=np.float64)
    if j.shape != (21, 3):
        raise ValueError(f"expected (21, 3) joints, got {j.shape}")
    rel = j - j[WRIST]
    (a0, a1, a2), (b0, b1, b2), (c0, c1, c2), (d0, d1, d2) = rel[list(FINGER_MCPS)].tolist()
    # y: towards the mean of the four MCPs
    y0, y1, y2 = a0 + b0 + c0 + d0, a1 + b1 + c1 + d1, a2 + b2 + c2 + d2
    n = max(math.sqrt(y0 * y0 + y1 * y1 + y2 * y2), 1e-12)
    y0, y1, y2 = y0 / n, y1 / n, y2 / n
    # x: index MCP - pinky MCP, made orthogonal to y
    x0, x1, x2 = a0 - d0, a1 - d1, a2 - d2
    d = x0 * y0 + x1 * y1 + x2 * y2
    x0, x1, x2 = x0 - d * y0, x1 - d * y1, x2 - d * y2
    n = max(math.sqrt(x0 * x0 + x1 * x1 + x2 * x2), 1e-12)
    x0, x1, x2 = x0 / n, x1 / n, x2 / n
    # unit: the mean wrist-to-MCP distance
    scale = (
        math.sqrt(a0 * a0 + a1 * a1 + a2 * a2)
        + math.sqrt(b0 * b0 + b1 * b1 + b2 * b2)
        + math.sqrt(c0 * c0 + c1 * c1 + c2 * c2)
        + math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    ) / 4.0
    # columns x, y, z = x cross y
    rot = np.array(
        (
            (x0, y0, x1 * y2 - x2 * y1),
            (x1, y1, x2 * y0 - x0 * y2),
            (x2, y2, x0 * y1 - x1 * y0),
        )
    )
    rot /= max(scale, 1e-12)
    return (rel @ rot).astype(np.float32)
