"""Handedness from the articulated fit: the hand model (stream/fitting) fitted to the hand's depth once as a
right hand and once as a left one, each from the pose engine's own reading of that side; the side whose fit
explains the depth better is the hand's side.

The analysis-by-synthesis cue (synthesis.py) compares the pose engine's two skeletons against the crop by
where their joints land; it is right on 60-64 % of crops alone. A fitted model explains every observed hand
point and must keep out of the free space in front of the surface and outside the mask, within the joint
limits and near the pose prior; a left hand's depth has no good right-hand explanation, whatever the engine
said. On the generator's two-hand frontal frames (independent frames, hands cut with their true masks), the
depth energy's difference alone names the side of 92-94 % of hands against 76-78 % for the handedness
engine with the synthesis cue (BENCHMARKS.md, "Two hands"); on the runtime's own crops (seeds 100-400,
4 900 hand-frames) it alone names 89.8 % of tuning hand-frames against 87.1 % for it combined with them, so
the handedness stage reads this cue alone where it has evidence (handedness.FIT_CUE), as the log of the
two energies' ratio. It costs two small cold fits a hand (`CUE_FIT`, ~0.8 ms), which the pipeline pays
until a track's side settles (at most its first second).
"""

from __future__ import annotations

import numpy as np

from ..fitting.pose_prior import SHIPPED as SHIPPED_GAUSSIAN
from ..stages import FrameState, pose_joints

# the cue's fits: a hand model of the median adult size unless the user's is known (a model per estimated
# size is built on first use, several fits' worth each, which a track's first frames would pay over and
# over), no rescue of a bad start, 4 steps on 128 points. Each fit then costs ~0.4 ms against ~1.7-3.4 ms
# for the stage's own fit with a per-frame size estimate, and the side is named as well: 91.4 / 91.8 %
# against 92.1 / 93.9 % of hands alone on tuning seeds 4242 / 5151, the same through the runtime
CUE_FIT = {"rescue_fingers": 0, "iterations": 4, "points": 128}
CUE_SIZE_MM = (185.0, 83.0)
# the cue is the log of the two fits' energy ratio (handedness.FIT_CUE): the same gap between two poor fits
# (a crop that holds another object, a reading upside down) weighs less than between two good ones. The
# floor keeps two near-perfect fits (energies of a fraction of a mm^2) from reading as a strong ratio
ENERGY_FLOOR_MM2 = 1.0


class FitSide:
    """Depth energies of the right-hand and left-hand fits of one hand's crop."""

    def __init__(self, config=None, size_mm: tuple[float, float] = CUE_SIZE_MM) -> None:
        """`config`: the fits' `FitConfig` (default: the stage's with `CUE_FIT`); `size_mm`: the hand
        model's (length, width) when the frame carries no `hand_size_mm`."""
        from dataclasses import replace

        from ..fitting.fit import FitConfig
        from ..fitting.stage import FitStage

        config = config or replace(FitConfig(), **CUE_FIT)
        # cold fits only: every call starts from this frame's engine joints. The pose prior is the single
        # Gaussian the cue was first learned with (then combined with the handedness engine), not the fit
        # stage's mixture (on tuning seed 4242 the mixture named as many frames right, 95.8 against
        # 95.7 %, and one track of 18 wrong)
        self._fit = FitStage(
            config=config, temporal=False, warm_start=False, keep_cold=False, pose_prior=SHIPPED_GAUSSIAN
        )
        self.size_mm = np.asarray(size_mm, dtype=np.float32)

    def energy_log_ratio(self, st: FrameState, own: np.ndarray, mirrored: np.ndarray) -> float | None:
        """log((E_right + f) / (E_left + f)), E the fits' depth energies per point (mm^2; `energies`), f
        `ENERGY_FLOOR_MM2`: > 0 says left. None (no evidence) where `energies` has none."""
        e = self.energies(st, own, mirrored)
        if e is None:
            return None
        return float(np.log((e[0] + ENERGY_FLOOR_MM2) / (e[1] + ENERGY_FLOOR_MM2)))

    def energies(self, st: FrameState, own: np.ndarray, mirrored: np.ndarray) -> tuple[float, float] | None:
        """The right-hand fit's and the left-hand fit's depth energy per point (mm^2), from the pose
        engine's raw outputs on the crop (`own`) and on its mirror (`mirrored`); None (no evidence) when
        either reading is not finite or too few hand pixels are seen to fit."""
        crop = st.crop
        size = st.fields.get("hand_size_mm", self.size_mm)
        energies = []
        for left, out in ((False, own), (True, mirrored)):
            joints = pose_joints(out, crop, left)
            if joints is None:
                return None
            side = FrameState(st.frame)
            side.crop, side.joints_raw_mm, side.detection = crop, joints, st.detection
            side.fields["handedness"] = "left" if left else "right"
            side.fields["hand_size_mm"] = size
            self._fit.reset()
            self._fit.run(side)
            e = side.fields.get("fit_energy_per_point")
            if e is None or not np.isfinite(e):
                return None
            energies.append(float(e))
        return energies[0], energies[1]
