"""Inverse kinematics: the model's global frame and joint angles from 21 joints (the pose engine's).

The global frame is the rigid alignment (Kabsch) of the model's palm joints (wrist, the four finger MCPs,
the thumb's CMC), which do not move with the angles, to the given ones. Each chain's angles then follow from
its bone directions in that frame, one bone at a time: the first bone's direction gives the base swing and
lift, each next bone's direction in its parent's frame gives a flexion (the component a hinge cannot make
is dropped). Angles are clipped to the generator's limits, so the result is always a valid hand.
"""

from __future__ import annotations

import numpy as np

from .model import (
    _I_FLEX1,
    _I_FLEX2,
    _I_LIFT,
    _I_SWING,
    _MOVING,
    _ROLL_REST,
    _SWING_REST,
    _SWING_SIGN,
    LIMITS_RAD,
    HandModel,
)

PALM = np.array([0, 1, 5, 9, 13, 17])  # joints rigid in the hand frame: wrist, thumb CMC, finger MCPs
PALM_WEIGHTS = np.array([2.0, 0.5, 1.0, 1.0, 1.0, 1.0])


_PALM_W = PALM_WEIGHTS / PALM_WEIGHTS.sum()
# each chain's four joints (base, then the moving ones), (4, 5)
_CHAIN = np.concatenate([(_MOVING[:, 0] - 1)[None, :], _MOVING.T], 0)
# (swing, lift) of each chain: their pose indices, limits, and the swing's sign and rest angle
_SL_INDEX = np.stack([_I_SWING, _I_LIFT])  # (2, 5)
_SL_LO, _SL_HI = LIMITS_RAD[_SL_INDEX, 0], LIMITS_RAD[_SL_INDEX, 1]
_SL_SIGN = np.stack([_SWING_SIGN, np.ones(5)])
_SL_REST = np.stack([_SWING_REST, np.zeros(5)])
_COS_ROLL, _SIN_ROLL = np.cos(_ROLL_REST), np.sin(_ROLL_REST)
_TWO_PI = 2.0 * np.pi


def kabsch(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation minimizing sum w |R src + t - dst|^2 (a proper rotation, det +1)."""
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    h = ((src - ms) * w[:, None]).T @ (dst - md)
    u, _, vt = np.linalg.svd(h)
    rot = vt.T @ u.T
    (a, b, c), (d, e, f), (g, k, m) = rot.tolist()
    if (
        a * (e * m - f * k) - b * (d * m - f * g) + c * (d * k - e * g) < 0
    ):  # a reflection: flip the last axis
        rot = rot - 2.0 * np.outer(vt[2], u[:, 2])
    return rot, md - rot @ ms


def global_frame(model: HandModel, joints_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hand's frame (rot hand -> camera, wrist) from the palm joints alone, which the angles do not move."""
    return kabsch(model.rest_joints[PALM], np.asarray(joints_mm, dtype=np.float64)[PALM], _PALM_W)


def _wrap(a: np.ndarray) -> np.ndarray:
    """Angles into [-pi, pi)."""
    return (a + np.pi) % _TWO_PI - np.pi


def inverse_kinematics(model: HandModel, joints_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rot (3, 3) hand -> camera, trans (3,) wrist, pose (20,) radians within limits) for (21, 3) joints.
    All five chains at once on (3, 5) arrays (xyz x chain), the frames written out as in model._chains."""
    j = np.asarray(joints_mm, dtype=np.float64)
    rot, trans = global_frame(model, j)
    local = ((j - trans) @ rot)[_CHAIN].transpose(0, 2, 1)  # (4, 3, 5) in the hand frame
    local[0] = model.rest_xyz_by_chain  # the first bone starts at the model's base joint
    d = np.diff(local, axis=0)
    d /= np.maximum(np.sqrt((d * d).sum(1)), 1e-9)[:, None, :]
    d0, d1, d2 = d
    # first bone: R0 e_y = Rz(swing) Rx(lift) e_y = (-sin s cos l, cos s cos l, sin l) (the rest roll is
    # about e_y and does not move it); past 90 degrees of lift (a curled MCP) the same direction is also
    # (swing + pi, pi - lift): keep the reading that lies nearer the limits
    lift = np.arcsin(np.clip(d0[2], -1.0, 1.0))
    swing = np.arctan2(-d0[0], d0[1])
    cand = np.array([[swing, lift], [swing + np.pi, np.pi - lift]])  # (2 readings, 2, 5)
    cand[:, 0] = _wrap(cand[:, 0] - _SWING_REST) * _SWING_SIGN
    off = (np.maximum(_SL_LO - cand, 0.0) + np.maximum(cand - _SL_HI, 0.0)).sum(1)  # (2, 5)
    sl = np.clip(np.where(off[1] < off[0], cand[1], cand[0]), _SL_LO, _SL_HI)  # (2, 5)
    a = sl * _SL_SIGN + _SL_REST
    ca, cb = np.cos(a)
    sa, sb = np.sin(a)
    m0 = np.array([ca, sa, np.zeros(5)])
    m1 = np.array([-sa * cb, ca * cb, sb])
    m2 = np.array([sa * sb, -ca * sb, cb])
    z0 = m0 * _SIN_ROLL + m2 * _COS_ROLL
    # flexions: the next bone's direction in the parent bone's frame (e_y, e_z) is (cos f, sin f)
    f1 = np.clip(np.arctan2((d1 * z0).sum(0), (d1 * m1).sum(0)), *_FLEX1_LIM)
    c1, s1 = np.cos(f1), np.sin(f1)
    y2, z2 = c1 * m1 + s1 * z0, c1 * z0 - s1 * m1
    f2 = np.clip(np.arctan2((d2 * z2).sum(0), (d2 * y2).sum(0)), *_FLEX2_LIM)
    pose = np.empty(20)
    pose[_SL_INDEX] = sl
    pose[_I_FLEX1] = f1
    pose[_I_FLEX2] = f2
    return rot, trans, pose


_FLEX1_LIM = LIMITS_RAD[_I_FLEX1].T
_FLEX2_LIM = LIMITS_RAD[_I_FLEX2].T


def estimate_size(joints_mm: np.ndarray, model_unit: HandModel) -> np.ndarray:
    """(length, width) mm of the hand whose joints these are, from its bone lengths: each chain bone
    scales with the hand's length, the MCP row with the palm width. `model_unit` is a model built for
    a known (length, width); the estimate is the median ratio of bone lengths times its size."""
    j = np.asarray(joints_mm, dtype=np.float64)
    bones = np.linalg.norm(j[_MOVING] - j[_MOVING - 1], axis=2)  # (5, 3)
    ratio = np.median(bones / model_unit.bone_mm)
    rest = model_unit.rest_joints
    row = np.linalg.norm(j[5] - j[17]) / np.linalg.norm(rest[5] - rest[17])
    length, width = model_unit.shape.length_mm, model_unit.shape.width_mm
    return np.array([length * ratio, width * row])
