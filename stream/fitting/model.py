"""The articulated hand model the fitter moves: stream.synth's kinematics, vectorized, with analytic Jacobians.

The same kinematic tree, bone lengths, rest angles and joint limits as the generator (`hand_joints_local`; a
test checks both give the same joints for random poses), rewritten as five chains (thumb, index, middle,
ring, pinky) computed at once, because the fitter evaluates it a few times per frame and the generator's
per-finger loop costs more than the whole budget. Each chain is a base joint fixed in the palm (the thumb's
CMC, a finger's MCP) and three bones: the base rotation Rz(swing) Rx(lift) Ry(roll) then two flexions
about the bone's own x axis.

Parameters: a rotation hand-local -> camera `rot` (3, 3), the wrist's camera position `trans` (3,) and the
20 pose angles of `stream.synth.hand` (radians here, degrees there). The surface is a set of spheres along
the generator's round cones (a sphere per radius of length), each a fixed linear combination of the 21
joints and a few points fixed in the palm, so the Jacobian of a sphere centre is the same combination of
the joints' Jacobians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..synth.hand import (
    _SPLAY_DEG,
    _THUMB_ROLL_DEG,
    _THUMB_SWING_DEG,
    LIMITS_DEG,
    N_POSE,
    HandShape,
    hand_joints_local,
)

N_PARAMS = 6 + N_POSE  # global rotation increment (3), translation (3), 20 joint angles
LIMITS_RAD = np.radians(LIMITS_DEG)
LIMITS_RAD.setflags(write=False)

# Chains in joint order (thumb, index, ..., pinky): chain c owns joints 1+4c (base) .. 4+4c (tip).
# Index into the pose vector of each chain's swing (about the palm normal), lift, and two flexions, and the
# sign the swing enters Rz with (a finger's abduction is towards the thumb, i.e. -z).
_I_SWING = np.array([16, 1, 5, 9, 13])
_SWING_SIGN = np.array([1.0, -1.0, -1.0, -1.0, -1.0])
_I_LIFT = np.array([17, 0, 4, 8, 12])
_I_FLEX1 = np.array([18, 2, 6, 10, 14])
_I_FLEX2 = np.array([19, 3, 7, 11, 15])
_SWING_REST = np.radians(np.array([_THUMB_SWING_DEG, *(-s for s in _SPLAY_DEG)]))
_ROLL_REST = np.radians(np.array([_THUMB_ROLL_DEG, 0.0, 0.0, 0.0, 0.0]))
_BASE = 1 + 4 * np.arange(5)
# (chain, moving joint 1..3, dof 0..3): does this dof move this joint (dof k rotates joints k+1.. of the
# chain about a pivot: swing and lift at the base, flexion 1 at joint 1, flexion 2 at joint 2)
_MOVES = np.array([[[j >= max(d, 1) for d in range(4)] for j in (1, 2, 3)]] * 5, dtype=np.float64)
_POSE_OF_DOF = np.stack([_I_SWING, _I_LIFT, _I_FLEX1, _I_FLEX2], axis=1)  # (5, 4)
# joint index of each chain's moving joints (5, 3)
_MOVING = _BASE[:, None] + np.arange(1, 4)[None, :]


# each chain's 4 dofs as rows of a (4, 5) array: pose index, sign and rest angle
_DOF_INDEX = np.stack([_I_SWING, _I_LIFT, _I_FLEX1, _I_FLEX2])
_DOF_SIGN = np.stack([_SWING_SIGN, np.ones(5), np.ones(5), np.ones(5)])
_DOF_REST = np.stack([_SWING_REST, np.zeros(5), np.zeros(5), np.zeros(5)])
# re-seeding a finger (Sharp et al. 2015): its lift and two flexions reset to straight, then to curled
# (a fist's finger; the thumb folded across the palm), its swing kept: (2 seeds, 3 dofs, 5 chains), within
# the limits (clipped where they are used)
RESEED_RAD = np.radians(
    np.array(
        [
            np.zeros((3, 5)),
            [[40.0, 75.0, 75.0, 75.0, 75.0], [40.0, 90.0, 90.0, 90.0, 90.0], [30.0, 60.0, 60.0, 60.0, 60.0]],
        ]
    )
)
RESEED_RAD.setflags(write=False)
_COS_ROLL, _SIN_ROLL = np.cos(_ROLL_REST), np.sin(_ROLL_REST)
# the 9 (moving joint, dof) pairs whose derivative is not zero, per chain: joint 1..3 x (swing, lift), then
# joints 2, 3 x flexion 1, then joint 3 x flexion 2
_PAIR_JOINT = np.array([1, 2, 3, 1, 2, 3, 2, 3, 3])
_PAIR_DOF = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3])
_SWING_AXIS = np.array([np.zeros(5), np.zeros(5), _SWING_SIGN])  # (3, 5)


def _rz(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], axis=-1).reshape(*a.shape, 3, 3)


def _rx(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], axis=-1).reshape(*a.shape, 3, 3)


def _ry(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], axis=-1).reshape(*a.shape, 3, 3)


_RY_REST = _ry(_ROLL_REST)


def default_shape(length_mm: float, width_mm: float) -> HandShape:
    """A hand of this length and palm width with average proportions (the generator's mean finger ratios
    and thickness): what the fitter assumes about a user it knows only by (length, width)."""
    return HandShape(
        subject=-1,
        length_mm=float(length_mm),
        width_mm=float(width_mm),
        finger_ratio=(0.925, 1.0, 0.955, 0.77),
        thickness_scale=1.0,
        skin_bgr=(160, 186, 224),
    )


@dataclass(frozen=True, eq=False)
class HandModel:
    """One user's hand: joints at rest, bone lengths, and the sphere set, all in the hand-local frame.

    `sphere_weights` (K, 21 + A): each sphere centre as a combination of the 21 joints and the A points
    `anchors` (A, 3) fixed in the palm; `radii` (K,)."""

    shape: HandShape
    rest_joints: np.ndarray  # (21, 3) at pose 0
    bone_mm: np.ndarray  # (5, 3) each chain's three bone lengths
    anchors: np.ndarray  # (A, 3)
    sphere_weights: np.ndarray  # (K, 21 + A)
    radii: np.ndarray  # (K,)
    rest_xyz_by_chain: np.ndarray  # (3, 5) each chain's base joint, xyz by chain
    pair_joint_index: np.ndarray  # (9, 5) joint of each (moving joint, dof) pair per chain
    pair_pose_index: np.ndarray  # (9, 5) its pose-vector index
    # the K sphere centres then the 21 joints, as combinations of the 21 joints (K + 21, 21) and the anchors
    # (K + 21, 3): every point the energy measures moves by one matrix product of the joints' Jacobians
    point_weights: np.ndarray
    point_offsets: np.ndarray
    radii32: np.ndarray  # (K,) float32, for the nearest-sphere search
    # point_weights as compressed rows (the compiled kernels walk each point's few joints): row p's joints
    # are point_index[point_ptr[p]:point_ptr[p + 1]] with weights point_value[...]
    point_ptr: np.ndarray
    point_index: np.ndarray
    point_value: np.ndarray
    # the chain whose angles move each point (K + 21,), 5: none (palm, wrist, base joints): a finger's own
    # residual, for re-seeding the worst finger, sums the terms of its spheres
    point_chain: np.ndarray

    @property
    def size_mm(self) -> np.ndarray:
        return self.shape.size_mm


def build_model(shape: HandShape, spacing: float = 1.5) -> HandModel:
    """The model of a hand shape, read off the generator at rest: joints, bone lengths, and spheres along
    each round cone about `spacing` x radius apart (the fingertip cone keeps the generator's shortened end).

    Each cone end is attached to the joints and anchors at once (array operations over all ends: the fit
    stage builds a model per new size cell of a track's first frames, ~4 ms each one end at a time);
    tests/test_fitting_model.py checks the result against the one-end-at-a-time construction."""
    geom = hand_joints_local(shape, np.zeros(N_POSE))
    rest = geom.joints.copy()
    bones = np.stack(
        [np.linalg.norm(rest[_MOVING[:, k]] - rest[_MOVING[:, k] - 1], axis=1) for k in range(3)], 1
    )
    k = len(geom.part)
    ends = np.empty((2 * k, 3))
    ends[0::2], ends[1::2] = geom.cone_a, geom.cone_b  # in the order the ends are met: a, b of each cone
    parts = np.repeat(geom.part.astype(np.int64), 2)
    dist = np.linalg.norm(rest[None, :, :] - ends[:, None, :], axis=2)  # (2K, 21)
    nearest = np.argmin(dist, axis=1)
    weights = np.zeros((2 * k, 21 + 16))
    anchors: list[np.ndarray] = []
    for e in range(2 * k):
        j = int(nearest[e])
        if dist[e, j] < 1e-6:  # a joint
            weights[e, j] = 1.0
            continue
        p, part = ends[e], int(parts[e])
        if part >= 1 and _on_bone(rest, p, part, weights[e]):
            continue
        for i, q in enumerate(anchors):  # an anchor met before
            if np.linalg.norm(q - p) < 1e-6:
                weights[e, 21 + i] = 1.0
                break
        else:
            anchors.append(p.copy())
            weights[e, 21 + len(anchors) - 1] = 1.0
    wa, wb = weights[0::2], weights[1::2]
    length = np.linalg.norm(geom.cone_b - geom.cone_a, axis=1)
    r_min = np.minimum(geom.radius_a, geom.radius_b)
    counts = [max(2, int(np.ceil(float(length[c]) / (spacing * float(r_min[c]))))) + 1 for c in range(k)]
    spans = {n: np.linspace(0.0, 1.0, n) for n in set(counts)}
    t = np.concatenate([spans[n] for n in counts])
    cone = np.repeat(np.arange(k), counts)
    rows = (1.0 - t)[:, None] * wa[cone] + t[:, None] * wb[cone]
    radii = (1.0 - t) * geom.radius_a[cone] + t * geom.radius_b[cone]
    n_anchor = len(anchors)
    w = rows[:, : 21 + n_anchor]
    # spheres that coincide (shared joints between cones) are kept once
    key = np.round(np.concatenate([w, radii[:, None]], 1), 6) + 0.0  # + 0.0: no -0.0 beside 0.0
    first: dict[bytes, int] = {}
    for i, row in enumerate(key):
        first.setdefault(row.tobytes(), i)
    keep = np.array(sorted(first.values()), dtype=np.int64)
    return _assemble(shape, rest, bones, anchors, w[keep], radii[keep])


def _assemble(
    shape: HandShape,
    rest: np.ndarray,
    bones: np.ndarray,
    anchors: list[np.ndarray],
    sphere_weights: np.ndarray,
    radii: np.ndarray,
) -> HandModel:
    """The HandModel of the kept spheres (`sphere_weights` (K, 21 + A) over the joints and `anchors`, and
    their `radii`), with the per-point tables the kernels read."""
    n_anchor = len(anchors)
    pw = np.concatenate([sphere_weights, np.eye(21, 21 + n_anchor)], 0)
    anchor_xyz = np.array(anchors).reshape(n_anchor, 3)
    return HandModel(
        shape=shape,
        rest_joints=rest,
        bone_mm=bones,
        anchors=anchor_xyz,
        sphere_weights=sphere_weights,
        radii=radii,
        rest_xyz_by_chain=rest[_BASE].T.copy(),
        pair_joint_index=_BASE[None, :] + _PAIR_JOINT[:, None],
        pair_pose_index=_DOF_INDEX[_PAIR_DOF],
        point_weights=np.ascontiguousarray(pw[:, :21]),
        point_offsets=pw[:, 21:] @ anchor_xyz,
        radii32=radii.astype(np.float32),
        **_compressed_rows(pw[:, :21]),
    )


def _on_bone(rest: np.ndarray, p: np.ndarray, part: int, w: np.ndarray) -> bool:
    """Whether point `p` lies on a bone of chain `part` - 1 (1: thumb .. 5: pinky); if so, its two joints'
    weights are written into `w`."""
    base = 1 + 4 * (part - 1)
    for a in range(base, base + 3):
        seg = rest[a + 1] - rest[a]
        t = float(np.dot(p - rest[a], seg) / np.dot(seg, seg))
        if 0.0 <= t <= 1.0 and np.linalg.norm(rest[a] + t * seg - p) < 1e-6:
            w[a], w[a + 1] = 1.0 - t, t
            return True
    return False


def _compressed_rows(w: np.ndarray) -> dict[str, np.ndarray]:
    """The non-zero entries of a (P, 21) weight matrix row by row (CSR)."""
    rows, cols = np.nonzero(w)
    moving = (cols >= 2) & ((cols - 1) % 4 != 0)  # the wrist and the chains' base joints are rigid
    chains = np.zeros((len(w), 5), dtype=bool)
    chains[rows[moving], (cols[moving] - 1) // 4] = True
    if chains.sum(1).max(initial=0) > 1:  # the kernels' rows hold one chain's angles (kernels._add_row)
        raise ValueError("a model point moves with two chains")
    chain = np.where(chains.any(1), chains.argmax(1), 5).astype(np.int64)
    return {
        "point_chain": chain,
        "point_ptr": np.searchsorted(rows, np.arange(len(w) + 1)).astype(np.int64),
        "point_index": cols.astype(np.int64),
        "point_value": np.ascontiguousarray(w[rows, cols], dtype=np.float64),
    }


@dataclass(frozen=True, eq=False)
class Posed:
    """The model at one parameter vector, in the camera frame: the K sphere centres and the 21 joints as one
    (K + 21, 3) array of points, and each point's derivative w.r.t. the 20 angles as (K + 21, 3, 20). The
    derivatives w.r.t. the global rotation and translation need no storage (`point_rows`)."""

    points: np.ndarray  # (K + 21, 3) sphere centres, then joints
    pose_jac: np.ndarray  # (K + 21, 3, 20) d point / d angle
    n_spheres: int
    trans: np.ndarray  # (3,) the wrist, the global rotation's pivot
    axis_y: np.ndarray  # (3,) the hand's distal direction (wrist towards the fingers) in the camera frame
    pose: np.ndarray | None = None  # (20,) the angles it was posed at (the pose prior's term reads them)

    @property
    def joints(self) -> np.ndarray:
        return self.points[self.n_spheres :]

    @property
    def centres(self) -> np.ndarray:
        return self.points[: self.n_spheres]

    @property
    def joint_jac(self) -> np.ndarray:
        """(21, 3, 26) the joints' full Jacobians (dense; the fitter projects instead, see `point_rows`)."""
        return self._dense(np.arange(self.n_spheres, len(self.points)))

    @property
    def centre_jac(self) -> np.ndarray:
        """(K, 3, 26) the sphere centres' full Jacobians."""
        return self._dense(np.arange(self.n_spheres))

    def _dense(self, idx: np.ndarray) -> np.ndarray:
        eye = np.eye(3)
        return np.stack([point_rows(self, np.tile(e, (len(idx), 1)), idx) for e in eye], 1)


def _chains(
    model: HandModel, pose_rad: np.ndarray, derivatives: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Forward kinematics of the five chains at once on (3, 5) arrays (xyz x chains): the chains' joints
    (4, 3, 5) (base, then the three moving joints) and the 9 non-zero (joint, dof) derivatives (3, 9, 5).
    At this size numpy's call overhead, not arithmetic, is the cost, so the fewer calls the better."""
    a = pose_rad[_DOF_INDEX] * _DOF_SIGN + _DOF_REST  # (4, 5)
    c, s = np.cos(a), np.sin(a)
    ca, cb, c1, c2 = c
    sa, sb, s1, s2 = s
    zero = np.zeros(5)
    m0 = np.array([ca, sa, zero])  # Rz(swing) e_x: the lift axis
    m1 = np.array([-sa * cb, ca * cb, sb])
    m2 = np.array([sa * sb, -ca * sb, cb])
    x0 = m0 * _COS_ROLL - m2 * _SIN_ROLL  # the flexion axis (R0 e_x = R1 e_x)
    z0 = m0 * _SIN_ROLL + m2 * _COS_ROLL
    y2 = c1 * m1 + s1 * z0
    z2 = c1 * z0 - s1 * m1
    y3 = c2 * y2 + s2 * z2
    bl = model.bone_mm.T  # (3, 5)
    base = model.rest_xyz_by_chain  # (3, 5)
    j1 = base + bl[0] * m1
    j2 = j1 + bl[1] * y2
    j3 = j2 + bl[2] * y3
    chain = np.array([base, j1, j2, j3])  # (4 joints, 3, 5)
    if not derivatives:
        return chain, None
    # d joint / d dof = axis x (joint - pivot); pivots: base, base, j1, j2
    u = np.array([_SWING_AXIS, m0, x0, x0])[_PAIR_DOF]  # (9, 3, 5)
    v = chain[_PAIR_JOINT] - chain[_PAIR_PIVOT]
    u0, u1, u2 = u[:, 0], u[:, 1], u[:, 2]
    v0, v1, v2 = v[:, 0], v[:, 1], v[:, 2]
    cr = np.array([u1 * v2 - u2 * v1, u2 * v0 - u0 * v2, u0 * v1 - u1 * v0])  # (3, 9, 5)
    return chain, cr


_PAIR_PIVOT = np.array([0, 0, 1, 2])[_PAIR_DOF]


def local_joints(model: HandModel, pose_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics in the hand frame: (21, 3) joints and (21, 3, 20) their derivatives w.r.t. the
    angles."""
    chain, cr = _chains(model, pose_rad)
    joints = model.rest_joints.copy()
    joints[_MOVING.T] = chain[1:].transpose(0, 2, 1)
    jac = np.zeros((21, 3, N_POSE))
    jac[model.pair_joint_index, :, model.pair_pose_index] = cr.transpose(1, 2, 0)
    return joints, jac


def pose_joints(model: HandModel, rot: np.ndarray, trans: np.ndarray, pose_rad: np.ndarray) -> np.ndarray:
    """(21, 3) the joints in the camera frame, without derivatives (a fit's result)."""
    chain, _ = _chains(model, pose_rad, derivatives=False)
    joints = model.rest_joints.copy()
    joints[_MOVING.T] = chain[1:].transpose(0, 2, 1)
    return joints @ rot.T + trans


def pose_model(model: HandModel, rot: np.ndarray, trans: np.ndarray, pose_rad: np.ndarray) -> Posed:
    """Sphere centres and joints in the camera frame, with their derivatives w.r.t. the angles: the chains'
    derivatives are rotated into the camera frame once (one (3, 3) x (3, 45) product), then spread over
    the points by one product with the model's point weights."""
    chain, cr = _chains(model, pose_rad)
    joints = model.rest_joints.copy()
    joints[_MOVING.T] = chain[1:].transpose(0, 2, 1)
    jac = np.zeros((21, 3, N_POSE))
    jac[model.pair_joint_index, :, model.pair_pose_index] = (
        (rot @ cr.reshape(3, -1)).reshape(3, 9, 5).transpose(1, 2, 0)
    )
    points = (model.point_weights @ joints + model.point_offsets) @ rot.T + trans
    return Posed(
        points=points,
        pose_jac=(model.point_weights @ jac.reshape(21, -1)).reshape(-1, 3, N_POSE),
        n_spheres=len(model.radii),
        trans=trans,
        axis_y=rot[:, 1],
        pose=np.asarray(pose_rad, dtype=np.float64),
    )


def point_rows(posed: Posed, vec: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(R, 26) the derivatives of vec[r] . point[idx[r]] w.r.t. (rotation increment, translation, angles):
    a rotation omega about the wrist moves a point by omega x (p - wrist), so the rotation part is
    (p - wrist) x vec; the translation part is vec; the angles' part is vec . d point / d angle."""
    rel = posed.points[idx] - posed.trans
    x, y, z = rel[:, 0], rel[:, 1], rel[:, 2]
    a, b, c = vec[:, 0], vec[:, 1], vec[:, 2]
    out = np.empty((len(idx), N_PARAMS))
    out[:, 0] = y * c - z * b
    out[:, 1] = z * a - x * c
    out[:, 2] = x * b - y * a
    out[:, 3:6] = vec
    out[:, 6:] = np.einsum("rc,rcp->rp", vec, posed.pose_jac[idx])
    return out


def rotation_update(omega: np.ndarray) -> np.ndarray:
    """exp([omega]x) by Rodrigues' formula (the global rotation's increment), on Python floats: numpy's
    per-call cost dominates on a 3-vector."""
    wx, wy, wz = (float(v) for v in omega)
    th = math.sqrt(wx * wx + wy * wy + wz * wz)
    if th < 1e-12:
        return np.eye(3)
    x, y, z = wx / th, wy / th, wz / th
    s, c = math.sin(th), math.cos(th)
    t = 1.0 - c
    return np.array(
        [
            [c + t * x * x, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, c + t * y * y, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, c + t * z * z],
        ]
    )
