"""Preprocessing: hand segmentation, centre of mass, cube normalization, RGB crop, mask from depth.

numpy + OpenCV (+ ONNX Runtime for the learned detector, detect.py), no torch. See the segment package for
the segmentation methods (learned detector, classic rules) and cube.py for the cube
normalization and its deviation from the thesis (3-D centre of mass instead of I(cm)).
"""

from .cube import CubeCrop, crop_cube, cube_window, denormalize_joints, normalize_joints
from .detect import HandDetector, detector_input
from .mask import mask_from_depth
from .rgb import RGB_MEAN, RGB_STD, crop_rgb
from .segment import HandDetection, HandSegmenter, Segmentation, SegmenterConfig

__all__ = [
    "SegmenterConfig",
    "HandSegmenter",
    "HandDetection",
    "Segmentation",
    "CubeCrop",
    "crop_cube",
    "cube_window",
    "normalize_joints",
    "denormalize_joints",
    "crop_rgb",
    "RGB_MEAN",
    "RGB_STD",
    "mask_from_depth",
    "HandDetector",
    "detector_input",
]
