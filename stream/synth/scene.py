"""Scenes around the hand and the generator itself: SceneConfig, HandSynthesizer, SynthSample.

A frame is: a subject's hand (shape fixed by subject id) in a gesture, held at the end of a forearm that
enters the image from some side (attached to a torso when `body`), in front of a wall, with distractors
both behind AND in front of the hand (desk edge, chair back, cup, random clutter). Everything is rendered
exactly by ray casting (render.py), then passed through the depth-sensor model (sensor.py) and shaded.

Randomness: sample k and sequence s each draw from their own generator seeded by (seed, kind, k), so
the same seed gives the same bytes, and a frame does not depend on how many frames came before it.

Orientation label convention (deliberately not seed 004's acos(n_x), acos(n_y), which is ambiguous
beyond a hemisphere): n is the unit palm normal (out of the palm) in camera coordinates (x right, y
down, z forward). azimuth_deg = atan2(n_x, -n_z): 0 when the palm faces the camera, +90 when it faces
the image's right, +-180 when the back of the hand faces the camera. elevation_deg = asin(-n_y):
+90 when the palm faces up, -90 down.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ..errors import InputError
from ..frames import KNOWN_CAMERAS, CameraIntrinsics, RGBDFrame
from ..geometry import xyz_to_uvd
from .anthropometry import ANTHROPOMETRY_MODELS
from .hand import (
    FINE_TO_COARSE,
    GESTURES_FINE,
    HandGeometry,
    HandShape,
    clip_pose,
    gesture_pose,
    hand_joints_local,
    hand_shape,
)
from .render import Rays, ZBuffer, cast_boxes, cast_plane, cast_round_cones
from .scenes import (
    SCENE_KINDS,
    HeldObject,
    Table,
    close_state_params,
    distance_range,
    draw_held,
    draw_held_kind,
    draw_table,
    grip_gestures,
    held_prims,
    move_key,
    pick_kind,
    second_hand_centre,
    table_clutter,
)
from .sensor import SensorModel, apply_sensor

# written into datasets and the bench's cached clips: 1.1 keeps a two-hand sequence's second hand on the side
# of the first it started on (1.0 drew the side afresh at every key, and the hands passed through each other)
GENERATOR_VERSION = "synth-1.1"

# material ids in the label buffer (materials >= M_OBJECT are distractors)
M_WALL, M_HAND, M_ARM, M_HAND2, M_ARM2, M_BODY, M_HEAD, M_OBJECT = 0, 1, 2, 3, 4, 5, 6, 7


@dataclass(frozen=True)
class SceneConfig:
    """What a generated scene contains. Distances in mm, probabilities per frame (per sequence)."""

    camera: CameraIntrinsics = KNOWN_CAMERAS["d435_320x240"]
    body: bool = True
    forearm: bool = True
    distractors: bool = True
    two_hands: bool = False
    color: bool = True
    hand_distance_mm: tuple[float, float] = (300.0, 700.0)
    n_subjects: int = 40
    child_fraction: float = 0.2
    anthropometry: str = "uniform"  # subjects' hand sizes: "uniform" ranges or "ansur" (ANSUR II, adults)
    occluder_prob: float = 0.3  # an object between the camera and the hand
    desk_prob: float = 0.45
    palm_facing_prob: float = 0.6  # bias the palm towards the camera (a demo user shows the palm)
    background_scale: int = 2  # things behind the hands are cast at 1/this resolution (1 = all exact)
    sensor: SensorModel = field(default_factory=SensorModel)
    # scene kinds (scenes.py): "frontal" (a user facing the camera; unchanged by the options below),
    # "egocentric" (camera over a table), "desk" (camera forward over a desk), "mixed" (one of the three per
    # sequence or independent frame). Close-range kinds put the hands at close_distance_mm and give them a
    # bottle, cup, box or phone to hold with held_object_prob (per sequence).
    scene_kind: str = "frontal"
    close_distance_mm: tuple[float, float] = (200.0, 500.0)
    held_object_prob: float = 0.6
    # frontal scenes only: the hand does what `handstream calibrate` asks of the user -- open, palm to the
    # camera, raised and held nearly still (a sequence sways a few mm and degrees). For measuring hand-size
    # calibration as a user performs it; off, the frontal scenes draw what they always drew
    calibration_pose: bool = False
    # False: the same scenes with the hands, forearms and the raised arms' sleeves left out of the picture
    # (what the camera sees while the user's hands are down or out of view; an arm cut at the elbow would
    # look like a fist), the random draws unchanged; every detection there is a false one
    hands_visible: bool = True

    def __post_init__(self) -> None:
        lo, hi = self.hand_distance_mm
        if not 100.0 <= lo <= hi <= 5000.0:
            raise InputError(
                f"hand_distance_mm must be 100 <= near <= far <= 5000, got {self.hand_distance_mm}"
            )
        if self.background_scale not in (1, 2, 4):
            raise InputError(f"background_scale must be 1, 2 or 4, got {self.background_scale}")
        if self.n_subjects < 1:
            raise InputError(f"n_subjects must be >= 1, got {self.n_subjects}")
        if self.scene_kind not in SCENE_KINDS:
            raise InputError(f"scene_kind must be one of {', '.join(SCENE_KINDS)}, got {self.scene_kind!r}")
        lo, hi = self.close_distance_mm
        if not 100.0 <= lo <= hi <= 5000.0:
            raise InputError(
                f"close_distance_mm must be 100 <= near <= far <= 5000, got {self.close_distance_mm}"
            )
        if not 0.0 <= self.held_object_prob <= 1.0:
            raise InputError(f"held_object_prob must lie in [0, 1], got {self.held_object_prob}")
        if self.anthropometry not in ANTHROPOMETRY_MODELS:
            raise InputError(
                f"anthropometry must be one of {', '.join(ANTHROPOMETRY_MODELS)}, got {self.anthropometry!r}"
            )

    def to_dict(self) -> dict:
        return {
            "camera": self.camera.to_dict(),
            "body": self.body,
            "forearm": self.forearm,
            "distractors": self.distractors,
            "two_hands": self.two_hands,
            "color": self.color,
            "hand_distance_mm": list(self.hand_distance_mm),
            "n_subjects": self.n_subjects,
            "child_fraction": self.child_fraction,
            "anthropometry": self.anthropometry,
            "occluder_prob": self.occluder_prob,
            "desk_prob": self.desk_prob,
            "palm_facing_prob": self.palm_facing_prob,
            "background_scale": self.background_scale,
            "sensor": {k: getattr(self.sensor, k) for k in self.sensor.__dataclass_fields__},
            "scene_kind": self.scene_kind,
            "close_distance_mm": list(self.close_distance_mm),
            "held_object_prob": self.held_object_prob,
            "calibration_pose": self.calibration_pose,
            "hands_visible": self.hands_visible,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SceneConfig:
        d = dict(d)
        cam = CameraIntrinsics.from_dict(d.pop("camera"))
        sensor = SensorModel(**d.pop("sensor", {}))
        d["hand_distance_mm"] = tuple(d.get("hand_distance_mm", (300.0, 700.0)))
        if "close_distance_mm" in d:
            d["close_distance_mm"] = tuple(d["close_distance_mm"])
        return cls(camera=cam, sensor=sensor, **d)


@dataclass(frozen=True)
class OtherHand:
    """A second hand in the frame (two_hands): its visible pixels and joints, for segmentation tests."""

    mask: np.ndarray
    joints_xyz_mm: np.ndarray
    joints_uvd: np.ndarray


@dataclass(frozen=True)
class SynthSample:
    """One labelled synthetic frame. `mask` is the hand's geometrically visible pixels (wrist, palm,
    fingers; not the forearm), after occlusion by anything in front, whether or not the sensor
    returned depth there: use `mask & (frame.depth_mm > 0)` for the measured hand pixels."""

    frame: RGBDFrame
    mask: np.ndarray  # (H, W) bool
    joints_xyz_mm: np.ndarray  # (21, 3) float32
    joints_uvd: np.ndarray  # (21, 3) float32
    orientation_deg: np.ndarray  # (2,) azimuth, elevation of the palm normal (see module docstring)
    hand_size_mm: np.ndarray  # (2,) hand length, palm width
    gesture_fine: int
    gesture_coarse: int
    subject: int
    sequence: int
    frame_index: int
    other_hands: tuple[OtherHand, ...] = ()
    # what each pixel shows (M_* ids; >= M_OBJECT objects, `frame.meta["held_material"]` the held one):
    # lets an evaluation tell a detection on the hand from one on an object
    material: np.ndarray | None = None
    scene_kind: str = "frontal"


# ------------------------------------------------------------------------------------------ hand state
@dataclass(frozen=True)
class HandState:
    """Everything that moves: where the palm centre is and how the arm, wrist and fingers are posed."""

    center_mm: np.ndarray  # (3,) palm centre in camera coordinates
    arm_phi_deg: float  # image-plane direction the forearm points (elbow -> wrist), 0 = +x, 90 = +y
    arm_theta_deg: float  # how much the forearm points towards the camera
    roll_deg: float  # rotation of the forearm about its axis (pronation / supination)
    wrist_flex_deg: float
    wrist_dev_deg: float
    pose_deg: np.ndarray  # (20,)
    gesture: int

    def vector(self) -> np.ndarray:
        head = [self.arm_phi_deg, self.arm_theta_deg, self.roll_deg, self.wrist_flex_deg, self.wrist_dev_deg]
        return np.concatenate([self.center_mm, head, self.pose_deg])

    @classmethod
    def from_vector(cls, v: np.ndarray, gesture: int) -> HandState:
        return cls(v[0:3].copy(), *map(float, v[3:8]), v[8:28].copy(), gesture)


def _rodrigues(axis: np.ndarray, angle: float) -> np.ndarray:
    rv = (np.asarray(axis, np.float64) * angle).reshape(3, 1)
    return cv2.Rodrigues(rv)[0]


def _arm_dir(phi_deg: float, theta_deg: float) -> np.ndarray:
    p, t = np.radians(phi_deg), np.radians(theta_deg)
    return np.array([np.cos(t) * np.cos(p), np.cos(t) * np.sin(p), -np.sin(t)])


def hand_rotation(state: HandState) -> np.ndarray:
    """Rotation hand-local -> camera: forearm frame (y along the forearm), rolled, then the wrist."""
    from .hand import rot_x, rot_z

    f = _arm_dir(state.arm_phi_deg, state.arm_theta_deg)
    ref = np.array([0.0, 0.0, 1.0]) if abs(f[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x0 = np.cross(f, ref)
    x0 /= np.linalg.norm(x0)
    z0 = np.cross(x0, f)
    base = np.stack([x0, f, z0], axis=1)
    rf = _rodrigues(f, np.radians(state.roll_deg)) @ base
    return rf @ rot_x(np.radians(state.wrist_flex_deg)) @ rot_z(np.radians(state.wrist_dev_deg))


@dataclass(frozen=True)
class PosedHand:
    geom: HandGeometry  # camera frame
    elbow_mm: np.ndarray
    arm_cones: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # a, b, ra, rb


def pose_hand(shape: HandShape, state: HandState, left: bool = False) -> PosedHand:
    local = hand_joints_local(shape, state.pose_deg, left=left)
    rot = hand_rotation(state)
    c_loc = 0.5 * (local.joints[0] + local.joints[9])
    trans = state.center_mm - rot @ c_loc
    geom = local.transformed(rot, trans)
    f = _arm_dir(state.arm_phi_deg, state.arm_theta_deg)
    wrist = geom.joints[0]
    elbow = wrist - f * 1.35 * shape.length_mm
    side = rot[:, 0]  # radial axis of the hand: radius and ulna lie side by side along it
    w = shape.width_mm
    a = np.stack(
        [
            wrist - f * 0.03 * shape.length_mm + side * 0.12 * w,
            wrist - f * 0.03 * shape.length_mm - side * 0.12 * w,
        ]
    )
    b = np.stack([elbow + side * 0.1 * w, elbow - side * 0.1 * w])
    ra = np.array([0.2, 0.19]) * w * shape.thickness_scale
    rb = np.array([0.33, 0.3]) * w * shape.thickness_scale
    return PosedHand(geom, elbow, (a, b, ra, rb))


def orientation_deg(palm_normal: np.ndarray) -> np.ndarray:
    n = palm_normal / np.linalg.norm(palm_normal)
    az = np.degrees(np.arctan2(n[0], -n[2]))
    el = np.degrees(np.arcsin(np.clip(-n[1], -1.0, 1.0)))
    return np.array([az, el], dtype=np.float32)


# -------------------------------------------------------------------------------------------- the scene
def _lighting(rng: np.random.Generator, shape: HandShape, obj_colors: list) -> dict:
    """Colours (wall, skin of hands and arms, clothing, head skin, then the objects'), light and texture:
    the _Context fields every scene kind draws last, in this order."""
    albedo: list = [None] * M_OBJECT
    skin = np.array(shape.skin_bgr, np.float64) / 255.0
    albedo[M_WALL] = rng.uniform(0.3, 0.95, 3)
    albedo[M_HAND] = skin
    albedo[M_ARM] = skin * rng.uniform(0.95, 1.05)
    albedo[M_HAND2] = skin
    albedo[M_ARM2] = skin * rng.uniform(0.95, 1.05)
    albedo[M_BODY] = rng.uniform(0.05, 0.9, 3)
    albedo[M_HEAD] = skin
    albedo_bgr = np.array(albedo + obj_colors, np.float32)
    light = np.array([rng.normal(0, 0.6), rng.normal(-0.5, 0.5), 1.0])
    return {
        "albedo_bgr": np.clip(albedo_bgr, 0.0, 1.0),
        "light_dir": light / np.linalg.norm(light),
        "ambient": float(rng.uniform(0.25, 0.5)),
        "texture_seed": int(rng.integers(2**31)),
    }


@dataclass
class _Prims:
    """Primitives of one scene, by kind, with material ids."""

    cone_a: list = field(default_factory=list)
    cone_b: list = field(default_factory=list)
    cone_ra: list = field(default_factory=list)
    cone_rb: list = field(default_factory=list)
    cone_m: list = field(default_factory=list)
    box_c: list = field(default_factory=list)
    box_r: list = field(default_factory=list)
    box_h: list = field(default_factory=list)
    box_m: list = field(default_factory=list)
    cone_fg: list = field(default_factory=list)
    box_fg: list = field(default_factory=list)
    far_fg_mm: float = np.inf  # primitives entirely behind this depth may be rendered at low resolution

    def cone(self, a, b, ra, rb, m, fg: bool | None = None) -> None:
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        if fg is None:
            zmin = float(np.minimum(a[:, 2] - ra, b[:, 2] - rb).min())
            fg = zmin <= self.far_fg_mm
        self.cone_fg.append(np.full(len(a), fg))
        self.cone_a.append(a)
        self.cone_b.append(b)
        self.cone_ra.append(np.broadcast_to(np.asarray(ra, np.float64), (len(a),)))
        self.cone_rb.append(np.broadcast_to(np.asarray(rb, np.float64), (len(a),)))
        self.cone_m.append(np.full(len(a), m, np.int16))

    def box(self, c, r, h, m) -> None:
        zmin = float(c[2] - (np.abs(np.asarray(r)) @ np.asarray(h))[2])
        self.box_fg.append(zmin <= self.far_fg_mm)
        self.box_c.append(np.asarray(c, np.float64))
        self.box_r.append(np.asarray(r, np.float64))
        self.box_h.append(np.asarray(h, np.float64))
        self.box_m.append(m)


@dataclass(frozen=True)
class _Context:
    """The static part of a scene (fixed over a sequence): wall, body anchor, distractors, colours."""

    wall_point: np.ndarray
    wall_normal: np.ndarray
    body: bool
    shoulder_mm: np.ndarray | None  # the hand's shoulder
    body_side: float  # +1: torso to the image right of the shoulder
    boxes: tuple  # ((c, R, half, material), ...)
    cones: tuple  # ((a, b, ra, rb, material), ...)
    albedo_bgr: np.ndarray  # (n_materials, 3) float32 in [0, 1]
    light_dir: np.ndarray
    ambient: float
    texture_seed: int
    kind: str = "frontal"
    held: HeldObject | None = None
    table: Table | None = None


def _random_rot(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return _rodrigues(axis, np.radians(rng.uniform(-max_deg, max_deg)))


class HandSynthesizer:
    """Random labelled RGB-D hand frames and smooth sequences for a SceneConfig, deterministic by seed."""

    def __init__(self, config: SceneConfig | None = None, seed: int = 0):
        self.config = config or SceneConfig()
        if int(seed) != seed or seed < 0:  # numpy's SeedSequence takes only non-negative integers
            raise InputError(f"seed must be an integer >= 0, got {seed}")
        self.seed = int(seed)
        cam = self.config.camera
        self.rays = Rays.for_camera(cam)
        self._grid = tuple(
            g.astype(np.float32) for g in np.meshgrid(np.arange(cam.width), np.arange(cam.height))
        )
        f = self.config.background_scale
        self._bg_scale = f if (cam.width % f == 0 and cam.height % f == 0) else 1
        self._bg_rays = (
            self.rays
            if self._bg_scale == 1
            else Rays.for_camera(cam.scaled(cam.width // self._bg_scale, cam.height // self._bg_scale))
        )
        self._n_samples = 0
        self._n_sequences = 0

    # ---------------------------------------------------------------------------------- public API
    def sample(self) -> SynthSample:
        """An independent random frame (the k-th call draws from its own generator)."""
        k = self._n_samples
        self._n_samples += 1
        return self.sample_at(k)

    def sample_at(self, k: int) -> SynthSample:
        """The k-th independent frame of this seed, without advancing anything."""
        rng = np.random.default_rng([self.seed, 0, int(k)])
        subject = int(rng.integers(self.config.n_subjects))
        shape = hand_shape(subject, self.config.child_fraction, self.config.anthropometry)
        kind = pick_kind(self.config.scene_kind, self.seed, 0, k)
        state, states2, ctx, _ = self._start(rng, shape, kind)
        return self._render(rng, shape, state, ctx, states2, sequence=-1, frame_index=k, timestamp_ms=0.0)

    def sequence(self, n_frames: int, fps: float = 30.0) -> Iterator[SynthSample]:
        """A smooth sequence: keyframes every 0.6-2 s, eased transitions between gestures and poses,
        one subject and one scene throughout (bone lengths constant).

        Lazy: keyframes are drawn as the sequence reaches them, from a generator of their own, and only the
        two around the current frame are kept, so the first frame comes at once and memory stays flat
        whatever `n_frames` is; a longer sequence of the same seed starts with the same frames."""
        if not n_frames >= 1 or not (fps > 0 and np.isfinite(fps)):
            raise InputError(f"sequence needs n_frames >= 1 and a finite fps > 0, got {n_frames}, {fps}")
        s = self._n_sequences
        self._n_sequences += 1
        rng = np.random.default_rng([self.seed, 1, s])
        key_rng = np.random.default_rng([self.seed, 3, s])  # keyframes after the first, drawn on demand
        subject = int(rng.integers(self.config.n_subjects))
        shape = hand_shape(subject, self.config.child_fraction, self.config.anthropometry)
        two = self.config.two_hands
        kind = pick_kind(self.config.scene_kind, self.seed, 1, s)
        key_a, key_a2, ctx, grips = self._start(rng, shape, kind)
        hold = rng.uniform(0.2, 0.5)  # fraction of each interval the pose holds before moving on
        t_a, t_b = 0.0, float(key_rng.uniform(0.6, 2.0))
        key_b = self._next_key(key_rng, shape, key_a, kind, grips)
        # the second hand stays on the side of the first it started on: drawn afresh at every key, it passed
        # through the first hand whenever the draw changed sides, which no real pair of hands does
        side = float(np.sign(key_a2.center_mm[0] - key_a.center_mm[0]) or 1.0) if two else 1.0
        key_b2 = self._second_hand(key_rng, shape, key_b, kind, side) if two else None
        for i in range(int(n_frames)):
            t = i / fps
            while t >= t_b:  # move on to the next interval
                t_a, key_a, key_a2 = t_b, key_b, key_b2
                t_b += float(key_rng.uniform(0.6, 2.0))
                key_b = self._next_key(key_rng, shape, key_a, kind, grips)
                key_b2 = self._second_hand(key_rng, shape, key_b, kind, side) if two else None
            a = np.clip((t - t_a) / (t_b - t_a), 0.0, 1.0)
            e = np.clip((a - hold) / (1.0 - hold), 0.0, 1.0)
            e = e * e * (3.0 - 2.0 * e)  # smoothstep: zero velocity at both keys
            st = self._lerp(key_a, key_b, e)
            st2 = self._lerp(key_a2, key_b2, e) if two else None
            frame_rng = np.random.default_rng([self.seed, 2, s, i])
            yield self._render(
                frame_rng, shape, st, ctx, st2, sequence=s, frame_index=i, timestamp_ms=1000.0 * t
            )

    def _start(self, rng: np.random.Generator, shape: HandShape, kind: str):
        """(first hand state, second hand state or None, context, grip gestures or None) of a frame or
        sequence of one scene kind. Frontal scenes draw exactly what they always drew, in that order."""
        two = self.config.two_hands
        if kind == "frontal":
            state = self._random_state(rng, shape)
            state2 = self._second_hand(rng, shape, state) if two else None
            return state, state2, self._context(rng, shape, state, state2), None
        held = draw_held_kind(rng) if rng.random() < self.config.held_object_prob else None
        grips = grip_gestures(held)
        state = self._random_state(rng, shape, kind, grips)
        state2 = self._second_hand(rng, shape, state, kind) if two else None
        return state, state2, self._close_context(rng, shape, state, state2, kind, held), grips

    # ------------------------------------------------------------------------------- hand states
    def _random_state(
        self, rng: np.random.Generator, shape: HandShape, kind: str = "frontal", grips=None
    ) -> HandState:
        cfg = self.config
        if kind != "frontal":
            g, pose, center, phi, theta, flex, dev = close_state_params(
                rng, kind, cfg.camera, cfg.close_distance_mm, grips
            )
            st = HandState(center, phi, theta, 0.0, flex, dev, pose, g)
            # the back of the hand towards the camera more often than not (a hand reaching for things)
            roll = self._palm_facing_roll(st) + 180.0 + rng.normal(0.0, 60.0)
            return replace(st, roll_deg=float(roll))
        if cfg.calibration_pose:
            return self._calibration_state(rng)
        gesture = int(rng.integers(len(GESTURES_FINE)))
        pose = gesture_pose(gesture, rng)
        z = rng.uniform(*cfg.hand_distance_mm)
        intr = cfg.camera
        u = rng.uniform(0.2, 0.8) * intr.width
        v = rng.uniform(0.2, 0.8) * intr.height
        center = np.array([(u - intr.cx) * z / intr.fx, (v - intr.cy) * z / intr.fy, z])
        # the forearm comes from below half the time (a raised hand), otherwise from any side
        if rng.random() < 0.5:
            phi = -90.0 + rng.normal(0.0, 30.0)
        else:
            phi = rng.uniform(-180.0, 180.0)
        theta = rng.uniform(-15.0, 65.0)
        flex = float(np.clip(rng.normal(0.0, 20.0), -60.0, 60.0))
        dev = float(np.clip(rng.normal(0.0, 10.0), -25.0, 25.0))
        st = HandState(center, phi, theta, 0.0, flex, dev, pose, gesture)
        if rng.random() < cfg.palm_facing_prob:
            roll = self._palm_facing_roll(st) + rng.normal(0.0, 35.0)
        else:
            roll = rng.uniform(-180.0, 180.0)
        return replace(st, roll_deg=float(roll))

    def _calibration_state(self, rng: np.random.Generator) -> HandState:
        """What `handstream calibrate` asks for: an open hand (open_palm, with the usual per-sample
        variation of 7 degrees a joint), raised (forearm from below, within 20 degrees), palm to the camera
        (within 15 degrees of roll), the wrist nearly straight, anywhere in the middle of the view."""
        cfg, intr = self.config, self.config.camera
        gesture = GESTURES_FINE.index("open_palm")
        pose = gesture_pose(gesture, rng)
        z = rng.uniform(*cfg.hand_distance_mm)
        u = rng.uniform(0.3, 0.7) * intr.width
        v = rng.uniform(0.3, 0.6) * intr.height
        center = np.array([(u - intr.cx) * z / intr.fx, (v - intr.cy) * z / intr.fy, z])
        phi = -90.0 + float(np.clip(rng.normal(0.0, 10.0), -20.0, 20.0))
        theta = rng.uniform(-10.0, 30.0)
        flex = float(np.clip(rng.normal(0.0, 10.0), -25.0, 25.0))
        dev = float(np.clip(rng.normal(0.0, 5.0), -15.0, 15.0))
        st = HandState(center, phi, theta, 0.0, flex, dev, pose, gesture)
        roll = self._palm_facing_roll(st) + float(np.clip(rng.normal(0.0, 8.0), -15.0, 15.0))
        return replace(st, roll_deg=roll)

    @staticmethod
    def _sway(rng: np.random.Generator, prev: HandState) -> HandState:
        """The next key of a hand held for calibration: the same gesture, a few mm and degrees away."""
        return replace(
            prev,
            center_mm=prev.center_mm + rng.normal(0.0, [8.0, 8.0, 10.0]),
            arm_phi_deg=prev.arm_phi_deg + float(rng.normal(0.0, 3.0)),
            arm_theta_deg=prev.arm_theta_deg + float(rng.normal(0.0, 3.0)),
            roll_deg=prev.roll_deg + float(rng.normal(0.0, 4.0)),
            wrist_flex_deg=prev.wrist_flex_deg + float(rng.normal(0.0, 3.0)),
            wrist_dev_deg=prev.wrist_dev_deg + float(rng.normal(0.0, 2.0)),
            pose_deg=clip_pose(prev.pose_deg + rng.normal(0.0, 2.0, prev.pose_deg.shape)),
        )

    @staticmethod
    def _palm_facing_roll(st: HandState) -> float:
        """The forearm roll that turns the palm normal most towards the camera (min n_z), in closed
        form: rolling by psi about the forearm axis f moves n0 as Rodrigues' formula says."""
        f = _arm_dir(st.arm_phi_deg, st.arm_theta_deg)
        n0 = hand_rotation(replace(st, roll_deg=0.0))[:, 2]
        a = n0[2] - f[2] * np.dot(f, n0)
        b = f[0] * n0[1] - f[1] * n0[0]  # (f x n0)_z
        return float(np.degrees(np.arctan2(-b, -a)))

    def _next_key(
        self, rng: np.random.Generator, shape: HandShape, prev: HandState, kind: str = "frontal", grips=None
    ) -> HandState:
        cfg, intr = self.config, self.config.camera
        if cfg.calibration_pose and kind == "frontal":
            return self._sway(rng, prev)
        gesture = move_key(rng, prev.gesture, grips)
        pose = gesture_pose(gesture, rng)
        c = prev.center_mm + rng.normal(0.0, [50.0, 40.0, 50.0])
        c[2] = np.clip(c[2], *distance_range(kind, cfg.hand_distance_mm, cfg.close_distance_mm))
        u = np.clip(c[0] * intr.fx / c[2] + intr.cx, 0.15 * intr.width, 0.85 * intr.width)
        v = np.clip(c[1] * intr.fy / c[2] + intr.cy, 0.15 * intr.height, 0.85 * intr.height)
        c[0], c[1] = (u - intr.cx) * c[2] / intr.fx, (v - intr.cy) * c[2] / intr.fy
        theta_lim = (-15.0, 65.0) if kind == "frontal" else (-55.0, 15.0)
        return HandState(
            c,
            prev.arm_phi_deg + rng.normal(0.0, 15.0),
            float(np.clip(prev.arm_theta_deg + rng.normal(0.0, 10.0), *theta_lim)),
            prev.roll_deg + rng.normal(0.0, 30.0),
            float(np.clip(prev.wrist_flex_deg + rng.normal(0.0, 10.0), -60.0, 60.0)),
            float(np.clip(prev.wrist_dev_deg + rng.normal(0.0, 5.0), -25.0, 25.0)),
            pose,
            gesture,
        )

    @staticmethod
    def _lerp(a: HandState, b: HandState, e: float) -> HandState:
        v = (1.0 - e) * a.vector() + e * b.vector()
        return HandState.from_vector(v, a.gesture if e < 0.5 else b.gesture)

    def _second_hand(
        self,
        rng: np.random.Generator,
        shape: HandShape,
        first: HandState,
        kind: str = "frontal",
        side: float | None = None,
    ) -> HandState:
        """A left hand beside the first one (same subject), sometimes overlapping it in view. Frontal
        scenes put it to either side (x), at random; `side` (+1 / -1), a sequence's, fixes that side (the
        draw is still made, so every other draw stays as it was). Close-range scenes always put it to the
        left (scenes.second_hand_centre)."""
        if kind != "frontal":
            st = self._random_state(rng, shape, kind)
            c = second_hand_centre(rng, first.center_mm, shape, self.config.close_distance_mm)
            return replace(st, center_mm=c)
        st = self._random_state(rng, shape)
        off = rng.uniform(0.8, 1.6) * shape.length_mm
        sign = 1 if rng.random() < 0.5 else -1  # drawn after the distance, as always
        off *= sign if side is None else side
        c = first.center_mm + np.array([off, rng.normal(0, 40), rng.normal(0, 80)])
        c[2] = max(c[2], self.config.hand_distance_mm[0])
        return replace(st, center_mm=c)

    # ------------------------------------------------------------------------------------- context
    def _context(self, rng, shape: HandShape, state: HandState, state2: HandState | None) -> _Context:
        cfg = self.config
        posed = pose_hand(shape, state)
        hz = posed.geom.cone_a[:, 2]
        z_near = float(hz.min() - 40.0)
        z_far = float(max(hz.max(), posed.elbow_mm[2] if cfg.forearm else 0.0) + 60.0)
        hand_uv = xyz_to_uvd(posed.geom.joints, cfg.camera)
        u_c, v_c = np.nanmean(hand_uv[:, 0]), np.nanmean(hand_uv[:, 1])
        size_px = shape.length_mm * cfg.camera.fx / state.center_mm[2]

        # wall: behind everything, tilted, sometimes out of the sensor's range
        wall_z = max(z_far + 200.0, rng.uniform(900.0, 4800.0))
        wall_n = _random_rot(rng, 30.0) @ np.array([0.0, 0.0, -1.0])
        wall_p = np.array([0.0, 0.0, wall_z])

        boxes: list = []
        cones: list = []
        mat = M_OBJECT
        obj_colors: list = []

        def new_material() -> int:
            nonlocal mat
            m = mat
            mat += 1
            obj_colors.append(rng.uniform(0.1, 0.95, 3))
            return m

        shoulder = None
        side = 1.0
        # a torso only when the arm comes up from below or the side (an elbow above the hand means
        # someone reaching down into the view, whose body is out of frame)
        arm_up = _arm_dir(state.arm_phi_deg, state.arm_theta_deg)[1] < 0.3
        if cfg.body and cfg.forearm and arm_up and rng.random() < 0.85:
            up = np.array([rng.normal(0, 0.3), -rng.uniform(0.3, 1.0), rng.uniform(0.4, 1.0)])
            shoulder = posed.elbow_mm + up / np.linalg.norm(up) * 1.6 * shape.length_mm
            shoulder[2] = max(shoulder[2], z_far + 120.0)
            side = 1.0 if rng.random() < 0.8 else -1.0

        if cfg.distractors:
            intr = cfg.camera
            # desk: a big slab below the hand, its front edge before or behind the hand
            if rng.random() < cfg.desk_prob:
                m = new_material()
                top_y = float(posed.geom.joints[:, 1].max() + rng.uniform(30.0, 200.0))
                front = float(state.center_mm[2] + rng.uniform(-250.0, 200.0))
                half = np.array(
                    [rng.uniform(500.0, 900.0), rng.uniform(12.0, 25.0), rng.uniform(300.0, 450.0)]
                )
                rot = _rodrigues(np.array([0.0, 1.0, 0.0]), np.radians(rng.uniform(-20, 20))) @ _rodrigues(
                    np.array([1.0, 0.0, 0.0]), np.radians(rng.uniform(-12, 12))
                )
                c = np.array([state.center_mm[0] + rng.normal(0, 150), top_y + half[1], front + half[2]])
                boxes.append((c, rot, half, m))
                if rng.random() < 0.5:  # a cup on the desk
                    mc = new_material()
                    r = rng.uniform(30.0, 45.0)
                    hgt = rng.uniform(80.0, 130.0)
                    base = np.array([c[0] + rng.uniform(-300, 300), top_y, front + rng.uniform(r, 250.0)])
                    cones.append((base - [0, r, 0], base - [0, hgt - r, 0], r, r * 1.05, mc))
            # chair back / monitor behind the hand
            if rng.random() < 0.35:
                m = new_material()
                half = np.array([rng.uniform(180, 280), rng.uniform(200, 300), rng.uniform(15, 40)])
                c = np.array([
                    state.center_mm[0] + rng.choice([-1, 1]) * rng.uniform(100, 400),
                    state.center_mm[1] + rng.uniform(-100, 300),
                    z_far + rng.uniform(100, 700),
                ])  # fmt: skip
                boxes.append((c, _random_rot(rng, 20.0), half, m))
            # clutter behind
            for _ in range(int(rng.integers(0, 4))):
                m = new_material()
                z = rng.uniform(z_far + 50.0, wall_z - 50.0) if wall_z > z_far + 150 else z_far + 50
                uu, vv = rng.uniform(0, intr.width), rng.uniform(0, intr.height)
                p = np.array([(uu - intr.cx) * z / intr.fx, (vv - intr.cy) * z / intr.fy, z])
                if rng.random() < 0.5:
                    boxes.append((p, _random_rot(rng, 90.0), rng.uniform(30, 200, 3), m))
                else:
                    cones.append((p, p + rng.normal(0, 120, 3), rng.uniform(20, 80), rng.uniform(20, 80), m))
            # an occluder between the camera and the hand, covering part of it
            if rng.random() < cfg.occluder_prob:
                m = new_material()
                z = float(max(z_near - rng.uniform(30.0, 200.0), 120.0))
                ang = rng.uniform(0, 2 * np.pi)
                dist = rng.uniform(0.35, 0.8) * size_px
                uu, vv = u_c + np.cos(ang) * dist, v_c + np.sin(ang) * dist
                p = np.array([(uu - intr.cx) * z / intr.fx, (vv - intr.cy) * z / intr.fy, z])
                kind = rng.integers(3)
                # sized against the hand's image: it hides part of the hand, rarely all of it
                r_img = rng.uniform(0.15, 0.4) * size_px
                size_mm = float(np.clip(r_img * z / intr.fx, 15.0, 120.0))
                if kind == 0:  # a box (book, phone, box)
                    half = np.array(
                        [size_mm * rng.uniform(0.6, 1.2), size_mm * rng.uniform(0.6, 1.2), rng.uniform(8, 25)]
                    )
                    p[2] = min(p[2], z_near - np.linalg.norm(half) - 5.0)
                    boxes.append((p, _random_rot(rng, 40.0), half, m))
                elif kind == 1:  # a cup / bottle
                    r = 0.6 * size_mm
                    p[2] = min(p[2], z_near - r - 5.0)
                    cones.append((p + [0, 1.5 * r, 0], p - [0, 1.5 * r, 0], r, r * 1.05, m))
                else:  # a ball / other object
                    r = size_mm
                    p[2] = min(p[2], z_near - r - 5.0)
                    cones.append((p, p, r, r, m))

        return _Context(
            wall_point=wall_p,
            wall_normal=wall_n,
            body=shoulder is not None,
            shoulder_mm=shoulder,
            body_side=side,
            boxes=tuple(boxes),
            cones=tuple(cones),
            **_lighting(rng, shape, obj_colors),
        )

    def _close_context(
        self, rng, shape: HandShape, state: HandState, state2: HandState | None, kind: str, held: str | None
    ) -> _Context:
        """The static part of a close-range scene (scenes.py): the table (the wall plane for egocentric
        scenes; a desk slab before a back wall for desk scenes), clutter standing on it, the held object."""
        cfg = self.config
        posed = pose_hand(shape, state)
        pts = [posed.geom.joints, posed.elbow_mm[None]]
        if state2 is not None:
            posed2 = pose_hand(shape, state2, left=True)
            pts += [posed2.geom.joints, posed2.elbow_mm[None]]
        table = draw_table(rng, kind, np.concatenate(pts))
        up = table.up
        boxes: list = []
        cones: list = []
        obj_colors: list = []

        def new_material() -> int:
            obj_colors.append(rng.uniform(0.1, 0.95, 3))
            return M_OBJECT + len(obj_colors) - 1

        if kind == "egocentric":
            wall_p, wall_n = up * table.plane_c, up
        else:
            fwd = np.array([0.0, 0.0, 1.0]) - up[2] * up
            fwd /= np.linalg.norm(fwd)
            side = np.cross(up, fwd)
            foot = state.center_mm - table.height_of(state.center_mm) * up
            wall_p = fwd * (float(np.dot(foot, fwd)) + rng.uniform(400.0, 2200.0))
            wall_n = -fwd
            half = np.array([rng.uniform(500.0, 900.0), rng.uniform(12.0, 25.0), rng.uniform(300.0, 500.0)])
            c = foot - up * half[1] + fwd * (half[2] - rng.uniform(50.0, 300.0)) + side * rng.normal(0, 150)
            boxes.append((c, np.stack([side, up, fwd], axis=1), half, new_material()))
        if cfg.distractors:
            b, c = table_clutter(rng, table, cfg.camera, state.center_mm, new_material)
            boxes += b
            cones += c
        held_obj = draw_held(rng, held, new_material()) if held is not None else None
        return _Context(
            wall_point=np.asarray(wall_p, np.float64),
            wall_normal=np.asarray(wall_n, np.float64),
            body=False,
            shoulder_mm=None,
            body_side=1.0,
            boxes=tuple(boxes),
            cones=tuple(cones),
            **_lighting(rng, shape, obj_colors),
            kind=kind,
            held=held_obj,
            table=table,
        )

    # -------------------------------------------------------------------------------------- render
    def _scene_prims(self, shape, posed: PosedHand, ctx: _Context, posed2: PosedHand | None) -> _Prims:
        cfg = self.config
        g = posed.geom
        far = float((g.cone_a[:, 2] + g.radius_a).max())
        if posed2 is not None:
            far = max(far, float((posed2.geom.cone_a[:, 2] + posed2.geom.radius_a).max()))
        pr = _Prims(far_fg_mm=far + 5.0)
        if cfg.hands_visible:
            pr.cone(g.cone_a, g.cone_b, g.radius_a, g.radius_b, M_HAND, fg=True)
        if cfg.forearm and cfg.hands_visible:
            pr.cone(*posed.arm_cones, M_ARM, fg=True)
        if posed2 is not None and cfg.hands_visible:
            g2 = posed2.geom
            pr.cone(g2.cone_a, g2.cone_b, g2.radius_a, g2.radius_b, M_HAND2, fg=True)
            if cfg.forearm:
                pr.cone(*posed2.arm_cones, M_ARM2, fg=True)
        if ctx.held is not None:
            boxes, cones = held_prims(ctx.held, g, shape)
            for a, b, ra, rb, m in cones:
                pr.cone(a, b, ra, rb, m)
            for c, r, h, m in boxes:
                pr.box(c, r, h, m)
        if ctx.kind != "frontal" and cfg.forearm and cfg.hands_visible:
            # the upper arm (a sleeve) from each elbow on towards the image border the forearm came from
            w = shape.width_mm
            for p in (posed, posed2):
                if p is not None:
                    f = p.geom.joints[0] - p.elbow_mm
                    f /= np.linalg.norm(f)
                    pr.cone(p.elbow_mm, p.elbow_mm - f * 1.2 * shape.length_mm, 0.36 * w, 0.45 * w, M_BODY)
        if ctx.body and ctx.shoulder_mm is not None:
            s = ctx.shoulder_mm
            L = shape.length_mm
            w = shape.width_mm
            sd = ctx.body_side
            if cfg.hands_visible:
                pr.cone(posed.elbow_mm, s, 0.36 * w, 0.5 * w, M_BODY)  # upper arm (sleeve)
            neck = s + np.array([sd * 1.0 * L, -0.15 * L, 0.15 * L])
            other = s + np.array([sd * 2.0 * L, 0.0, 0.0])
            torso_r = 0.85 * L
            pr.cone(
                neck + [0, 0.9 * L, 0.1 * L], neck + [0, 2.8 * L, 0.1 * L], torso_r, torso_r * 0.95, M_BODY
            )
            pr.cone(s + [0, 0.2 * L, 0.1 * L], other + [0, 0.2 * L, 0.1 * L], 0.5 * w, 0.5 * w, M_BODY)
            pr.cone(neck, neck + [0, -0.35 * L, 0], 0.28 * L, 0.28 * L, M_HEAD)  # neck
            pr.cone(
                neck + [0, -0.9 * L, 0.05 * L], neck + [0, -0.9 * L, 0.05 * L], 0.55 * L, 0.55 * L, M_HEAD
            )
            if posed2 is not None:
                if cfg.hands_visible:
                    pr.cone(posed2.elbow_mm, other, 0.36 * w, 0.5 * w, M_BODY)
            else:
                pr.cone(other, other + [0, 1.7 * L, 0.1 * L], 0.5 * w, 0.36 * w, M_BODY)
        for a, b, ra, rb, m in ctx.cones:
            pr.cone(a, b, ra, rb, m)
        for c, r, h, m in ctx.boxes:
            pr.box(c, r, h, m)
        return pr

    def render_buffers(self, pr: _Prims, ctx: _Context | None) -> ZBuffer:
        """Noise-free z, material and normal for a primitive set (ctx None: no wall).

        Primitives entirely behind the hands (wall, body, clutter) are cast at 1/background_scale
        resolution and upsampled (nearest): they are most of the pixels but need no fine detail, and
        they cannot change which hand pixels are visible. Hands, forearms and anything that reaches
        in front of the hands' far side are cast at full resolution."""
        cam = self.config.camera
        f = self._bg_scale
        bg = ZBuffer.empty((cam.width // f) * (cam.height // f))
        bg_rays = self._bg_rays
        if ctx is not None:
            cast_plane(bg_rays, ctx.wall_point, ctx.wall_normal, M_WALL, bg)
        self._cast(pr, bg_rays, bg, False)
        if f == 1:
            zb = bg
        else:
            size = (cam.width, cam.height)
            h2, w2 = cam.height // f, cam.width // f
            up = lambda x: cv2.resize(x.reshape(h2, w2, -1), size, interpolation=cv2.INTER_NEAREST)  # noqa: E731
            zb = ZBuffer(
                up(bg.z).reshape(-1),
                up(bg.material).reshape(-1),
                up(bg.normal).reshape(-1, 3),
            )
        self._cast(pr, self.rays, zb, True)
        return zb

    @staticmethod
    def _cast(pr: _Prims, rays: Rays, zb: ZBuffer, fg: bool) -> None:
        sel = [i for i, f in enumerate(pr.box_fg) if f == fg]
        if sel:
            zb.merge(
                *cast_boxes(
                    rays,
                    np.stack([pr.box_c[i] for i in sel]),
                    np.stack([pr.box_r[i] for i in sel]),
                    np.stack([pr.box_h[i] for i in sel]),
                    np.array([pr.box_m[i] for i in sel]),
                )
            )
        sel = [i for i, f in enumerate(pr.cone_fg) if f[0] == fg]
        if sel:
            zb.merge(
                *cast_round_cones(
                    rays,
                    np.concatenate([pr.cone_a[i] for i in sel]),
                    np.concatenate([pr.cone_b[i] for i in sel]),
                    np.concatenate([pr.cone_ra[i] for i in sel]),
                    np.concatenate([pr.cone_rb[i] for i in sel]),
                    np.concatenate([pr.cone_m[i] for i in sel]),
                )
            )

    def _render(self, rng, shape, state, ctx, state2, *, sequence, frame_index, timestamp_ms) -> SynthSample:
        cfg, intr = self.config, self.config.camera
        h, w = intr.height, intr.width
        posed = pose_hand(shape, state)
        posed2 = pose_hand(shape, state2, left=True) if state2 is not None else None
        pr = self._scene_prims(shape, posed, ctx, posed2)
        zb = self.render_buffers(pr, ctx)
        z = zb.z.reshape(h, w)
        nrm = zb.normal
        r = self.rays
        cos_inc = np.abs(nrm[:, 0] * r.dx + nrm[:, 1] * r.dy + nrm[:, 2] * r.dz).reshape(h, w)
        depth = apply_sensor(z, cos_inc, intr, rng, cfg.sensor)
        material = zb.material.reshape(h, w)
        mask = material == M_HAND
        color = self._shade(rng, zb, ctx, cos_inc) if cfg.color else None

        joints = posed.geom.joints.astype(np.float32)
        uvd = xyz_to_uvd(joints.astype(np.float64), intr).astype(np.float32)
        others: tuple[OtherHand, ...] = ()
        if posed2 is not None:
            j2 = posed2.geom.joints.astype(np.float32)
            others = (
                OtherHand(
                    material == M_HAND2, j2, xyz_to_uvd(j2.astype(np.float64), intr).astype(np.float32)
                ),
            )
        frame = RGBDFrame(
            index=frame_index,
            timestamp_ms=timestamp_ms,
            depth_mm=depth,
            intrinsics=intr,
            color_bgr=color,
            source="synth",
            # the posed hands' solid primitives and the noise-free z, for tests and debugging
            meta={
                "subject": shape.subject,
                "sequence": sequence,
                "hand_geometry": posed.geom,
                "other_hand_geometries": (posed2.geom,) if posed2 is not None else (),
                "z_clean_mm": z,
                "scene_kind": ctx.kind,
                "held_material": ctx.held.material if ctx.held is not None else -1,
            },
        )
        return SynthSample(
            frame=frame,
            mask=mask,
            joints_xyz_mm=joints,
            joints_uvd=uvd,
            orientation_deg=orientation_deg(posed.geom.palm_normal),
            hand_size_mm=shape.size_mm,
            gesture_fine=int(state.gesture),
            gesture_coarse=int(FINE_TO_COARSE[state.gesture]),
            subject=shape.subject,
            sequence=sequence,
            frame_index=frame_index,
            other_hands=others,
            material=material,
            scene_kind=ctx.kind,
        )

    def _shade(self, rng, zb: ZBuffer, ctx: _Context, cos_inc: np.ndarray) -> np.ndarray:
        """Lambert shading of per-material albedo; wall, clothing and objects get a colour texture
        (smooth blotches or blocks, sometimes stripes), skin a little blotchiness, plus sensor noise."""
        intr = self.config.camera
        h, w = intr.height, intr.width
        mat = zb.material.reshape(h, w)
        alb = ctx.albedo_bgr[np.clip(mat, 0, None)]
        trng = np.random.default_rng(ctx.texture_seed)
        low = trng.uniform(0.6, 1.3, (6 + trng.integers(20), 8 + trng.integers(24), 3)).astype(np.float32)
        interp = cv2.INTER_CUBIC if trng.random() < 0.5 else cv2.INTER_NEAREST
        tex = cv2.resize(low, (w, h), interpolation=interp)
        if trng.random() < 0.5:
            period = np.float32(trng.uniform(6, 40))
            ang = trng.uniform(0, np.pi)
            uu, vv = self._grid
            phase = (uu * np.float32(np.cos(ang)) + vv * np.float32(np.sin(ang))) % period
            tex *= np.where(phase < period / 2, np.float32(1.15), np.float32(0.85))[..., None]
        plain = (mat != M_WALL) & (mat < M_OBJECT) & (mat != M_BODY)
        tex[plain] = 1.0
        n = zb.normal.reshape(h, w, 3)
        ld = ctx.light_dir.astype(np.float32)
        lam = np.clip(-(n[..., 0] * ld[0] + n[..., 1] * ld[1] + n[..., 2] * ld[2]), 0.0, 1.0)
        shade = np.float32(ctx.ambient) + np.float32(1.0 - ctx.ambient) * lam
        r = rng.random((h, w), dtype=np.float32)
        skin = (mat >= M_HAND) & (mat <= M_ARM2) | (mat == M_HEAD)
        shade[skin] *= 0.97 + 0.06 * r[skin]
        shade += (r - np.float32(0.5)) * np.float32(0.04)  # sensor noise (luminance)
        img = alb * tex
        img *= shade[..., None]
        return cv2.convertScaleAbs(img, alpha=255.0)
