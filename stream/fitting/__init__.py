"""Model-based refinement of the pose engine's joints: the articulated hand of stream.synth fitted to the
observed depth (model.py: kinematics and Jacobians; ik.py: initialisation from joints; fit.py: the energy
and its Gauss-Newton steps; stage.py: the `fit` stage of the pipeline; kernels.py: the same fit compiled with
numba, which the stage runs, the numpy code staying the reference and the fallback)."""

from .fit import FitConfig, FitResult, Observation, fit_hand, observe
from .ik import estimate_size, inverse_kinematics
from .model import HandModel, build_model, default_shape, pose_model

__all__ = [
    "FitConfig",
    "FitResult",
    "HandModel",
    "Observation",
    "build_model",
    "default_shape",
    "estimate_size",
    "fit_hand",
    "inverse_kinematics",
    "observe",
    "pose_model",
]
