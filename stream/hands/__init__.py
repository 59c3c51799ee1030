"""Several hands per frame: tracks with stable ids (tracks.py) and left/right handedness (handedness.py)."""

from .handedness import HandednessStage, TrackSide, resolve_pair
from .tracks import HandTrack, HandTracker

__all__ = ["HandTrack", "HandTracker", "HandednessStage", "TrackSide", "resolve_pair"]
