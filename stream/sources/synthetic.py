"""The synthetic hand generator (stream.synth) as a source: a smooth, deterministic sequence.

Replay by default (every frame, as fast as the consumer takes them, for the demo and tests); with
`live=True` it is paced at `fps` like a camera and stamps each frame's capture moment.
"""

from __future__ import annotations

import time

from ..errors import InputError
from ..frames import CameraIntrinsics, RGBDFrame, camera
from .base import Lag, Pacer, Source


class SyntheticSource(Source):
    name = "synthetic"

    def __init__(
        self,
        n_frames: int = 300,
        fps: float = 30.0,
        seed: int = 0,
        cam: CameraIntrinsics | str = "d435_320x240",
        live: bool = False,
        distractors: bool = True,
    ) -> None:
        super().__init__()
        if n_frames < 1 or not fps > 0:
            raise InputError(f"synthetic source needs frames >= 1 and fps > 0, got {n_frames}, {fps}")
        self.n_frames, self.seed, self.live = int(n_frames), int(seed), bool(live)
        self.fps = float(fps)
        self.intrinsics = camera(cam) if isinstance(cam, str) else cam
        self.frame_count = self.n_frames
        self._distractors = distractors
        self._it = None
        self._pacer = Pacer()

    def _open(self) -> None:
        from ..synth import HandSynthesizer, SceneConfig  # imported here: only this source needs it

        cfg = SceneConfig(camera=self.intrinsics, distractors=self._distractors)
        self._it = HandSynthesizer(cfg, seed=self.seed).sequence(self.n_frames, fps=self.fps)

    def _read(self) -> RGBDFrame | None:
        sample = next(self._it, None)
        if sample is None:
            return None
        f = sample.frame
        if self.live:
            self._pacer.wait(f.timestamp_ms)
            f.meta["t_capture_ns"] = time.perf_counter_ns()
        f.meta["joints_xyz_mm_true"] = sample.joints_xyz_mm  # ground truth, for evaluation tools
        f.meta["gesture_fine_true"] = sample.gesture_fine  # an index into stream.synth.hand.GESTURES_FINE
        return f

    def lag(self) -> Lag | None:
        """Paced (live) only: how the generator keeps up with its frame rate."""
        return self._pacer.lag() if self.live else None

    def _close(self) -> None:
        self._it = None
