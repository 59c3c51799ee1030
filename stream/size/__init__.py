"""Hand size: the per-frame size stage, the calibrator that turns its estimates into the user's hand size,
the user file (`handstream calibrate` writes it, `handstream run --user` reads it) and the study's metrics."""

from .calibrator import SizeCalibrator
from .metrics import calibrated_errors, grouped_folds, held_errors, mae, mape, sequence_spread
from .user import load_user, save_user

__all__ = [
    "SizeCalibrator",
    "calibrated_errors",
    "grouped_folds",
    "held_errors",
    "load_user",
    "mae",
    "mape",
    "save_user",
    "sequence_spread",
]
