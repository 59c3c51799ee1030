"""Dynamic gestures (swipes, taps, grips, circles, waves): windows of the smoothed joint track, their
features, and a gallery of enrolled motions. numpy only; the embedding network runs as an engine.

A window is the last `window_ms` of the track resampled to `frames` evenly spaced joint sets (1.5 s and 32 by
default: the slowest synthetic gesture fits, at ~21 samples a second). Its features, per sample (69 numbers):

- the hand's shape: canonical joints (stream.gestures.canonical: wrist at the origin, palm frame, palm-length
  unit), the wrist dropped (60) -- invariant to where the hand is, how it is turned and how big it is;
- the wrist's motion: its position minus its mean over the window, in the CAMERA's axes (x right, y down,
  z away from the camera), divided by the window's mean palm length (3). Direction is what tells a swipe
  left from a swipe right, so this part keeps the camera's orientation (a level camera is assumed) and
  drops only its position and the hand's distance and size. Motion is not expressed in the hand's frame:
  a swipe to the image's left stays one however the hand is turned;
- the hand's turning: its distal (y) and palmar (z) axes at each sample expressed in the window's mean hand
  frame (6) -- a turn or a wave, independent of how the hand is held on average.

The network (train.gesture.dynamic_models) derives joint-distance and frame-difference features from these,
as DD-Net does (Yang et al. 2019).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .canonical import FINGER_MCPS, INDEX_MCP, PINKY_MCP, WRIST
from .gallery import Gallery, read_gallery_file, write_gallery_file

WINDOW_MS = 1500.0
FRAMES = 32
FEATURES = 69  # 60 canonical joint coordinates + 3 wrist motion + 6 hand axes
MIN_COVERAGE = 0.8  # a window is judged once the track spans this fraction of it
REST = "still"  # the gallery name of a resting hand's windows: matched like any gesture, never reported


def hand_frames(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rot (..., 3, 3) whose rows are the hand's x, y, z axes in the input's frame, palm length (...,)) of
    (..., 21, 3) joints: the frame of stream.gestures.canonical_joints."""
    j = np.asarray(joints, np.float64)
    mcps = j[..., FINGER_MCPS, :] - j[..., WRIST : WRIST + 1, :]
    y = mcps.mean(-2)
    scale = np.sqrt((mcps * mcps).sum(-1)).mean(-1)
    y /= np.maximum(np.sqrt((y * y).sum(-1, keepdims=True)), 1e-12)
    x = j[..., INDEX_MCP, :] - j[..., PINKY_MCP, :]
    x -= (x * y).sum(-1, keepdims=True) * y
    x /= np.maximum(np.sqrt((x * x).sum(-1, keepdims=True)), 1e-12)
    x0, x1, x2 = x[..., 0], x[..., 1], x[..., 2]
    y0, y1, y2 = y[..., 0], y[..., 1], y[..., 2]
    z = np.stack([x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0], axis=-1)  # x cross y
    return np.stack([x, y, z], axis=-2), scale


def window_features(windows: np.ndarray) -> np.ndarray:
    """(..., T, 21, 3) joint windows (any unit) -> (..., T, 69) float32 features (see the module's doc)."""
    w = np.asarray(windows, np.float64)
    if w.ndim < 3 or w.shape[-2:] != (21, 3):
        raise ValueError(f"expected (..., T, 21, 3) windows, got {w.shape}")
    rot, scale = hand_frames(w)  # (..., T, 3, 3), (..., T)
    rel = w - w[..., WRIST : WRIST + 1, :]
    unit = np.maximum(scale, 1e-12)[..., None, None]
    canon = (rel @ np.swapaxes(rot, -1, -2)) / unit  # (..., T, 21, 3) in each frame's hand axes
    palm = np.maximum(scale.mean(-1), 1e-12)[..., None, None]
    wrist = w[..., WRIST, :]
    motion = (wrist - wrist.mean(-2, keepdims=True)) / palm
    u, _, vt = np.linalg.svd(rot.mean(-3))  # the mean frame: the rotation nearest the mean of the axes
    mean_rot = u @ vt
    turning = rot[..., 1:, :] @ np.swapaxes(mean_rot, -1, -2)[..., None, :, :]  # y, z axes in the mean frame
    feats = [
        canon[..., 1:, :].reshape(*canon.shape[:-2], 60),
        motion,
        turning.reshape(*turning.shape[:-2], 6),
    ]
    return np.concatenate(feats, axis=-1).astype(np.float32)


def resample_track(
    times_ms: np.ndarray,
    joints: np.ndarray,
    end_ms: float,
    window_ms: float = WINDOW_MS,
    frames: int = FRAMES,
) -> np.ndarray:
    """(frames, 21, 3): the track (times_ms increasing (N,), joints (N, 21, 3)) linearly interpolated at
    `frames` evenly spaced times over the `window_ms` ending at `end_ms`; before the track's first sample
    the first joints hold (the hand rested)."""
    t = np.asarray(times_ms, np.float64)
    j = np.asarray(joints, np.float64).reshape(len(t), -1)
    q = np.linspace(end_ms - window_ms, end_ms, int(frames))
    if len(t) == 1:
        return np.repeat(j.reshape(1, 21, 3), int(frames), axis=0)
    k = np.clip(np.searchsorted(t, q, side="right") - 1, 0, len(t) - 2)
    a = np.clip((q - t[k]) / np.maximum(t[k + 1] - t[k], 1e-9), 0.0, 1.0)[:, None]
    return ((1.0 - a) * j[k] + a * j[k + 1]).reshape(int(frames), 21, 3)


def example_window(
    joints: np.ndarray, fps: float = 30.0, window_ms: float = WINDOW_MS, frames: int = FRAMES
) -> np.ndarray:
    """One recorded example (n, 21, 3), sampled at `fps`, as the window the runtime sees when the gesture
    has just ended: its last `window_ms` (the first frame held before it when it is shorter)."""
    j = np.asarray(joints, np.float64)
    t = np.arange(len(j)) * 1000.0 / float(fps)
    return resample_track(t, j, float(t[-1]), window_ms, frames)


def resample_windows(windows: np.ndarray, frames: int) -> np.ndarray:
    """(N, T, 21, 3) windows -> (N, frames, 21, 3), linear in time over the same span."""
    w = np.asarray(windows, np.float64)
    if w.shape[1] == frames:
        return w
    src = np.linspace(0.0, 1.0, w.shape[1])
    return np.stack([resample_track(src, x, 1.0, 1.0, frames) for x in w])


def motion_extent(window: np.ndarray) -> float:
    """How far the hand moved in a (T, 21, 3) window: the extent (the norm of max - min per axis) of the
    wrist and each fingertip over the window, averaged, in palm lengths. Every synthetic motion spans at
    least 0.4 (a tap, a waggle), most above 0.7; a resting hand's drift stays well under it."""
    w = np.asarray(window, np.float64)
    pts = w[:, [0, 4, 8, 12, 16, 20]]
    palm = np.linalg.norm(w[:, FINGER_MCPS] - w[:, :1], axis=-1).mean()
    return float(np.linalg.norm(pts.max(0) - pts.min(0), axis=-1).mean() / max(palm, 1e-12))


def motion_segments(
    times_ms: np.ndarray,
    joints: np.ndarray,
    speed_mm_s: float = 150.0,
    min_ms: float = 250.0,
    gap_ms: float = 300.0,
) -> list[tuple[float, float]]:
    """[(start_ms, end_ms)] of the stretches where the hand moves: the mean speed of the wrist and the five
    fingertips above `speed_mm_s`, stretches closer than `gap_ms` merged, those shorter than `min_ms`
    dropped. How enrolment from a recording finds the performances of a gesture in it."""
    t = np.asarray(times_ms, np.float64)
    if len(t) < 3:
        return []
    pts = np.asarray(joints, np.float64)[:, [0, 4, 8, 12, 16, 20]]
    speed = np.linalg.norm(np.diff(pts, axis=0), axis=-1).mean(-1) / np.maximum(np.diff(t), 1e-6) * 1000.0
    speed = np.convolve(speed, np.ones(3) / 3.0, mode="same")
    moving = speed > speed_mm_s
    segs: list[list[float]] = []
    for i in np.flatnonzero(moving):
        a, b = t[i], t[i + 1]
        if segs and a - segs[-1][1] <= gap_ms:
            segs[-1][1] = b
        else:
            segs.append([a, b])
    return [(a, b) for a, b in segs if b - a >= min_ms]


class DynamicGallery(Gallery):
    """Named motion gestures, each a few example windows (N, T, 21, 3) of joints in mm (camera frame), not
    features or embeddings: features and embeddings are recomputed when loaded, so a gallery outlives a
    retrained engine (and a new window length: windows are resampled in time)."""

    kind = "dynamic"

    def __init__(self, labels: list[str] | None = None, joints: np.ndarray | None = None) -> None:
        super().__init__(
            list(labels or []), np.zeros((0, FRAMES, 21, 3), np.float32) if joints is None else joints
        )

    def add(self, name: str, windows: np.ndarray) -> None:
        """Enroll example windows of `name` (replacing any it had): (K, T, 21, 3) joints in mm."""
        name = str(name).strip()
        if not name or len(name) > 64 or any(c in name for c in "\n\r\t"):
            raise InputError(f"a gesture name must be 1-64 characters on one line, got {name!r}")
        w = np.asarray(windows, np.float32)
        if w.ndim != 4 or w.shape[2:] != (21, 3) or len(w) == 0 or w.shape[1] < 2:
            raise InputError(
                f"enrolling {name!r} needs (K, T, 21, 3) windows with K >= 1, T >= 2, got {w.shape}"
            )
        if not np.isfinite(w).all():
            raise InputError(f"enrolling {name!r}: the joints hold NaN or inf")
        if not self.labels:
            self.joints = np.zeros((0, *w.shape[1:]), np.float32)
        elif w.shape[1] != self.joints.shape[1]:
            w = resample_windows(w, self.joints.shape[1]).astype(np.float32)
        self.remove(name, missing_ok=True)
        self.labels += [name] * len(w)
        self.joints = np.concatenate([self.joints, w])

    def save(self, path: str | Path) -> Path:
        """Write atomically, marked as a dynamic gallery (a static one cannot be mistaken for it)."""
        return write_gallery_file(
            path, kind=self.kind, labels=np.array(self.labels, dtype=str), joints=self.joints
        )

    @classmethod
    def load(cls, path: str | Path, missing_ok: bool = False) -> DynamicGallery:
        path = Path(path)
        if missing_ok and not path.exists():
            return cls()
        kind, labels, joints = read_gallery_file(path, "handstream gesture enroll --dynamic")
        if kind != cls.kind:
            raise InputError(f"{path} is a gallery of static gestures; dynamic gestures need their own")
        if joints.ndim != 4 or joints.shape[0] != len(labels) or joints.shape[2:] != (21, 3):
            raise InputError(f"{path}: windows {joints.shape} do not match {len(labels)} labels")
        return cls(labels, joints)


def load_any_gallery(path: str | Path) -> Gallery:
    """A static or a dynamic gallery, whichever the file holds (for listing and removing)."""
    p = Path(path)
    if p.is_file():
        try:
            with np.load(p, allow_pickle=False) as z:
                if "kind" in z.files and str(z["kind"]) == DynamicGallery.kind:
                    return DynamicGallery.load(p)
        except (OSError, ValueError):
            pass
    return Gallery.load(p)
