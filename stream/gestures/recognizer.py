"""Per-frame gesture recognition for one tracked hand: embed the skeleton, match the gallery, vote.

The embedding engine takes canonical joints (1, 21, 3) and returns an L2-normalised vector. A single frame's
answer flickers when the skeleton is noisy, so the reported gesture is the majority of the last `window`
frames' answers (unknown included), and only once it holds at least half of them; the reported distance is
the current frame's. `reset()` forgets the votes when the hand is lost.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .canonical import canonical_hand
from .gallery import UNKNOWN, Gallery, nearest


class GestureRecognizer:
    def __init__(self, engine, gallery: Gallery, reject_distance: float, window: int = 5) -> None:
        if not gallery.labels:
            raise ValueError("the gallery is empty")
        self.engine = engine
        self._out = engine.output_names[0]
        self.labels = np.array(gallery.labels)
        self.reject_distance = float(reject_distance)
        self.embeddings = np.concatenate([self.embed(c) for c in gallery.joints[:, None]]).astype(np.float64)
        self._sq = (self.embeddings**2).sum(1)  # |g|^2, for distances by one product
        self._votes: deque[str] = deque(maxlen=int(window))

    def embed(self, canonical: np.ndarray) -> np.ndarray:
        """(1, 21, 3) canonical joints -> (1, d) embedding."""
        return np.asarray(self.engine.infer(canonical.astype(np.float32))[self._out], np.float32)

    def reset(self) -> None:
        # rebound, not cleared: a copy of this recognizer for another hand must not share the votes
        self._votes = deque(maxlen=self._votes.maxlen)

    def __call__(self, joints_xyz_mm: np.ndarray | None) -> tuple[str | None, float | None]:
        """(gesture name or None, distance to the nearest enrolled example or None) for this frame."""
        if joints_xyz_mm is None or not np.isfinite(joints_xyz_mm).all():
            self.reset()
            return None, None
        e = self.embed(canonical_hand(joints_xyz_mm)[None]).astype(np.float64)
        idx, d = nearest(self.embeddings, self._sq, e)
        i, dist = int(idx[0]), float(d[0])
        self._votes.append(UNKNOWN if dist > self.reject_distance else str(self.labels[i]))
        counts: dict[str, int] = {}
        for v in self._votes:
            counts[v] = counts.get(v, 0) + 1
        name, n = max(counts.items(), key=lambda kv: kv[1])
        if name == UNKNOWN or 2 * n < len(self._votes):
            return None, dist
        return name, dist
