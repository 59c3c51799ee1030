"""The size stage: the hand crop -> this frame's hand size -> the calibrated user's hand size.

Reads `crop` (the pipeline's metric cube crop), runs the size engine (a multi-task MobileNetV2 trained by
`handstream train size`, seed 002) and writes `hand_size_frame_mm` (this frame's estimate), then feeds a
SizeCalibrator and writes `hand_size_mm` = np.float32 [length, width] and `hand_size_confidence` in [0, 1],
which reach the JSON-lines record. With a user file (`handstream run --user user.json`, written by
`handstream calibrate`) the size is fixed from the file with confidence 1 and the engine is not run.

The calibration starts over when the hand has been gone for `lost_frames` frames (the next hand may be
someone else's) and on reset() (a new sequence; one copy per tracked hand when several are tracked).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..stage_registry import register_stage
from ..stages import FrameState, Stage
from .calibrator import SizeCalibrator
from .user import load_user


@register_stage("size", tasks=("hand_size",))
class SizeStage(Stage):
    """Hand length and palm width, per frame and calibrated over the frames of one hand."""

    reads = ("crop",)
    writes = ("hand_size_frame_mm", "hand_size_mm", "hand_size_confidence")
    engine = "size"
    needs_engine = True

    def __init__(
        self,
        engine,
        name: str = "size",
        user: str | Path | np.ndarray | None = None,
        window: int = 90,
        lost_frames: int = 15,
    ) -> None:
        super().__init__(engine, name)
        pre = dict(getattr(engine.manifest, "preprocessing", {}) or {})
        if str(pre.get("input", "depth")) != "depth":
            raise InputError("the size stage runs depth-crop engines; this one wants another input")
        self.size = int(pre.get("crop_size") or 64)
        self.cube_mm = float(pre.get("cube_mm") or 300.0)
        self._out = engine.output_names[0]
        self.user = None if user is None else (load_user(user) if not isinstance(user, np.ndarray) else user)
        self.window = int(window)
        self.lost_frames = int(lost_frames)
        self.reset()

    def reset(self) -> None:
        self.calibrator = SizeCalibrator(window=self.window)  # rebound: forked copies share nothing
        self._missing = 0

    def _input(self, st: FrameState) -> np.ndarray:
        """The crop as the engine was trained on it: the pipeline's own when its cube and size match the
        manifest, else cut again around the same centre and mask."""
        crop = st.crop
        if crop.size == self.size and abs(crop.cube_mm - self.cube_mm) < 1e-6:
            x = crop.depth
        else:
            from ..preprocess import crop_cube

            det = st.detection
            mask = getattr(det, "mask", None)
            f = st.frame
            x = crop_cube(f.depth_mm, f.intrinsics, crop.com_xyz_mm, self.cube_mm, self.size, mask).depth
        return np.ascontiguousarray(x, np.float32).reshape(1, 1, self.size, self.size)

    def run(self, st: FrameState) -> None:
        if st.crop is None:
            self._missing += 1
            if self._missing >= self.lost_frames and len(self.calibrator):
                self.reset()
            return
        self._missing = 0
        if self.user is not None:
            st.fields["hand_size_mm"] = self.user.copy()
            st.fields["hand_size_confidence"] = 1.0
            return
        out = np.asarray(self.engine.infer(self._input(st))[self._out], np.float32).reshape(-1)[:2]
        st.fields["hand_size_frame_mm"] = out
        self.calibrator.add(out)
        est, conf = self.calibrator.estimate()
        if est is not None:
            st.fields["hand_size_mm"] = est
            st.fields["hand_size_confidence"] = conf

    def record_fields(self, st: FrameState) -> dict:
        size = st.fields.get("hand_size_mm")
        if size is None:
            return {}
        rec = {
            "hand_size_mm": [round(float(v), 1) for v in size],
            "hand_size_confidence": round(float(st.fields.get("hand_size_confidence", 0.0)), 3),
        }
        frame = st.fields.get("hand_size_frame_mm")
        if frame is not None:
            rec["hand_size_frame_mm"] = [round(float(v), 1) for v in frame]
        return rec

    def draw(self, image: np.ndarray, st: FrameState) -> None:
        size = st.fields.get("hand_size_mm")
        if size is None or st.crop is None:
            return
        u, v = st.crop.com_uvd[:2]
        if not (np.isfinite(u) and np.isfinite(v)):
            return
        text = f"{size[0]:.0f}x{size[1]:.0f} mm {100 * float(st.fields.get('hand_size_confidence', 0)):.0f}%"
        org = (int(np.clip(u - 40, 0, image.shape[1] - 1)), int(np.clip(v - 30, 12, image.shape[0] - 4)))
        cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 220, 120), 1, cv2.LINE_AA)
