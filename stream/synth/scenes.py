"""Close-range scene kinds: the camera over a table (egocentric) or forward over a desk, hands at 200-500 mm,
often holding a bottle, cup, box or phone that hides fingers, among jars, plates and cups behind and beside.

Why: the frontal scenes (a user facing the camera, scene.py) never show a hand near the camera in front
of a table full of hand-sized objects, and a detector trained on them alone put a real egocentric hand on a
bottle 900 mm away. These kinds add exactly that.

- "egocentric": the camera on the head, pitched 40-75 degrees down over a table; the table plane fills the
  view; forearms enter from the bottom (or a side) border and point away from the camera.
- "desk": the camera pitched 10-35 degrees down, forward over a desk (a finite slab) in front of a back wall.
- "mixed": each sequence (or independent frame) draws one of frontal, egocentric, desk.

Geometry: `Table.up` is the world's up direction in camera coordinates (x right, y down, z forward); the
table is the plane p . up = `plane_c`. Objects stand on it (their axis along up). A held object is placed in
the hand's own frame (fingers, radial axis, palm normal) every frame, so it moves with the hand; its material
is an object's, so the hand mask excludes it.

Randomness: only scenes of these kinds draw from here; frontal scenes take no draw and stay byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..frames import CameraIntrinsics
from .hand import GESTURES_FINE, HandGeometry, HandShape, gesture_pose

SCENE_KINDS = ("frontal", "egocentric", "desk", "mixed")
CLOSE_KINDS = ("egocentric", "desk")
# "mixed": the share of each kind per sequence / independent frame
MIXED_SHARES = (("frontal", 0.34), ("egocentric", 0.33), ("desk", 0.33))
HELD_KINDS = ("bottle", "cup", "box", "phone")
# grips from the gesture vocabulary: a cylinder or box is held in a C or a fist, a phone in a loose hand
_GRIPS = {
    "bottle": ("c_shape", "fist"),
    "cup": ("c_shape", "fist"),
    "box": ("c_shape", "fist"),
    "phone": ("relaxed", "c_shape"),
}
# table clutter: (kind, share)
_CLUTTER = (("jar", 0.25), ("bottle", 0.2), ("cup", 0.2), ("plate", 0.15), ("box", 0.2))


def pick_kind(config_kind: str, seed: int, stream: int, index: int) -> str:
    """The kind of one sequence / independent frame: the configured one, or for "mixed" a draw from a
    generator of its own (so the frames of the drawn kind are the same as that kind's)."""
    if config_kind != "mixed":
        return config_kind
    r = np.random.default_rng([seed, 5, stream, index]).random()
    acc = 0.0
    for kind, share in MIXED_SHARES:
        acc += share
        if r < acc:
            return kind
    return MIXED_SHARES[-1][0]


@dataclass(frozen=True)
class Table:
    """The support surface of a close-range scene: points p with p . up == plane_c (camera mm)."""

    up: np.ndarray  # (3,) unit, world up in camera coordinates
    plane_c: float

    def height_of(self, p: np.ndarray) -> float:
        """How far a point lies above the table (mm)."""
        return float(np.dot(p, self.up) - self.plane_c)


@dataclass(frozen=True)
class HeldObject:
    """An object in the hand: kind, size (radius and length of a cylinder; half sizes of a box) and where
    along the hand's radial axis it sits (-1..1 of its free length)."""

    kind: str
    size_mm: np.ndarray  # cylinder: (radius, length, 0); box: half sizes (along radial, fingers, palm normal)
    shift: float
    material: int


def camera_up(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """World up in camera coordinates for a camera pitched down by pitch_deg and rolled by roll_deg."""
    t, r = np.radians(pitch_deg), np.radians(roll_deg)
    up = np.array([0.0, -np.cos(t), -np.sin(t)])
    c, s = np.cos(r), np.sin(r)
    return np.array([c * up[0] - s * up[1], s * up[0] + c * up[1], up[2]])


def distance_range(kind: str, frontal_mm: tuple[float, float], close_mm: tuple[float, float]):
    return frontal_mm if kind == "frontal" else close_mm


def grip_gestures(held: str | None) -> tuple[int, ...] | None:
    """Gesture ids a hand holding `held` may take (None: any gesture)."""
    if held is None:
        return None
    return tuple(GESTURES_FINE.index(g) for g in _GRIPS[held])


def close_state_params(rng: np.random.Generator, kind: str, intr: CameraIntrinsics, dist_mm, gestures):
    """(gesture, pose, centre, phi, theta, flex, dev) of a hand in a close-range scene: anywhere in the
    middle of the image, its forearm entering from the bottom border (or a side) and pointing away from
    the camera (egocentric) or across the desk."""
    gesture = int(rng.choice(gestures)) if gestures else int(rng.integers(len(GESTURES_FINE)))
    pose = gesture_pose(gesture, rng)
    z = rng.uniform(*dist_mm)
    u = rng.uniform(0.2, 0.8) * intr.width
    v = rng.uniform(0.25, 0.75) * intr.height
    center = np.array([(u - intr.cx) * z / intr.fx, (v - intr.cy) * z / intr.fy, z])
    r = rng.random()
    if r < 0.7:  # from the bottom border, leaning towards the hand's side of the image
        phi = -90.0 + rng.normal(0.0, 20.0) + 25.0 * (u / intr.width - 0.5)
    elif r < 0.85:
        phi = 0.0 + rng.normal(0.0, 20.0)  # from the left border
    else:
        phi = 180.0 + rng.normal(0.0, 20.0)  # from the right border
    theta = rng.uniform(-55.0, -10.0) if kind == "egocentric" else rng.uniform(-30.0, 15.0)
    flex = float(np.clip(rng.normal(0.0, 20.0), -60.0, 60.0))
    dev = float(np.clip(rng.normal(0.0, 10.0), -25.0, 25.0))
    return gesture, pose, center, float(phi), float(theta), flex, dev


def draw_table(rng: np.random.Generator, kind: str, points_mm: np.ndarray) -> Table:
    """The table under the hands: its up from the camera pitch (steep for egocentric, shallow for desk),
    its plane 30-220 mm below the lowest of `points_mm` (the hands' joints and elbows)."""
    pitch = rng.uniform(40.0, 75.0) if kind == "egocentric" else rng.uniform(10.0, 35.0)
    up = camera_up(pitch, rng.normal(0.0, 6.0))
    low = float((np.asarray(points_mm, np.float64) @ up).min())
    return Table(up=up, plane_c=low - float(rng.uniform(30.0, 220.0)))


def _basis(up: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A rotation whose second column is `up` (an upright object), turned randomly about it."""
    a = rng.normal(size=3)
    a -= np.dot(a, up) * up
    a /= np.linalg.norm(a)
    return np.stack([a, up, np.cross(a, up)], axis=1)


def table_clutter(
    rng: np.random.Generator,
    table: Table,
    intr: CameraIntrinsics,
    hand_xyz: np.ndarray,
    new_material,
    dist_mm: tuple[float, float] = (400.0, 1200.0),
) -> tuple[list, list]:
    """Jars, bottles, cups, plates and boxes standing on the table at `dist_mm` from the camera, behind and
    beside the hand (never where the hand is), and sometimes one right beside the hand at its depth.
    Returns (boxes, cones) in the scene context's format."""
    boxes: list = []
    cones: list = []
    hand_foot = hand_xyz - table.height_of(hand_xyz) * table.up
    spots = []
    for _ in range(int(rng.integers(3, 8))):
        for _try in range(12):
            u, v = rng.uniform(0, intr.width), rng.uniform(0, intr.height)
            d = np.array([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, 1.0])
            den = float(np.dot(d, table.up))
            if abs(den) < 1e-6:
                continue
            t = table.plane_c / den
            if t <= 0 or not dist_mm[0] <= t * np.linalg.norm(d) <= dist_mm[1]:
                continue
            p = t * d
            if np.linalg.norm(p - hand_foot) < 150.0:
                continue
            spots.append(p)
            break
    if rng.random() < 0.4:  # an object right beside the hand, at its depth
        side = np.cross(table.up, np.array([0.0, 0.0, 1.0]))
        side /= max(np.linalg.norm(side), 1e-9)
        spots.append(hand_foot + side * rng.choice([-1.0, 1.0]) * rng.uniform(110.0, 200.0))
    kinds, shares = zip(*_CLUTTER)
    for p in spots:
        kind = str(rng.choice(kinds, p=np.array(shares) / sum(shares)))
        m = new_material()
        up = table.up
        if kind in ("jar", "bottle", "cup"):
            r, h = {
                "jar": (rng.uniform(35, 60), rng.uniform(90, 200)),
                "bottle": (rng.uniform(28, 42), rng.uniform(180, 300)),
                "cup": (rng.uniform(35, 45), rng.uniform(80, 120)),
            }[kind]
            cones.append((p + up * r, p + up * max(h - r, r + 1.0), r, r * rng.uniform(0.95, 1.1), m))
        elif kind == "plate":
            rad = rng.uniform(90, 135)
            boxes.append((p + up * 8.0, _basis(up, rng), np.array([rad, 8.0, rad]), m))
        else:
            half = rng.uniform(35, 120, 3)
            boxes.append((p + up * half[1], _basis(up, rng), half, m))
    return boxes, cones


def draw_held_kind(rng: np.random.Generator) -> str:
    """Which object a hand holds: bottles most often (the case that hides most of the fingers)."""
    return str(rng.choice(HELD_KINDS, p=[0.35, 0.25, 0.2, 0.2]))


def draw_held(rng: np.random.Generator, kind: str, material: int) -> HeldObject:
    """A bottle, cup, box or phone of a random size."""
    if kind == "bottle":
        size = np.array([rng.uniform(28.0, 40.0), rng.uniform(180.0, 280.0), 0.0])
    elif kind == "cup":
        size = np.array([rng.uniform(34.0, 45.0), rng.uniform(85.0, 120.0), 0.0])
    elif kind == "box":
        size = np.array([rng.uniform(45.0, 90.0), rng.uniform(25.0, 45.0), rng.uniform(25.0, 45.0)])
    else:
        size = np.array([rng.uniform(33.0, 40.0), rng.uniform(68.0, 80.0), rng.uniform(4.0, 5.5)])
    return HeldObject(kind, size, float(rng.uniform(-0.6, 0.6)), material)


def hand_frame(geom: HandGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(knuckle centre, radial axis, finger axis, palm normal) of a posed hand, from its joints, so a left
    (mirrored) hand gets its own radial axis."""
    j = geom.joints
    fingers = j[9] - j[0]
    fingers = fingers / np.linalg.norm(fingers)
    n = geom.palm_normal / np.linalg.norm(geom.palm_normal)
    radial = j[5] - j[17]
    radial = radial - np.dot(radial, n) * n - np.dot(radial, fingers) * fingers
    radial = radial / max(np.linalg.norm(radial), 1e-9)
    knuckles = j[[5, 9, 13, 17]].mean(axis=0)
    return knuckles, radial, fingers, n


def held_prims(held: HeldObject, geom: HandGeometry, shape: HandShape) -> tuple[list, list]:
    """The held object posed in the hand: a cylinder or box across the palm side of the fingers (inside the
    grip), a phone flat against the palm. Returns (boxes, cones) like table_clutter."""
    knuckles, radial, fingers, n = hand_frame(geom)
    w = shape.width_mm
    palm = 0.15 * w * shape.thickness_scale  # half the palm's thickness
    if held.kind == "phone":
        half = held.size_mm
        c = geom.joints[[0, 9]].mean(axis=0) + fingers * 0.1 * shape.length_mm + n * (palm + half[2] + 2.0)
        return [(c, np.stack([radial, fingers, n], axis=1), half, held.material)], []
    r = held.size_mm[0] if held.kind != "box" else held.size_mm[1]
    c = knuckles - fingers * 0.08 * shape.length_mm + n * (r + palm + 3.0)
    if held.kind == "box":
        half = held.size_mm
        c = c + radial * held.shift * max(half[0] - 0.5 * w, 0.0)
        return [(c, np.stack([radial, fingers, n], axis=1), half, held.material)], []
    length = held.size_mm[1]
    free = max(0.5 * length - 0.5 * w, 0.0)
    mid = c + radial * held.shift * free
    a = mid - radial * (0.5 * length - r)
    b = mid + radial * (0.5 * length - r)
    return [], [(a, b, r, r, held.material)]


def second_hand_centre(rng: np.random.Generator, first_center: np.ndarray, shape: HandShape, dist_mm):
    """A left hand beside the first (right) one: to its left in the image, as when both hands reach out in
    front of the camera, at a similar distance."""
    off = -rng.uniform(0.9, 1.8) * shape.length_mm
    c = first_center + np.array([off, rng.normal(0, 30), rng.normal(0, 50)])
    c[2] = float(np.clip(c[2], *dist_mm))
    return c


def move_key(rng: np.random.Generator, prev_gesture: int, gestures) -> int:
    """The next keyframe's gesture: a grip keeps to its grips; otherwise as frontal sequences do."""
    if gestures:
        return int(rng.choice(gestures)) if rng.random() < 0.5 else prev_gesture
    return int(rng.integers(len(GESTURES_FINE))) if rng.random() < 0.7 else prev_gesture
