"""Hand segmentation in a depth frame without ground truth: up to two hands, each with a full-resolution
mask and a centre of mass, from a learned detector or from classic rules, with tracking and a known-centre
(thesis) mode.

Why not "the closest object" (seed 003 §4.3.1 mentions it as the usual shortcut): a desk edge, a chair or the
user's own body can be closer than the hand, and a forearm drags a centroid off the palm. So the learned
path takes the hands where a small detector network's palm heatmap peaks, and the classic path takes thin
pieces of depth-discontinuity components judged by metric size and shape, forearm cut at the wrist.

By responsibility:

- config.py: `SegmenterConfig` (the tunables), the result types `HandDetection` and `Segmentation`, and the
  check of the depth input (bad values are missing pixels, a bad container is an InputError);
- candidates.py: where a hand might be (thin pieces and arm ends in a low-resolution view; the depth under
  a detector peak);
- scoring.py: how much a candidate looks like a hand, which are chosen, which fallback hands a weak
  detector peak vouches for;
- refine.py: the chosen hands at full resolution (mask, centre of mass, palm), mask growth, the forearm cut
  (its compiled test in arm_kernels.py), and the look behind a convex occluder;
- pieces.py: a held object's piece left out of a learned hand's mask, off by default (compiled in
  piece_kernels.py);
- tracking.py: reuse of the previous frame's result;
- measure.py: small measurements both paths share;
- segmenter.py: `HandSegmenter`, which path runs and in which order.
"""

# _peak_depth, _grow_mask, _solidity: helpers the tests call directly, by the names they had when this
# package was one module
from .candidates import peak_depth as _peak_depth  # noqa: F401
from .config import METHODS, HandDetection, Segmentation, SegmenterConfig, check_depth
from .refine import grow_mask as _grow_mask  # noqa: F401
from .refine import solidity as _solidity  # noqa: F401
from .segmenter import HandSegmenter

__all__ = ["METHODS", "SegmenterConfig", "HandDetection", "Segmentation", "HandSegmenter", "check_depth"]
