"""The hand's centre moved by a network that reads the crop: DeepPrior++'s centre refinement, on our crop.

The segmenter's centre is the mean point of its mask. Where the mask runs from the hand onto the wrist and
forearm -- a forearm entering from the image border at close range, the hand seen along the arm -- that
mean lands below the hand, and the cube, the pose engine and the tracking follow it: on the close-range
tuning sequences most frames counted "on a wrong object" were such frames (BENCHMARKS.md, "Where the wrong
frames come from"), and no rule on the mask mended them without losing elsewhere. DeepPrior++ (Oberweger
and Lepetit, 2017) refines its centre of mass with a small network that regresses, from the crop around
it, the offset to the hand's centre; the `centre` engine does the same on the pose engine's crop (resized
to 64 px): the offset from the crop's centre to the mean point of the hand's visible pixels (pushed 10 mm
back, as the segmenter's centre is), in units of half the cube (train/centre/).

The preprocess stage moves the first hand's centre by the offset when it is at least `gate_mm` (smaller
offsets are within the network's own error and moving by them only shakes the crop), cuts the crop again
there and tracks from the moved centre. Two limits keep it where it helps: a move that brings the centre
more than `max_towards_camera_mm` nearer the camera is not taken (a forearm reaching towards the camera
pulls the mask's mean nearer than the hand, so the moves that mend it go away from the camera; the moves
towards it lost a frontal tuning sequence 4-16 frames), and only a hand found alone is moved (with two
hands in view, moving the first cost the two-hand tuning sequences handedness). Chosen on the tuning
sequences, seeds 9200-9500 (BENCHMARKS.md, "The centre engine").

One engine call (0.10 ms) and, after a move, a second cut of the crop cost the preprocess stage 0.15-0.25
ms a frame on the 2-core VM; while the engine leaves a tracked hand where it is, it is asked every
`idle_every`-th frame only (a new track, and every frame after a move, always): +0.05 ms of a settled
one-hand stream's median in a same-machine A/B.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from ..geometry import xyz_to_uvd

# the smallest offset acted on and the largest step towards the camera taken (tuning: BENCHMARKS.md)
CENTRE_GATE_MM = 25.0
CENTRE_MAX_TOWARDS_CAMERA_MM: float | None = 15.0
CENTRE_IDLE_EVERY = 4

# the engine's input side: the pose engine's crop (96 px) resized, as the presence engine reads it
CENTRE_INPUT_PX = 64


class CentreRefiner:
    """Runs the `centre` engine on a hand's crop and moves the hand's centre by its offset."""

    def __init__(
        self,
        engine,
        gate_mm: float = 25.0,
        max_towards_camera_mm: float | None = None,
        idle_every: int = 1,
    ) -> None:
        """`engine`: the shipped "centre" engine (or one with its contract: (1, 1, 64, 64) normalized crop
        -> (1, 3) offset over half the cube); `gate_mm`: the smallest offset acted on;
        `max_towards_camera_mm`: a move that brings the centre nearer the camera by more than this is not
        taken (None: any); `idle_every`: while it leaves a tracked hand where it is, asked on every this
        many frames (1: every frame; a new track, and the frame after a move, always)."""
        if gate_mm < 0:
            raise ValueError(f"gate_mm must be >= 0, got {gate_mm}")
        self.engine = engine
        self.gate_mm = float(gate_mm)
        self.max_towards_camera_mm = None if max_towards_camera_mm is None else float(max_towards_camera_mm)
        if int(idle_every) < 1:
            raise ValueError(f"idle_every must be >= 1, got {idle_every}")
        self.idle_every = int(idle_every)
        self._out = engine.manifest.output_names[0]

    def due(self, idle_frames: int | None) -> bool:
        """Whether to run the engine on this frame: `idle_frames` is how many frames ago it last ran and
        moved nothing (None: a new track, or the last run moved the centre)."""
        return idle_frames is None or idle_frames + 1 >= self.idle_every

    def offset_mm(self, crop_depth: np.ndarray, cube_mm: float) -> np.ndarray:
        """The offset (3,) in camera mm from the crop's centre to the hand's centre, by the engine."""
        x = np.asarray(crop_depth, np.float32)
        if x.shape != (CENTRE_INPUT_PX, CENTRE_INPUT_PX):
            x = cv2.resize(x, (CENTRE_INPUT_PX, CENTRE_INPUT_PX), interpolation=cv2.INTER_NEAREST)
        out = self.engine.infer(x[None, None])[self._out]
        return np.asarray(out, np.float64).reshape(-1)[:3] * (cube_mm / 2.0)

    def moved(self, det, crop, intr):
        """`det` with its centre moved by the engine's offset on `crop`, or None when the offset is under
        the gate (or not finite), or brings the centre too far towards the camera."""
        off = self.offset_mm(crop.depth, crop.cube_mm)
        if not np.all(np.isfinite(off)) or float(np.linalg.norm(off)) < self.gate_mm:
            return None
        if self.max_towards_camera_mm is not None and -float(off[2]) > self.max_towards_camera_mm:
            return None
        com = np.asarray(det.com_xyz_mm, np.float64) + off
        if com[2] <= 0:
            return None
        return replace(det, com_xyz_mm=com, com_uvd=xyz_to_uvd(com, intr))
