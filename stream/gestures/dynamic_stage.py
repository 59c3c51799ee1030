"""The dynamic gesture stage: the smoothed joint track of the last ~1.5 s -> the enrolled motion it shows (a
swipe, a tap, a grab...), reported once per performance.

Reads `joints_mm` (after smoothing) and the frame's timestamp; keeps the track of the last `window_ms` on the
instance (each tracked hand has its own copy of the stage); every `stride` frames resamples it to the
engine's window, embeds its features (stream.gestures.dynamic) and finds the nearest enrolled example. A
motion is reported -- `dynamic_gesture` set to its name on that one frame's record, null on every other --
when the same name (not REST, a resting hand's) has been nearest, within the rejection distance, at
`confirm` evaluations in a row. Then the window is emptied and nothing is reported for `refractory_ms`, so
one swipe is one report: the next one needs a window of fresh frames. `dynamic_gesture_distance` is the
latest evaluation's distance (null on frames without one). The overlay shows the last reported name for
`show_ms`. A window in which the hand barely moved (less than `min_motion` palm lengths,
stream.gestures.dynamic.motion_extent) is not embedded at all: a resting hand costs almost nothing and
cannot be named. Nor is one whose hand is still moving (`_settled`, over `settle_ms`): a motion is judged
once it has ended, so a double tap is not named at its first tap.

The gallery defaults to the one shipped beside the engine (`NAME_gallery.npz`: every built-in motion);
`--dynamic-gestures G.npz` (handstream run) swaps in a user's own. The rejection distance, the window length
and its sample count come from the engine's manifest.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import cv2
import numpy as np

from ..compiled import announce_compile, not_compiled
from ..errors import InputError
from ..stage_registry import register_stage
from ..stages import FrameState, Stage
from . import dynamic_kernels
from .dynamic import (
    FEATURES,
    FRAMES,
    MIN_COVERAGE,
    REST,
    WINDOW_MS,
    DynamicGallery,
    motion_extent,
    resample_track,
    resample_windows,
    window_features,
)
from .gallery import UNKNOWN, nearest
from .stage import default_gallery_path, stage_gallery, stage_reject_distance

KERNEL_ATOL = 1e-5  # the kernel's features of the gallery's windows against the numpy path's, at set-up


class DynamicMatcher:
    """The read-only part shared by every hand's copy of the stage: the engine and the embedded gallery.

    With numba the numpy work of an evaluation (resampling, the motion test, the features, the nearest
    example) runs as compiled calls (stream/gestures/dynamic_kernels.py), compiled and checked against the
    numpy features of the gallery's windows here, at set-up; without numba, or where they disagree, the
    numpy path (the reference) runs."""

    def __init__(
        self, engine, gallery: DynamicGallery, window_ms: float, frames: int, use_kernel: bool = True
    ) -> None:
        self.engine = engine
        self._out = engine.output_names[0]
        self.labels = np.array(gallery.labels)
        self.window_ms, self.frames = float(window_ms), int(frames)
        windows = resample_windows(gallery.joints, self.frames)
        feats = window_features(windows)
        self.embeddings = np.concatenate([self.embed(f) for f in feats]).astype(np.float64)
        self.sq = (self.embeddings**2).sum(1)
        self._gallery_t = np.ascontiguousarray(self.embeddings.T)
        self.runs_kernel = use_kernel and dynamic_kernels.HAVE_NUMBA and self._kernel_agrees(windows, feats)

    def _kernel_agrees(self, windows: np.ndarray, feats: np.ndarray) -> bool:
        """Compiles the kernels on the gallery's windows (each given as a track sampled at its own window's
        times) and checks their features against the numpy ones."""
        announce_compile(dynamic_kernels, "dynamic-gesture")
        try:
            return self._features_agree(windows, feats)
        except Exception as exc:  # noqa: BLE001 - numba cannot compile here: the numpy path serves
            not_compiled("dynamic-gesture", exc)
            return False

    def _features_agree(self, windows: np.ndarray, feats: np.ndarray) -> bool:
        times = np.linspace(0.0, self.window_ms, self.frames)
        out = np.empty((self.frames, feats.shape[-1]), np.float32)
        for w, ref in zip(windows, feats):
            j = np.ascontiguousarray(w, np.float64)
            _, ok = dynamic_kernels.window_features_into(times, j, self.window_ms, self.window_ms, -1.0, out)
            if not ok or not np.allclose(out, ref, atol=KERNEL_ATOL, rtol=0.0):
                return False
        dynamic_kernels.settled(times, j, self.window_ms, 150.0, 0.15)
        dynamic_kernels.nearest_row(np.zeros(len(self._gallery_t), np.float32), self._gallery_t, self.sq)
        return True

    def embed(self, features: np.ndarray) -> np.ndarray:
        """(T, 69) features -> (1, d) embedding."""
        return np.asarray(self.engine.infer(features[None].astype(np.float32))[self._out], np.float32)

    def __call__(
        self, times_ms: np.ndarray, joints: np.ndarray, end_ms: float, min_motion: float = 0.0
    ) -> tuple[str, float | None]:
        """(nearest enrolled name, distance) of the window of the track that ends at `end_ms`; (REST, None)
        without embedding it when the hand moved less than `min_motion` palm lengths (motion_extent)."""
        if self.runs_kernel:
            feats = np.empty((self.frames, FEATURES), np.float32)
            extent, ok = dynamic_kernels.window_features_into(
                times_ms, joints, float(end_ms), self.window_ms, float(min_motion), feats
            )
            if extent < min_motion:
                return REST, None
            if ok:
                e = self.embed(feats)[0]
                row, dist = dynamic_kernels.nearest_row(e, self._gallery_t, self.sq)
                return str(self.labels[row]), dist
        return self.numpy_call(times_ms, joints, end_ms, min_motion)

    def numpy_call(
        self, times_ms: np.ndarray, joints: np.ndarray, end_ms: float, min_motion: float = 0.0
    ) -> tuple[str, float | None]:
        """`__call__` by numpy calls: the reference for the kernels, and the path without numba."""
        w = resample_track(times_ms, joints, end_ms, self.window_ms, self.frames)
        if motion_extent(w) < min_motion:
            return REST, None
        e = self.embed(window_features(w)).astype(np.float64)
        idx, d = nearest(self.embeddings, self.sq, e)
        return str(self.labels[int(idx[0])]), float(d[0])


def with_rest(gallery: DynamicGallery, default: Path | None) -> DynamicGallery:
    """The gallery, with the resting-hand windows of the engine's default gallery added when it has none
    of its own: a resting hand then finds a REST example nearest instead of the closest gesture."""
    if REST in gallery.names or default is None:
        return gallery
    rest = DynamicGallery.load(default)
    if REST not in rest.names:
        return gallery
    out = DynamicGallery(list(gallery.labels), gallery.joints)
    out.add(REST, rest.joints[[n == REST for n in rest.labels]])
    return out


@register_stage("dynamic_gesture", tasks=("dynamic_gesture_embedding",))
class DynamicGestureStage(Stage):
    """Names the motion of the smoothed skeleton over the last ~1.5 s from a gallery of enrolled motions,
    once per performance (confirmation, then a refractory period)."""

    reads = ("joints_mm",)
    writes = ("dynamic_gesture", "dynamic_gesture_distance")
    engine = "dynamic_gesture"
    needs_engine = True

    def __init__(
        self,
        engine,
        name: str = "dynamic_gesture",
        gallery: str | Path | DynamicGallery | None = None,
        reject_distance: float | None = None,
        stride: int = 3,
        confirm: int = 2,
        refractory_ms: float = 1000.0,
        show_ms: float = 1000.0,
        min_motion: float = 0.3,
        settle_ms: float = 150.0,
        settle_motion: float = 0.15,
    ) -> None:
        super().__init__(engine, name)
        gallery, g = stage_gallery(engine, gallery, DynamicGallery, "dynamic gesture", "--dynamic-gestures")
        if not [n for n in g.names if n != REST]:
            raise InputError(f"the dynamic gesture gallery {gallery} has no gesture enrolled")
        g = with_rest(g, default_gallery_path(engine))
        prep = getattr(engine.manifest, "preprocessing", {}) or {}
        reject_distance = stage_reject_distance(engine, reject_distance, "dynamic gesture")
        if int(stride) < 1 or int(confirm) < 1 or refractory_ms < 0:
            raise InputError("dynamic gestures need stride >= 1, confirm >= 1 and refractory_ms >= 0")
        self.matcher = DynamicMatcher(
            engine, g, float(prep.get("window_ms", WINDOW_MS)), int(prep.get("frames", FRAMES))
        )
        self.reject_distance = float(reject_distance)
        self.stride, self.confirm = int(stride), int(confirm)
        self.refractory_ms, self.show_ms = float(refractory_ms), float(show_ms)
        self.min_motion = float(min_motion)
        self.settle_ms, self.settle_motion = float(settle_ms), float(settle_motion)
        self.reset()

    def reset(self) -> None:
        # rebinds every piece of state (a hand's copy made by copy.copy shares nothing with the original)
        self._times: deque[float] = deque()
        self._joints: deque[np.ndarray] = deque()
        self._frames = 0
        self._streak: tuple[str, int] = (UNKNOWN, 0)
        self._quiet_until = -np.inf
        self._shown: tuple[str | None, float] = (None, -np.inf)

    def _forget_window(self) -> None:
        self._times, self._joints = deque(), deque()
        self._streak = (UNKNOWN, 0)

    def run(self, st: FrameState) -> None:
        st.fields["dynamic_gesture"] = None
        st.fields["dynamic_gesture_distance"] = None
        j = st.joints_mm
        if j is None or not np.isfinite(j).all():
            self._forget_window()  # a lost hand breaks the track; the name on screen may stay
            return
        t = float(st.frame.timestamp_ms)
        if self._times and t <= self._times[-1]:  # a clock that went back: a new track
            self._forget_window()
        self._times.append(t)
        self._joints.append(np.asarray(j, np.float64))
        window = self.matcher.window_ms
        while len(self._times) > 2 and self._times[1] <= t - window:
            self._times.popleft()
            self._joints.popleft()
        self._frames += 1
        if t < self._quiet_until or t - self._times[0] < MIN_COVERAGE * window or self._frames % self.stride:
            return
        times, joints = np.fromiter(self._times, np.float64, len(self._times)), np.array(self._joints)
        if self.settle_ms > 0 and not self._settled(t, times, joints):
            return
        label, dist = self.matcher(times, joints, t, self.min_motion)
        st.fields["dynamic_gesture_distance"] = dist
        label = UNKNOWN if label == REST or dist is None or dist > self.reject_distance else label
        n = self._streak[1] + 1 if label == self._streak[0] else 1
        self._streak = (label, n)
        if label != UNKNOWN and n >= self.confirm:
            st.fields["dynamic_gesture"] = label
            self._shown = (label, t + self.show_ms)
            self._quiet_until = t + self.refractory_ms
            self._forget_window()

    def _settled(self, t: float, times: np.ndarray | None = None, joints: np.ndarray | None = None) -> bool:
        """Whether the hand has come to rest: the mean positions of the wrist and fingertips over the last
        `settle_ms` and over the `settle_ms` before moved less than `settle_motion` palm lengths apart
        (means, so a pose engine's jitter averages out). A double tap is not judged between its taps.
        `times` and `joints` are the track's arrays, made from the deques when not given."""
        if times is None or joints is None:
            times, joints = np.fromiter(self._times, np.float64, len(self._times)), np.array(self._joints)
        if self.matcher.runs_kernel:
            return bool(dynamic_kernels.settled(times, joints, t, self.settle_ms, self.settle_motion))
        return self._settled_numpy(t, times, joints)

    def _settled_numpy(self, t: float, times: np.ndarray, j: np.ndarray) -> bool:
        """`_settled` by numpy calls: the reference for the kernel."""
        recent, before = (
            times > t - self.settle_ms,
            (times > t - 2 * self.settle_ms) & (times <= t - self.settle_ms),
        )
        if not recent.any() or not before.any():
            return True
        pts = j[:, [0, 4, 8, 12, 16, 20]]
        palm = np.linalg.norm(j[-1, [5, 9, 13, 17]] - j[-1, 0], axis=-1).mean()
        moved = np.linalg.norm(pts[recent].mean(0) - pts[before].mean(0), axis=-1).mean()
        return bool(moved < self.settle_motion * max(palm, 1e-9))

    def record_fields(self, st: FrameState) -> dict:
        d = st.fields.get("dynamic_gesture_distance")
        return {
            "dynamic_gesture": st.fields.get("dynamic_gesture"),
            "dynamic_gesture_distance": None if d is None else round(d, 4),
        }

    def draw(self, image: np.ndarray, st: FrameState) -> None:
        name, until = self._shown
        if not name or st.frame.timestamp_ms > until or st.joints_uvd is None:
            return
        u, v = st.joints_uvd[0, :2]
        if not (np.isfinite(u) and np.isfinite(v)):
            return
        org = (int(np.clip(u, 0, image.shape[1] - 1)), int(np.clip(v + 36, 12, image.shape[0] - 4)))
        cv2.putText(image, name, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, name, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 200, 80), 1, cv2.LINE_AA)
