"""Run-time gesture recognition: embeddings of the hand matched against a gallery of enrolled gestures.

numpy only (the runtime never imports torch): the embedding network runs as an engine; this package keeps
the gallery and the nearest-class decision with its rejection distance.
"""

from .canonical import canonical_hand, canonical_joints
from .gallery import UNKNOWN, Gallery, nearest_class
from .recognizer import GestureRecognizer

__all__ = ["UNKNOWN", "Gallery", "GestureRecognizer", "canonical_hand", "canonical_joints", "nearest_class"]
