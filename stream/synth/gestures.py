"""The gesture vocabulary for embedding learning: 33 static hand shapes in 7 coarse groups, split into
classes the embedding trains on and classes it never sees (seed 001 §4 splits Stanford Cars the same way:
disjoint fine classes, coarse classes on both sides).

The scene generator keeps its own 14-gesture vocabulary (`hand.GESTURES_FINE`) so that every pose dataset
and test set it makes stays as it was; this larger one reuses those 14 shapes and adds fingerspelling
handshapes, counting variants, precision and power grips and signs. Pose parameters are in degrees, in the
order of `hand.LIMITS_DEG`: for index, middle, ring, pinky (MCP flexion, MCP abduction towards the thumb,
PIP flexion, DIP flexion), then the thumb (CMC flexion across the palm, CMC abduction out of the palm plane,
MCP flexion, IP flexion).
"""

from __future__ import annotations

import numpy as np

from .hand import GESTURE_POSES_DEG, N_POSE, clip_pose, hand_joints_local, hand_shape

_E = (0.0, 0.0, 0.0, 0.0)  # extended finger
_C = (88.0, 0.0, 100.0, 65.0)  # curled into the fist
_T_OUT = (-10.0, 20.0, 0.0, 0.0)  # thumb out in the palm plane
_T_FIST = (35.0, 25.0, 40.0, 35.0)  # thumb over the curled fingers
_T_UP = (-10.0, 40.0, 0.0, 0.0)  # thumb raised


def _p(index, middle, ring, pinky, thumb, abduction=(0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """A pose vector; `abduction` adds to each finger's MCP abduction (+ = towards the thumb)."""
    v = np.array([*index, *middle, *ring, *pinky, *thumb], dtype=np.float64)
    v[[1, 5, 9, 13]] += np.asarray(abduction, dtype=np.float64)
    return v


def _spread(s: float) -> tuple[float, float, float, float]:
    return (1.0 * s, 0.3 * s, -0.4 * s, -1.0 * s)  # fingers fanning out from the middle one


# fine name -> (coarse group, pose in degrees)
VOCABULARY: dict[str, tuple[str, np.ndarray]] = {
    # open hands
    "open_palm": ("open", GESTURE_POSES_DEG["open_palm"]),
    "four": ("open", GESTURE_POSES_DEG["four"]),
    "relaxed": ("open", GESTURE_POSES_DEG["relaxed"]),
    "flat_together": ("open", _p(_E, _E, _E, _E, (10.0, 5.0, 5.0, 0.0), _spread(-6.0))),
    # closed hands
    "fist": ("closed", GESTURE_POSES_DEG["fist"]),
    "thumbs_up": ("closed", GESTURE_POSES_DEG["thumbs_up"]),
    "fist_thumb_in": ("closed", _p(_C, _C, _C, _C, (55.0, 5.0, 50.0, 60.0))),
    "knuckles_bent": ("closed", _p(*([(85.0, 0.0, 0.0, 0.0)] * 4), (10.0, 10.0, 0.0, 0.0))),
    # counting
    "point": ("counting", GESTURE_POSES_DEG["point"]),
    "victory": ("counting", GESTURE_POSES_DEG["victory"]),
    "three": ("counting", GESTURE_POSES_DEG["three"]),
    "three_thumb": ("counting", _p(_E, _E, _C, _C, _T_OUT, _spread(10.0))),
    "pinky_up": ("counting", _p(_C, _C, _C, _E, _T_FIST)),
    # precision grips
    "ok": ("precision", GESTURE_POSES_DEG["ok"]),
    "pinch": ("precision", GESTURE_POSES_DEG["pinch"]),
    "c_shape": ("precision", GESTURE_POSES_DEG["c_shape"]),
    "tripod": (
        "precision",
        _p((40.0, 0.0, 50.0, 30.0), (45.0, 0.0, 55.0, 35.0), _C, _C, (25.0, 35.0, 15.0, 15.0)),
    ),
    "key_grip": ("precision", _p(*([(70.0, 0.0, 90.0, 50.0)] * 4), (0.0, 5.0, 20.0, 10.0))),
    "o_shape": ("precision", _p(*([(50.0, 0.0, 60.0, 40.0)] * 4), (20.0, 40.0, 15.0, 15.0))),
    # signs
    "call": ("sign", GESTURE_POSES_DEG["call"]),
    "rock": ("sign", GESTURE_POSES_DEG["rock"]),
    "l_shape": ("sign", GESTURE_POSES_DEG["l_shape"]),
    "love_you": ("sign", _p(_E, _C, _C, _E, _T_OUT, _spread(10.0))),
    "gun": ("sign", _p(_E, _E, _C, _C, _T_UP, _spread(-3.0))),
    "vulcan": ("sign", _p(_E, _E, _E, _E, _T_OUT, (0.0, 6.0, -8.0, -3.0))),
    # power grips
    "cylinder_grip": ("grasp", _p(*([(45.0, 0.0, 60.0, 30.0)] * 4), (15.0, 45.0, 15.0, 10.0))),
    "sphere_grip": ("grasp", _p(*([(30.0, 0.0, 40.0, 30.0)] * 4), (10.0, 50.0, 10.0, 10.0), _spread(12.0))),
    "hook_grip": ("grasp", _p(*([(0.0, 0.0, 95.0, 70.0)] * 4), _T_OUT)),
    "claw": ("grasp", _p(*([(20.0, 0.0, 80.0, 60.0)] * 4), (5.0, 45.0, 30.0, 30.0), _spread(12.0))),
    # fingerspelling handshapes (ASL letters that a static skeleton can show)
    "letter_b": ("fingerspelling", _p(_E, _E, _E, _E, (50.0, 20.0, 40.0, 30.0), _spread(-6.0))),
    "letter_e": ("fingerspelling", _p(*([(60.0, 0.0, 100.0, 75.0)] * 4), (50.0, 10.0, 40.0, 50.0))),
    "letter_x": ("fingerspelling", _p((20.0, 0.0, 80.0, 60.0), _C, _C, _C, _T_FIST)),
    "letter_u": ("fingerspelling", _p(_E, _E, _C, _C, _T_FIST, _spread(-3.0))),
}
FINE: tuple[str, ...] = tuple(VOCABULARY)
COARSE: tuple[str, ...] = tuple(dict.fromkeys(c for c, _ in VOCABULARY.values()))
FINE_TO_COARSE: np.ndarray = np.array([COARSE.index(VOCABULARY[f][0]) for f in FINE], dtype=np.int64)
FINE_TO_COARSE.setflags(write=False)

# Classes the embedding never trains on: two of every coarse group, so each group is on both sides.
UNSEEN: tuple[str, ...] = (
    "relaxed",
    "flat_together",
    "fist_thumb_in",
    "knuckles_bent",
    "three_thumb",
    "pinky_up",
    "key_grip",
    "o_shape",
    "gun",
    "vulcan",
    "hook_grip",
    "claw",
    "letter_x",
    "letter_u",
)
TRAIN: tuple[str, ...] = tuple(f for f in FINE if f not in UNSEEN)


def vocabulary_pose(fine: str, rng: np.random.Generator, jitter_deg: float = 7.0) -> np.ndarray:
    """A vocabulary gesture's pose with per-sample variation, clipped to the anatomical limits (the scene
    generator's `hand.gesture_pose` for this larger vocabulary)."""
    if fine not in VOCABULARY:
        raise ValueError(f"unknown gesture {fine!r}")
    return clip_pose(VOCABULARY[fine][1] + rng.normal(0.0, jitter_deg, N_POSE))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly (a normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def gesture_joints(
    fine: str,
    rng: np.random.Generator,
    subject: int | None = None,
    left: bool | None = None,
    jitter_deg: float = 7.0,
    noise_mm: float = 0.0,
) -> np.ndarray:
    """(21, 3) camera-frame joints in mm of one sample of gesture `fine`: a subject's hand (random when
    None), either hand (random when None), the shape varied by `jitter_deg` per angle, turned uniformly at
    random, 300-700 mm in front of the camera, and `noise_mm` of Gaussian noise per joint coordinate (what
    a pose engine's error does to a skeleton)."""
    shape = hand_shape(int(rng.integers(1 << 30)) if subject is None else subject)
    is_left = bool(rng.random() < 0.5) if left is None else bool(left)
    pose = vocabulary_pose(fine, rng, jitter_deg)
    local = hand_joints_local(shape, pose, left=is_left).joints
    trans = np.array([rng.uniform(-150, 150), rng.uniform(-100, 100), rng.uniform(300, 700)])
    joints = local @ random_rotation(rng).T + trans
    if noise_mm > 0:
        joints = joints + rng.normal(0.0, noise_mm, joints.shape)
    return joints.astype(np.float32)


def gesture_dataset(
    classes: tuple[str, ...] | list[str],
    per_class: int,
    seed: int,
    noise_mm: float = 0.0,
    jitter_deg: float = 7.0,
) -> dict[str, np.ndarray]:
    """`per_class` samples of each class: joints (N, 21, 3) mm, fine and coarse names (N,), left (N,)."""
    rng = np.random.default_rng(seed)
    joints, fine, left = [], [], []
    for name in classes:
        for _ in range(int(per_class)):
            is_left = bool(rng.random() < 0.5)
            joints.append(gesture_joints(name, rng, left=is_left, jitter_deg=jitter_deg, noise_mm=noise_mm))
            fine.append(name)
            left.append(is_left)
    fine_a = np.array(fine)
    return {
        "joints_xyz_mm": np.stack(joints),
        "label": fine_a,
        "coarse": np.array([VOCABULARY[f][0] for f in fine_a]),
        "left": np.array(left),
    }


def render_gesture(synth, fine: str, k: int, jitter_deg: float = 7.0):
    """A rendered frame of gesture `fine` (any vocabulary shape, not only the scene generator's): the k-th
    random scene of `synth` (a HandSynthesizer: its camera, subjects, arm and clutter) with the hand's pose
    replaced. Returns the SynthSample with gesture labels set to -1 (they index the scene vocabulary; the
    caller knows the name)."""
    from dataclasses import replace

    rng = np.random.default_rng([synth.seed, 5, int(k)])
    subject = int(rng.integers(synth.config.n_subjects))
    shape = hand_shape(subject, synth.config.child_fraction)
    state = synth._random_state(rng, shape)
    state = replace(state, pose_deg=vocabulary_pose(fine, rng, jitter_deg))
    ctx = synth._context(rng, shape, state, None)
    s = synth._render(rng, shape, state, ctx, None, sequence=-1, frame_index=int(k), timestamp_ms=0.0)
    return replace(s, gesture_fine=-1, gesture_coarse=-1)


def gesture_crops(
    classes: tuple[str, ...] | list[str], per_class: int, seed: int, size: int = 64, cube_mm: float = 250.0
) -> dict[str, np.ndarray]:
    """Normalised depth crops (N, 1, size, size) of rendered gestures, cut around the hand's true centre
    (the mean of its joints) with the runtime's own `crop_cube`, for the depth-crop embedding."""
    from ..frames import camera
    from ..preprocess import crop_cube
    from .scene import HandSynthesizer, SceneConfig

    synth = HandSynthesizer(SceneConfig(camera=camera("d435_320x240")), seed=seed)
    crops, labels = [], []
    k = 0
    for name in classes:
        for _ in range(int(per_class)):
            s = render_gesture(synth, name, k)
            k += 1
            f = s.frame
            mask = s.mask & (f.depth_mm > 0)
            c = crop_cube(f.depth_mm, f.intrinsics, s.joints_xyz_mm.mean(0), cube_mm, size, mask)
            crops.append(c.depth[None])
            labels.append(name)
    fine = np.array(labels)
    return {
        "crops": np.stack(crops).astype(np.float32),
        "label": fine,
        "coarse": np.array([VOCABULARY[f][0] for f in fine]),
    }
