"""The size_fit stage: the user's hand size measured by fitting hand models of several sizes to the depth.

Reads the pose engine's joints and the crop they came from; over the first `frames` frames of a track with
a hand it fits every candidate model (stream/size/measure.py) to the frame, adds the energies to the
track's sums and writes `hand_size_frame_mm` (this frame's best size), `hand_size_mm` (the sums' best
size) and `hand_size_confidence` (the share of the population's variance in length that the sums' evidence
removed: 0 with no evidence, near 1 when sharp). Then the size is held and the stage costs nothing per frame: a hand's size
does not change, and the fits are what costs (BENCHMARKS.md, "Hand size"). With a user file (`--user`)
the size is fixed from it with confidence 1, as in the `size` stage.

The measurement starts over when the hand has been gone for `lost_frames` frames (the next hand may be
someone else's) and on reset() (a new sequence; one copy per tracked hand when several are tracked).
Left hands (`fields["handedness"] == "left"`) are measured as mirrored right hands, as the fit stage does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fitting import observe
from ..stage_registry import register_stage
from ..stages import FrameState, Stage
from .measure import SizeFitConfig, SizeFitter
from .stage import SizeStage
from .user import load_user


@register_stage("size_fit")
class SizeFitStage(Stage):
    """Hand length and palm width measured on the depth: the size whose fitted hand model explains the
    first frames of a track best."""

    reads = ("joints_raw_mm", "crop")
    optional_reads = ("handedness",)
    writes = ("hand_size_frame_mm", "hand_size_mm", "hand_size_confidence")

    def __init__(
        self,
        name: str = "size_fit",
        user: str | Path | np.ndarray | None = None,
        frames: int = 30,
        lost_frames: int = 15,
        config: SizeFitConfig | None = None,
    ) -> None:
        super().__init__(None, name)
        self.user = None if user is None else (load_user(user) if not isinstance(user, np.ndarray) else user)
        self.frames = max(1, int(frames))
        self.lost_frames = int(lost_frames)
        # the candidate models are built here, before the first frame; a fixed user size needs none
        self.fitter = SizeFitter(config) if self.user is None else None
        self.reset()

    def reset(self) -> None:
        if self.fitter is not None:
            self.fitter = self.fitter.fork()  # fresh sums, the same (read-only) models
        self._missing = 0
        self._size: np.ndarray | None = None
        self._confidence = 0.0

    def run(self, st: FrameState) -> None:
        if st.crop is None or st.joints_raw_mm is None:
            self._missing += 1
            if self._missing >= self.lost_frames and self.fitter is not None and self.fitter.frames:
                self.reset()
            return
        self._missing = 0
        if self.user is not None:
            st.fields["hand_size_mm"] = self.user.copy()
            st.fields["hand_size_confidence"] = 1.0
            return
        if self.fitter.frames < self.frames:
            left = st.fields.get("handedness") == "left"
            obs = observe(st.crop, st.frame.depth_mm, self.fitter.cfg.fit.points, mirror=left)
            if obs is not None:
                st.fields["hand_size_frame_mm"] = self.fitter.add(obs, st.joints_raw_mm).astype(np.float32)
                self._size, self._confidence = self.fitter.estimate()
        if self._size is not None:
            st.fields["hand_size_mm"] = self._size.copy()
            st.fields["hand_size_confidence"] = self._confidence

    record_fields = SizeStage.record_fields
    draw = SizeStage.draw
