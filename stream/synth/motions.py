"""Synthetic motion gestures: joint tracks of swipes, taps, grips, rotations and waves, for learning dynamic
gesture embeddings without rendering a frame.

A motion is a function of its phase s in [0, 1] (minimum-jerk profiles, as point-to-point hand movements
have): the hand's pose (start and end shapes from the static vocabulary, stream.synth.gestures), a rotation of
the hand about its wrist (in the hand's own frame) and a displacement of the wrist in the CAMERA frame (x
right, y down, z forward). Directions are as seen in the camera's image (the overlay): `swipe_left` moves the
hand towards the image's left edge; a camera facing the user sees the user's own leftward swipe as a swipe to
the image's right, as a mirror does not. `circle_cw` is clockwise on the image.

Per sample: duration 0.5-1.5 s, amplitude, start position (300-700 mm from the camera), the hand's
orientation (roughly upright in the image, palm towards the camera or, one time in four, away from it, turned
by up to 30-50 degrees about each axis), a random subject's hand (size), either hand, 5 degrees of pose
jitter, a slow drift while the hand rests, and optional jitter like the smoothed pipeline's output
(`noise_mm`: Gaussian per joint coordinate, low-passed with a 50 ms time constant, scaled back to noise_mm).

The fine classes are split, as the static vocabulary is (seed 001 §4), into classes the embedding trains on
and classes it never sees, every coarse group on both sides (`TRAIN`, `UNSEEN`). `still` tracks (a static
hand shape held with a slow drift, up to 20 mm) are not a gesture: they are the "no gesture" windows
(`REST`), trained on as a class of their own and enrolled in every gallery so that a resting hand finds them
nearest, and never reported. So are windows that end part of the way through a gesture (`motion_windows(...,
partial=True)`): the stage must wait for the end of a motion before it names it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..gestures.dynamic import REST  # noqa: F401 - re-exported: the resting hand's class name
from .gestures import VOCABULARY, vocabulary_pose
from .hand import hand_joints_local, hand_shape, rot_x, rot_y, rot_z

# fine name -> (coarse group, what the hand does)
MOTIONS: dict[str, tuple[str, str]] = {
    "swipe_left": ("swipe", "open hand moves 120-280 mm to the image's left"),
    "swipe_right": ("swipe", "open hand moves 120-280 mm to the image's right"),
    "swipe_up": ("swipe", "open hand moves 100-220 mm up the image"),
    "swipe_down": ("swipe", "open hand moves 100-220 mm down the image"),
    "tap": ("tap", "pointing hand pokes 40-90 mm towards the camera and back"),
    "double_tap": ("tap", "the poke, twice"),
    "push": ("tap", "open palm moves 100-200 mm towards the camera and stays"),
    "grab": ("grip", "open hand closes into a fist and opens again"),
    "bloom": ("grip", "fist opens into an open hand"),
    "pinch_release": ("grip", "open hand pinches thumb and index, holds, releases"),
    "circle_cw": ("rotate", "hand draws a clockwise circle of 50-110 mm radius on the image"),
    "circle_ccw": ("rotate", "the circle, counter-clockwise"),
    "turn": ("rotate", "open hand turns over about its fingers' axis by 120-170 degrees"),
    "wave": ("wave", "open hand swings 20-35 degrees side to side about the wrist, twice"),
    "waggle": ("wave", "pointing hand rocks 15-25 degrees side to side, three times"),
    "beckon": ("wave", "fingers curl towards the palm and straighten, twice"),
}
FINE: tuple[str, ...] = tuple(MOTIONS)
COARSE: tuple[str, ...] = tuple(dict.fromkeys(c for c, _ in MOTIONS.values()))

# Classes the embedding never trains on: one of every coarse group, the mirror image of a trained one where
# a group has one (down / up, counter-clockwise / clockwise), so the embedding must tell directions apart
# that it was never shown.
UNSEEN: tuple[str, ...] = ("swipe_down", "double_tap", "pinch_release", "circle_ccw", "beckon")
TRAIN: tuple[str, ...] = tuple(f for f in FINE if f not in UNSEEN)
# A resting hand, trained on as one more class (its own coarse group) so the embedding puts "no gesture"
# apart from every motion; the runtime enrolls it and never reports it.
REST_COARSE = "rest"

FPS = 30.0
VERSION = 3  # of the motions' definitions: part of the key of any cache of generated windows
NOISE_TAU_S = 0.05  # time constant of the low-pass on the synthetic jitter


def min_jerk(s: np.ndarray) -> np.ndarray:
    """The minimum-jerk position profile 10 s^3 - 15 s^4 + 6 s^5 on [0, 1] (0 before, 1 after)."""
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10.0 - 15.0 * s + 6.0 * s * s)


def _bumps(s: np.ndarray, n: int) -> np.ndarray:
    """n smooth out-and-back bumps over [0, 1], each 0 -> 1 -> 0."""
    return np.sin(np.pi * n * np.clip(s, 0.0, 1.0)) ** 2


def _held(s: np.ndarray, on: float = 0.3, off: float = 0.7) -> np.ndarray:
    """0 -> 1 over [0, on], held, 1 -> 0 over [off, 1]."""
    return min_jerk(s / on) - min_jerk((s - off) / (1.0 - off))


@dataclass(frozen=True)
class MotionSample:
    """One performance of a motion gesture, evaluated at any time (seconds): the gesture runs from
    `start_s` to `start_s + duration_s`, the hand rests (with a slow drift) before and after."""

    name: str
    start_s: float
    duration_s: float
    subject: int
    left: bool
    base_rot: np.ndarray  # (3, 3) hand-local -> camera at rest
    origin_mm: np.ndarray  # (3,) wrist at the start
    params: dict
    drift_mm: np.ndarray  # (2, 3) amplitude and phase of the slow drift per axis

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def _state(self, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pose (20,) degrees, local rotation (3, 3), displacement (3,) mm, camera frame) at phase s."""
        p, name = self.params, self.name
        z3 = np.zeros(3)
        s_arr = np.asarray(s, dtype=np.float64)
        if name.startswith("swipe"):
            d = {"swipe_left": (-1, 0), "swipe_right": (1, 0), "swipe_up": (0, -1), "swipe_down": (0, 1)}[
                name
            ]
            along = p["amp"] * float(min_jerk(s_arr))
            bow = p["bow"] * float(_bumps(s_arr, 1)) ** 0.5  # a slight arc across the direction
            disp = np.array(
                [d[0] * along - d[1] * bow, d[1] * along + d[0] * bow, p["dz"] * float(min_jerk(s_arr))]
            )
            return p["pose_a"], np.eye(3), disp
        if name in ("tap", "double_tap"):
            k = 1 if name == "tap" else 2
            return (
                p["pose_a"],
                rot_x(np.radians(p["nod"]) * float(_bumps(s_arr, k))),
                np.array([0.0, 0.0, -p["amp"] * float(_bumps(s_arr, k))]),
            )
        if name == "push":
            return p["pose_a"], np.eye(3), np.array([0.0, 0.0, -p["amp"] * float(min_jerk(s_arr))])
        if name in ("grab", "pinch_release", "bloom"):
            w = float(_bumps(s_arr, 1)) if name == "grab" else float(_held(s_arr))
            if name == "bloom":  # from the fist (pose_a) to the open hand (pose_b)
                w = float(min_jerk(s_arr))
            return (1.0 - w) * p["pose_a"] + w * p["pose_b"], np.eye(3), z3
        if name in ("circle_cw", "circle_ccw"):
            sign = 1.0 if name == "circle_cw" else -1.0
            th = p["phase"] + sign * 2.0 * np.pi * float(min_jerk(s_arr))
            c0 = np.array([np.sin(p["phase"]), -np.cos(p["phase"])])
            xy = p["amp"] * (np.array([np.sin(th), -np.cos(th)]) - c0)  # clockwise on the image (y down)
            return p["pose_a"], np.eye(3), np.array([xy[0], xy[1], 0.0])
        if name == "turn":
            return p["pose_a"], rot_y(np.radians(p["amp"]) * float(min_jerk(s_arr))), z3
        if name in ("wave", "waggle"):
            k = 2 if name == "wave" else 3
            ang = (
                np.radians(p["amp"]) * float(np.sin(2.0 * np.pi * k * s_arr)) * float(_bumps(s_arr, 1)) ** 0.3
            )
            return p["pose_a"], rot_z(ang), z3
        if name == "beckon":
            w = float(_bumps(s_arr, 2))
            return (1.0 - w) * p["pose_a"] + w * p["pose_b"], np.eye(3), z3
        raise ValueError(f"unknown motion gesture {name!r}")

    def joints_at(self, times_s: np.ndarray) -> np.ndarray:
        """(len(times_s), 21, 3) camera-frame joints in mm, without sensor jitter."""
        shape = hand_shape(self.subject)
        times_s = np.asarray(times_s, np.float64)
        out = np.empty((len(times_s), 21, 3))
        cache: dict[float, np.ndarray] = {}
        for i, t in enumerate(times_s):
            s = float(np.clip((t - self.start_s) / self.duration_s, 0.0, 1.0))
            pose, rot, disp = self._state(s)
            local = cache.get(s)  # resting frames (s = 0 or 1) share one forward-kinematics call
            if local is None:
                local = hand_joints_local(shape, pose, left=self.left).joints
                cache[s] = local
            drift = self.drift_mm[0] * np.sin(2.0 * np.pi * 0.3 * t + self.drift_mm[1])
            out[i] = local @ (self.base_rot @ rot).T + self.origin_mm + disp + drift
        return out


def _base_rotation(rng: np.random.Generator) -> np.ndarray:
    """Hand-local -> camera: upright on the image (fingers up = -y), palm towards the camera (or away, one
    time in four), then turned by up to 35 degrees (pitch), 50 (yaw) and 30 (roll in the image plane)."""
    upright = np.diag(
        [1.0, -1.0, -1.0]
    )  # local y (distal) -> -y, local z (palmar) -> -z (towards the camera)
    if rng.random() < 0.25:
        upright = rot_y(np.pi) @ upright
    turn = (
        rot_z(np.radians(rng.uniform(-30, 30)))
        @ rot_y(np.radians(rng.uniform(-50, 50)))
        @ rot_x(np.radians(rng.uniform(-35, 35)))
    )
    return turn @ upright


def _params(name: str, rng: np.random.Generator) -> dict:
    open_hand = rng.choice(["open_palm", "relaxed", "four", "flat_together"], p=[0.5, 0.2, 0.15, 0.15])
    pose = lambda n: vocabulary_pose(str(n), rng, 5.0)  # noqa: E731
    p: dict = {"pose_a": pose(open_hand)}
    if name in ("swipe_left", "swipe_right"):
        p |= {"amp": rng.uniform(120, 280), "bow": rng.uniform(-25, 25), "dz": rng.uniform(-30, 30)}
    elif name in ("swipe_up", "swipe_down"):
        p |= {"amp": rng.uniform(100, 220), "bow": rng.uniform(-25, 25), "dz": rng.uniform(-30, 30)}
    elif name in ("tap", "double_tap"):
        p |= {"pose_a": pose("point"), "amp": rng.uniform(40, 90), "nod": rng.uniform(0, 20)}
    elif name == "push":
        p |= {"amp": rng.uniform(100, 200)}
    elif name == "grab":
        p |= {"pose_b": pose(rng.choice(["fist", "fist_thumb_in"]))}
    elif name == "bloom":
        p |= {"pose_a": pose(rng.choice(["fist", "fist_thumb_in"])), "pose_b": p["pose_a"]}
    elif name == "pinch_release":
        p |= {"pose_b": pose("pinch")}
    elif name in ("circle_cw", "circle_ccw"):
        p |= {"amp": rng.uniform(50, 110), "phase": rng.uniform(0, 2 * np.pi)}
    elif name == "turn":
        p |= {"amp": rng.uniform(120, 170) * rng.choice([-1.0, 1.0])}
    elif name == "wave":
        p |= {"amp": rng.uniform(20, 35)}
    elif name == "waggle":
        p |= {"pose_a": pose("point"), "amp": rng.uniform(15, 25)}
    elif name == "beckon":
        curl = pose("relaxed")
        curl[[0, 2, 4, 6, 8, 10, 12, 14]] = np.clip(
            curl[[0, 2, 4, 6, 8, 10, 12, 14]] + rng.uniform(50, 70), 0, 110
        )
        p |= {"pose_b": curl}
    elif name == REST:
        p |= {"pose_a": pose(rng.choice(list(VOCABULARY)))}
    else:
        raise ValueError(f"unknown motion gesture {name!r}")
    return p


def motion_sample(
    name: str,
    rng: np.random.Generator,
    start_s: float = 2.0,
    duration_s: float | None = None,
    subject: int | None = None,
    left: bool | None = None,
) -> MotionSample:
    """A random performance of `name` (a fine class, or REST, a resting hand) starting at `start_s`."""
    if name not in MOTIONS and name != REST:
        raise ValueError(f"unknown motion gesture {name!r} (known: {', '.join(FINE)}, {REST})")
    params = _params(name, rng)
    return MotionSample(
        name=name,
        start_s=float(start_s),
        duration_s=float(rng.uniform(0.5, 1.5) if duration_s is None else duration_s),
        subject=int(rng.integers(1 << 30)) if subject is None else int(subject),
        left=bool(rng.random() < 0.5) if left is None else bool(left),
        base_rot=_base_rotation(rng),
        origin_mm=np.array([rng.uniform(-150, 150), rng.uniform(-100, 100), rng.uniform(350, 650)]),
        params=params if name != REST else params | {"still": True},
        drift_mm=np.stack([rng.uniform(0, 8, 3), rng.uniform(0, 2 * np.pi, 3)]),
    )


def track_noise(times_s: np.ndarray, noise_mm: float, rng: np.random.Generator) -> np.ndarray:
    """(T, 21, 3) jitter like a smoothed pose track's: white Gaussian noise low-passed by an exponential
    filter of time constant NOISE_TAU_S, rescaled so each coordinate's standard deviation is `noise_mm`."""
    t = np.asarray(times_s, np.float64)
    if noise_mm <= 0 or len(t) == 0:
        return np.zeros((len(t), 21, 3))
    dt = np.median(np.diff(t)) if len(t) > 1 else 1.0 / FPS
    a = 1.0 - np.exp(-dt / NOISE_TAU_S)
    white = rng.normal(size=(len(t), 21, 3)) * np.sqrt((2.0 - a) / a)
    out = np.empty_like(white)
    acc = white[0] * np.sqrt(a / (2.0 - a))  # start in the filter's steady state
    for i in range(len(t)):
        acc = acc + a * (white[i] - acc)
        out[i] = acc
    return out * noise_mm


def motion_track(
    sample: MotionSample, times_s: np.ndarray, rng: np.random.Generator, noise_mm: float = 0.0
) -> np.ndarray:
    """(T, 21, 3) joints of `sample` at `times_s` with `noise_mm` of track jitter (float32)."""
    if sample.params.get("still"):
        j = _joints_still(sample, times_s)
    else:
        j = sample.joints_at(times_s)
    return (j + track_noise(times_s, noise_mm, rng)).astype(np.float32)


def _joints_still(sample: MotionSample, times_s: np.ndarray) -> np.ndarray:
    shape = hand_shape(sample.subject)
    local = hand_joints_local(shape, sample.params["pose_a"], left=sample.left).joints
    t = np.asarray(times_s, np.float64)[:, None, None]
    drift = sample.drift_mm[0] * 2.5 * np.sin(2.0 * np.pi * 0.4 * t + sample.drift_mm[1])  # up to 20 mm
    return local @ sample.base_rot.T + sample.origin_mm + drift


def motion_windows(
    classes: tuple[str, ...] | list[str],
    per_class: int,
    seed: int,
    window_s: float = 1.5,
    frames: int = 32,
    noise_mm: float = 0.0,
    end_jitter_s: float = 0.15,
    partial: bool = False,
) -> dict[str, np.ndarray]:
    """`per_class` windows of each class as the runtime sees them: `frames` joint sets evenly spaced over
    the `window_s` seconds that end 0-`end_jitter_s` after the gesture ends (the hand rests before it).
    `partial`: windows that end 5-85 % of the way through the gesture instead,
    labelled REST (a gesture not yet finished is not yet a gesture: what the stage must not report).
    Returns windows_xyz_mm (N, frames, 21, 3) float32, label and coarse (N,) names, left (N,)."""
    rng = np.random.default_rng(seed)
    out, fine, left = [], [], []
    for name in classes:
        for _ in range(int(per_class)):
            s = motion_sample(name, rng, start_s=window_s + 0.5)
            end = s.end_s + rng.uniform(0.0, end_jitter_s)
            if partial:
                end = s.start_s + rng.uniform(0.05, 0.85) * s.duration_s
            times = np.linspace(end - window_s, end, int(frames))
            out.append(motion_track(s, times, rng, noise_mm))
            fine.append(REST if partial else name)
            left.append(s.left)
    fine_a = np.array(fine)
    return {
        "windows_xyz_mm": np.stack(out),
        "label": fine_a,
        "coarse": np.array([MOTIONS[f][0] if f in MOTIONS else REST_COARSE for f in fine_a]),
        "left": np.array(left),
    }


def performance(
    names: list[str], rng: np.random.Generator, fps: float = FPS, rest_s: float = 1.5, noise_mm: float = 0.0
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, float, float]]]:
    """A continuous track of one hand performing `names` in turn, resting `rest_s` before, between and
    after, sampled at `fps`: (times_ms (N,), joints (N, 21, 3) mm, [(name, start_s, end_s)]). The hand
    (subject, side, orientation) stays the same; each gesture starts where the last one left the wrist, and
    in the middle half of each rest the hand changes smoothly (minimum jerk) from the last gesture's final
    shape to the next one's first, as a user's hand would."""
    subject, left = int(rng.integers(1 << 30)), bool(rng.random() < 0.5)
    segments, samples, t = [], [], rest_s
    for name in names:
        s = motion_sample(name, rng, start_s=t, subject=subject, left=left)
        if samples:  # the same hand, held the same way
            s = replace(s, base_rot=samples[0].base_rot, origin_mm=samples[0].origin_mm)
        samples.append(s)
        segments.append((name, s.start_s, s.end_s))
        t = s.end_s + rest_s
    times = np.arange(0.0, t, 1.0 / fps)
    joints = samples[0].joints_at(times)
    offset = np.zeros(3)
    for prev, s in zip(samples, samples[1:]):
        offset = offset + prev.joints_at([prev.end_s])[0, 0] - s.joints_at([s.start_s])[0, 0]
        a, b = prev.end_s + 0.25 * rest_s, prev.end_s + 0.75 * rest_s
        w = min_jerk((times - a) / (b - a))[:, None, None]
        later = times >= a
        joints[later] = (1.0 - w[later]) * joints[later] + w[later] * (s.joints_at(times[later]) + offset)
    joints += track_noise(times, noise_mm, rng)
    return times * 1000.0, joints.astype(np.float32), segments
