"""Synthetic labelled RGB-D hands (numpy/OpenCV only): the project's source of training and test data.

See scene.py for the scene model and label conventions, hand.py for the kinematics and gestures.
"""

from .dataset import load_dataset, write_dataset
from .hand import (
    FINE_TO_COARSE,
    GESTURES_COARSE,
    GESTURES_FINE,
    JOINT_NAMES,
    NYU_FROM_21,
    NYU_JOINT_NAMES,
    nyu_from_21,
)
from .scene import GENERATOR_VERSION, HandSynthesizer, OtherHand, SceneConfig, SynthSample
from .scenes import SCENE_KINDS
from .sensor import SensorModel

__all__ = [
    "FINE_TO_COARSE",
    "GENERATOR_VERSION",
    "GESTURES_COARSE",
    "GESTURES_FINE",
    "JOINT_NAMES",
    "NYU_FROM_21",
    "NYU_JOINT_NAMES",
    "HandSynthesizer",
    "OtherHand",
    "SCENE_KINDS",
    "SceneConfig",
    "SensorModel",
    "SynthSample",
    "load_dataset",
    "nyu_from_21",
    "write_dataset",
]
