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
    _RY_REST,
    _SWING_REST,
    _SWING_SIGN,
    LIMITS_RAD,
    HandModel,
    _rx,
    _rz,
)

PALM = np.array([0, 1, 5, 9, 13, 17])  # joints rigid in the hand frame: wrist, thumb CMC, finger MCPs
PALM_WEIGHTS = np.array([2.0, 0.5, 1.0, 1.0, 1.0, 1.0])


def kabsch(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation minimizing sum w |R src + t - dst|^2 (a proper rotation, det +1)."""
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    h = ((src - ms) * w[:, None]).T @ (dst - md)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, md - rot @ ms


def inverse_kinematics(model: HandModel, joints_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rot (3, 3) hand -> camera, trans (3,) wrist, pose (20,) radians within limits) for (21, 3) joints."""
    j = np.asarray(joints_mm, dtype=np.float64)
    rot, trans = kabsch(model.rest_joints[PALM], j[PALM], PALM_WEIGHTS)
    local = (j - trans) @ rot  # into the hand frame
    base = model.rest_joints[_MOVING[:, 0] - 1]
    d0 = _unit(local[_MOVING[:, 0]] - base)
    d1 = _unit(local[_MOVING[:, 1]] - local[_MOVING[:, 0]])
    d2 = _unit(local[_MOVING[:, 2]] - local[_MOVING[:, 1]])
    # first bone: R0 e_y = Rz(swing) Rx(lift) e_y = (-sin s cos l, cos s cos l, sin l) (the rest roll is
    # about e_y and does not move it)
    # past 90 degrees of lift (a curled MCP) the same direction is also (swing + pi, pi - lift): keep the
    # reading that lies nearer the limits
    lift = np.arcsin(np.clip(d0[:, 2], -1.0, 1.0))
    swing = np.arctan2(-d0[:, 0], d0[:, 1])
    alt_lift = np.pi - lift
    alt_swing = np.angle(np.exp(1j * (swing + np.pi)))
    pose = np.zeros(20)
    a = _SWING_SIGN * (np.angle(np.exp(1j * (swing - _SWING_REST))))
    b = _SWING_SIGN * (np.angle(np.exp(1j * (alt_swing - _SWING_REST))))
    use_b = _outside(b, _I_SWING) + _outside(alt_lift, _I_LIFT) < _outside(a, _I_SWING) + _outside(
        lift, _I_LIFT
    )
    pose[_I_SWING] = np.where(use_b, b, a)
    pose[_I_LIFT] = np.where(use_b, alt_lift, lift)
    pose = np.clip(pose, LIMITS_RAD[:, 0], LIMITS_RAD[:, 1])
    # flexions: the next bone's direction in the parent bone's frame is (0, cos f, sin f)
    swing = _SWING_REST + _SWING_SIGN * pose[_I_SWING]
    r0 = _rz(swing) @ _rx(pose[_I_LIFT]) @ _RY_REST
    f1 = _flexion(r0, d1)
    pose[_I_FLEX1] = np.clip(f1, LIMITS_RAD[_I_FLEX1, 0], LIMITS_RAD[_I_FLEX1, 1])
    r1 = r0 @ _rx(pose[_I_FLEX1])
    pose[_I_FLEX2] = np.clip(_flexion(r1, d2), LIMITS_RAD[_I_FLEX2, 0], LIMITS_RAD[_I_FLEX2, 1])
    return rot, trans, pose


def _outside(angles: np.ndarray, index: np.ndarray) -> np.ndarray:
    """How far (radians) each angle lies outside its limits (0 inside)."""
    lo, hi = LIMITS_RAD[index, 0], LIMITS_RAD[index, 1]
    return np.maximum(lo - angles, 0.0) + np.maximum(angles - hi, 0.0)


def _flexion(parent: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Angle about each parent frame's x axis that best turns its e_y towards direction d."""
    y = np.einsum("cij,ci->cj", parent, d)  # d in the parent's frame (parent^T d)
    return np.arctan2(y[:, 2], y[:, 1])


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-9)


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
