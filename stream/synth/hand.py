"""An articulated 21-joint hand: names, per-subject shape, gestures, anatomical limits, forward kinematics.

Hand-local frame of a RIGHT hand (a left hand mirrors x): origin at the wrist joint, +y distal (wrist
towards the middle-finger MCP), +x radial (towards the thumb), +z palmar (out of the palm). The frame is
right-handed, so a global rotation maps it straight into the camera frame (x right, y down, z forward).

Proportions follow anthropometric averages (hand length = wrist crease to middle fingertip; palm width
across the MCPs): palm 0.47 of the length, middle finger 0.53 split 0.49/0.30/0.21 over its phalanges,
the other fingers scaled from it. Good enough for depth images at 300-700 mm, not a surgical model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anthropometry import ANTHROPOMETRY_MODELS, ansur_hand_size

# MediaPipe / MANO order: wrist, then thumb, index, middle, ring, pinky with 4 joints each.
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(
    f"{f}_{j}"
    for f in FINGERS
    for j in (("cmc", "mcp", "ip", "tip") if f == "thumb" else ("mcp", "pip", "dip", "tip"))
)
# parent of each joint in the kinematic tree (wrist = -1)
PARENTS: tuple[int, ...] = (-1,) + tuple(0 if k % 4 == 0 else k for k in range(20))
BONES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)

# The 14 NYU evaluation joints in the community's order (Tompson et al. 2014; the index list
# [0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30, 31, 32] of the 36 NYU joints): fingertips and the PIP of
# each finger from the pinky on, the thumb's tip, IP and MCP, two wrist points and the palm centre.
NYU_JOINT_NAMES: tuple[str, ...] = (
    "pinky_tip",
    "pinky_pip",
    "ring_tip",
    "ring_pip",
    "middle_tip",
    "middle_pip",
    "index_tip",
    "index_pip",
    "thumb_tip",
    "thumb_ip",
    "thumb_mcp",
    "wrist_ulnar",
    "wrist_radial",
    "palm_center",
)


def _nyu_matrix() -> np.ndarray:
    """(14, 21) weights, rows summing to 1, so the map commutes with translation and rotation.

    Twelve rows pick a joint. The NYU wrist points sit on either side of the wrist, which the 21-joint
    hand has no joint for: we place them at the wrist +- 0.3 x (index MCP - pinky MCP), which matches the
    NYU test labels' 30-35 mm spacing for a typical palm. The palm centre is 0.4 wrist + 0.6 the mean of
    the four finger MCPs (NYU's C sits well up the palm, not half way)."""
    idx = {n: i for i, n in enumerate(JOINT_NAMES)}
    w = np.zeros((14, 21), dtype=np.float64)
    for r, name in enumerate(NYU_JOINT_NAMES[:11]):
        w[r, idx[name]] = 1.0
    for r, sign in ((11, -1.0), (12, 1.0)):  # ulnar = towards the pinky
        w[r, idx["wrist"]] = 1.0
        w[r, idx["index_mcp"]] += 0.3 * sign
        w[r, idx["pinky_mcp"]] -= 0.3 * sign
    w[13, idx["wrist"]] = 0.4
    for f in ("index", "middle", "ring", "pinky"):
        w[13, idx[f"{f}_mcp"]] = 0.15
    return w


NYU_FROM_21: np.ndarray = _nyu_matrix()
NYU_FROM_21.setflags(write=False)


def nyu_from_21(joints: np.ndarray) -> np.ndarray:
    """(..., 21, 3) joints in our order -> (..., 14, 3) NYU evaluation joints (linear, see NYU_FROM_21).

    Works on xyz in mm; on (u, v, d) it is only approximate for the two synthesized wrist points and
    the palm centre (perspective is not linear), exact for the eleven picked joints."""
    j = np.asarray(joints)
    if j.shape[-2:] != (21, 3):
        raise ValueError(f"expected (..., 21, 3) joints, got {j.shape}")
    return np.einsum("kj,...jc->...kc", NYU_FROM_21, j.astype(np.float64)).astype(j.dtype, copy=False)


# --------------------------------------------------------------------------------------------- gestures
GESTURES_COARSE: tuple[str, ...] = ("open", "closed", "counting", "precision", "sign")
# fine name -> coarse name
_FINE: tuple[tuple[str, str], ...] = (
    ("open_palm", "open"),
    ("four", "open"),
    ("relaxed", "open"),
    ("fist", "closed"),
    ("thumbs_up", "closed"),
    ("point", "counting"),
    ("victory", "counting"),
    ("three", "counting"),
    ("ok", "precision"),
    ("pinch", "precision"),
    ("c_shape", "precision"),
    ("call", "sign"),
    ("rock", "sign"),
    ("l_shape", "sign"),
)
GESTURES_FINE: tuple[str, ...] = tuple(f for f, _ in _FINE)
FINE_TO_COARSE: np.ndarray = np.array([GESTURES_COARSE.index(c) for _, c in _FINE], dtype=np.int64)
FINE_TO_COARSE.setflags(write=False)

# Pose parameters (degrees). Fingers (index..pinky): MCP flexion, MCP abduction (+ = towards the
# thumb side), PIP flexion, DIP flexion. Thumb: CMC flexion (across the palm, towards the pinky), CMC
# abduction (away from the palm plane), MCP flexion, IP flexion.
N_POSE = 20
LIMITS_DEG = np.array(
    [[-25.0, 95.0], [-25.0, 25.0], [-5.0, 115.0], [-5.0, 85.0]] * 4
    + [[-25.0, 60.0], [-10.0, 80.0], [-10.0, 70.0], [-15.0, 85.0]],
    dtype=np.float64,
)

_E = (0.0, 0.0, 0.0, 0.0)  # extended finger
_C = (88.0, 0.0, 100.0, 65.0)  # curled into the fist
_T_OUT = (-10.0, 20.0, 0.0, 0.0)  # thumb spread out in the palm plane
_T_FIST = (35.0, 25.0, 40.0, 35.0)  # thumb over the curled fingers


def _g(index, middle, ring, pinky, thumb, spread=0.0) -> np.ndarray:
    v = np.array([*index, *middle, *ring, *pinky, *thumb], dtype=np.float64)
    v[[1, 5, 9, 13]] += np.array([1.0, 0.3, -0.4, -1.0]) * spread
    return v


GESTURE_POSES_DEG: dict[str, np.ndarray] = {
    "open_palm": _g(_E, _E, _E, _E, _T_OUT, spread=14.0),
    "four": _g(_E, _E, _E, _E, (45.0, 30.0, 45.0, 30.0), spread=8.0),
    "relaxed": _g(*([(25.0, 0.0, 30.0, 15.0)] * 4), (5.0, 35.0, 15.0, 10.0), spread=4.0),
    "fist": _g(_C, _C, _C, _C, _T_FIST),
    "thumbs_up": _g(_C, _C, _C, _C, (-10.0, 40.0, 0.0, 0.0)),
    "point": _g(_E, _C, _C, _C, _T_FIST),
    "victory": _g(_E, _E, _C, _C, _T_FIST, spread=14.0),
    "three": _g(_E, _E, _E, _C, _T_FIST, spread=8.0),
    # ok / pinch: thumb angles found by a grid search that brings the thumb tip onto the index tip
    "ok": _g((45.0, 0.0, 55.0, 35.0), _E, _E, _E, (18.0, 32.0, 14.0, 15.0), spread=10.0),
    "pinch": _g((45.0, 0.0, 55.0, 35.0), (70.0, 0.0, 90.0, 55.0), _C, _C, (18.0, 32.0, 14.0, 15.0)),
    "c_shape": _g(*([(35.0, 0.0, 40.0, 20.0)] * 4), (0.0, 50.0, 10.0, 10.0)),
    "call": _g(_C, _C, _C, _E, _T_OUT, spread=-4.0),
    "rock": _g(_E, _C, _C, _E, _T_FIST, spread=10.0),
    "l_shape": _g(_E, _C, _C, _C, _T_OUT),
}


def gesture_pose(fine: int, rng: np.random.Generator, jitter_deg: float = 7.0) -> np.ndarray:
    """A gesture's canonical pose with per-sample variation, clipped to the anatomical limits."""
    base = GESTURE_POSES_DEG[GESTURES_FINE[fine]]
    return clip_pose(base + rng.normal(0.0, jitter_deg, N_POSE))


def clip_pose(pose_deg: np.ndarray) -> np.ndarray:
    return np.clip(pose_deg, LIMITS_DEG[:, 0], LIMITS_DEG[:, 1])


# ------------------------------------------------------------------------------------------ hand shape
@dataclass(frozen=True)
class HandShape:
    """One subject's hand: sizes in mm and a skin tone. Everything downstream is derived from these."""

    subject: int
    length_mm: float  # wrist to middle fingertip
    width_mm: float  # palm width across the MCPs
    finger_ratio: tuple[float, float, float, float]  # index, middle, ring, pinky length / middle length
    thickness_scale: float
    skin_bgr: tuple[int, int, int]

    @property
    def size_mm(self) -> np.ndarray:
        return np.array([self.length_mm, self.width_mm], dtype=np.float32)


# A few skin tones (BGR), light to dark; a subject gets one, varied slightly.
SKIN_TONES_BGR = np.array(
    [[189, 205, 241], [160, 186, 224], [130, 160, 205], [105, 140, 190], [80, 110, 160], [55, 80, 120],
     [40, 58, 90]],
    dtype=np.float64,
)  # fmt: skip


def hand_shape(subject: int, child_fraction: float = 0.2, anthropometry: str = "uniform") -> HandShape:
    """The hand of a subject id: the same id always gives the same hand (independent of any scene seed).

    "uniform" (the default, which every existing dataset and benchmark was made with): adult hand length
    165-210 mm / palm width 72-95 mm, children (age 5-12) 120-160 / 55-72 mm. "ansur": length and width
    drawn from the ANSUR II survey's joint distribution per sex (synth/anthropometry.py); adults only, so
    `child_fraction` does not apply. Finger ratios, thickness and skin tone are the same in both."""
    if anthropometry not in ANTHROPOMETRY_MODELS:
        raise ValueError(f"anthropometry must be one of {ANTHROPOMETRY_MODELS}, got {anthropometry!r}")
    rng = np.random.default_rng([0x5EED, int(subject)])
    child = rng.random() < child_fraction
    if child:
        length = rng.uniform(120.0, 160.0)
        width = length * rng.uniform(0.44, 0.48)
    else:
        length = rng.uniform(165.0, 210.0)
        width = length * rng.uniform(0.42, 0.48)
    ratios = (
        float(rng.uniform(0.90, 0.95)),
        1.0,
        float(rng.uniform(0.93, 0.98)),
        float(rng.uniform(0.74, 0.80)),
    )
    tone = SKIN_TONES_BGR[rng.integers(len(SKIN_TONES_BGR))] + rng.normal(0, 6, 3)
    if anthropometry == "ansur":  # after every uniform draw, so the other per-subject values stay the same
        length, width, _ = ansur_hand_size(subject)
    return HandShape(
        subject=int(subject),
        length_mm=float(length),
        width_mm=float(width),
        finger_ratio=ratios,
        thickness_scale=float(rng.uniform(0.92, 1.1)),
        skin_bgr=tuple(int(c) for c in np.clip(tone, 0, 255)),
    )


# ----------------------------------------------------------------------------------- forward kinematics
def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class HandGeometry:
    """Joints and the solid primitives (round cones: two sphere centres and radii) in one frame."""

    joints: np.ndarray  # (21, 3)
    cone_a: np.ndarray  # (K, 3)
    cone_b: np.ndarray  # (K, 3)
    radius_a: np.ndarray  # (K,)
    radius_b: np.ndarray  # (K,)
    part: np.ndarray  # (K,) int: 0 palm/wrist, 1..5 thumb..pinky (for colour and debugging)
    palm_normal: np.ndarray  # (3,) unit, out of the palm

    def transformed(self, rot: np.ndarray, trans: np.ndarray) -> HandGeometry:
        t = lambda p: p @ rot.T + trans  # noqa: E731
        return HandGeometry(
            t(self.joints),
            t(self.cone_a),
            t(self.cone_b),
            self.radius_a,
            self.radius_b,
            self.part,
            rot @ self.palm_normal,
        )


# finger MCP positions: x as a fraction of palm width (radial +), y as a fraction of palm length
_MCP_X = (0.36, 0.12, -0.12, -0.34)
_MCP_Y = (0.96, 1.0, 0.965, 0.89)
_SPLAY_DEG = (6.0, 1.0, -4.0, -10.0)  # resting direction of each finger, + = radial
_PHALANX = (0.49, 0.30, 0.21)
# thumb metacarpal at rest: swung this far towards the radial side about the palm normal (flexion adds to
# it), and rolled about its own axis so that MCP/IP flexion points at the palm centre
_THUMB_SWING_DEG = -38.0
_THUMB_ROLL_DEG = -55.0


def hand_joints_local(shape: HandShape, pose_deg: np.ndarray, left: bool = False) -> HandGeometry:
    """Forward kinematics in the hand-local frame (wrist at the origin), with the solid primitives.

    Bone lengths depend only on the shape, never on the pose, so they stay constant over a sequence."""
    pose = np.radians(clip_pose(np.asarray(pose_deg, dtype=np.float64)))
    L, W, th = shape.length_mm, shape.width_mm, shape.thickness_scale
    palm_len = 0.47 * L
    mid_len = 0.53 * L
    joints = np.zeros((21, 3))
    cones: list[tuple[np.ndarray, np.ndarray, float, float, int]] = []

    # ---- fingers
    for f in range(4):
        mf, ma, pf, df = pose[4 * f : 4 * f + 4]
        mcp = np.array([_MCP_X[f] * W, _MCP_Y[f] * palm_len, 0.0])
        flen = mid_len * shape.finger_ratio[f]
        r0 = W * (0.105 if f < 3 else 0.09) * th
        radii = (r0, r0 * 0.9, r0 * 0.8, r0 * 0.72)
        rot = rot_z(-np.radians(_SPLAY_DEG[f]) - ma) @ rot_x(mf)
        pts = [mcp]
        for seg, flex in zip(_PHALANX, (None, pf, df)):
            if flex is not None:
                rot = rot @ rot_x(flex)
            pts.append(pts[-1] + rot @ np.array([0.0, seg * flen, 0.0]))
        base = 1 + 4 * (f + 1)
        joints[base : base + 4] = pts
        for s in range(3):
            a, b = pts[s], pts[s + 1]
            if s == 2:  # the fingertip joint sits just inside the rounded tip
                b = b - (b - a) / np.linalg.norm(b - a) * radii[3] * 0.6
            cones.append((a, b, radii[s], radii[s + 1], f + 2))

    # ---- thumb: CMC near the wrist on the radial side, pronated so that flexion crosses the palm
    cf, ca, tmf, tif = pose[16:20]
    cmc = np.array([0.24 * W, 0.17 * palm_len, 0.1 * W])
    # CMC: swing across the palm (flexion, about the palm normal) after lifting out of the palm plane
    # (abduction); the final roll about the metacarpal's axis points MCP/IP flexion at the palm centre.
    rot = rot_z(np.radians(_THUMB_SWING_DEG) + cf) @ rot_x(ca) @ rot_y(np.radians(_THUMB_ROLL_DEG))
    seglens = (0.23 * L, 0.165 * L, 0.14 * L)
    rt = W * 0.13 * th
    radii_t = (rt * 1.25, rt * 1.05, rt * 0.95, rt * 0.78)
    pts = [cmc]
    for s, seg in enumerate(seglens):
        if s == 1:
            rot = rot @ rot_x(tmf)
        elif s == 2:
            rot = rot @ rot_x(tif)
        pts.append(pts[-1] + rot @ np.array([0.0, seg, 0.0]))
    joints[1:5] = pts
    for s in range(3):
        a, b = pts[s], pts[s + 1]
        if s == 2:
            b = b - (b - a) / np.linalg.norm(b - a) * radii_t[3] * 0.6
        cones.append((a, b, radii_t[s], radii_t[s + 1], 1))

    # ---- palm: one round cone from the carpus to each finger MCP, plus the wrist and the thenar pad
    rp = W * 0.15 * th
    for f in range(4):
        base = np.array([_MCP_X[f] * W * 0.55, 0.1 * palm_len, 0.0])
        mcp = joints[1 + 4 * (f + 1)]
        cones.append((base, mcp - np.array([0.0, 0.0, 0.0]), rp * 1.05, W * 0.13 * th, 0))
    cones.append((joints[5], joints[17], W * 0.13 * th, W * 0.12 * th, 0))  # knuckle ridge
    cones.append((np.array([-0.2 * W, 0.05 * palm_len, 0.0]), np.array([0.2 * W, 0.05 * palm_len, 0.0]),
                  W * 0.16 * th, W * 0.16 * th, 0))  # fmt: skip
    cones.append((np.array([0.1 * W, 0.25 * palm_len, 0.1 * W]), joints[2], W * 0.17 * th, rt * 1.15, 0))

    a = np.array([c[0] for c in cones])
    b = np.array([c[1] for c in cones])
    geom = HandGeometry(
        joints=joints,
        cone_a=a,
        cone_b=b,
        radius_a=np.array([c[2] for c in cones]),
        radius_b=np.array([c[3] for c in cones]),
        part=np.array([c[4] for c in cones], dtype=np.int64),
        palm_normal=np.array([0.0, 0.0, 1.0]),
    )
    if left:
        m = np.diag([-1.0, 1.0, 1.0])
        geom = HandGeometry(
            geom.joints @ m, geom.cone_a @ m, geom.cone_b @ m, geom.radius_a, geom.radius_b, geom.part,
            geom.palm_normal,
        )  # fmt: skip
    return geom
