"""Run-time gesture recognition: embeddings of the hand matched against a gallery of enrolled gestures.

numpy only (the runtime never imports torch): the embedding network runs as an engine; this package keeps
the gallery and the nearest-class decision with its rejection distance.
"""

from .gallery import UNKNOWN, nearest_class

__all__ = ["UNKNOWN", "nearest_class"]
