"""Per-frame gesture recognition for one tracked hand: embed the skeleton, match the gallery, vote.

The embedding engine takes canonical joints (1, 21, 3) and returns an L2-normalised vector. A single frame's
answer flickers when the skeleton is noisy, so the reported gesture is the majority of the last `window`
frames' answers (unknown included), and only once it holds at least half of them; the reported distance is
the current frame's. `reset()` forgets the votes when the hand is lost.

The per-frame cost is the point (the budget is 0.1 ms per hand): when the engine is a plain dense network
(engines/backends/dense.py checks it and its parity with ONNX Runtime), its weights run as three numpy
matrix-vector products instead of an ONNX Runtime call, whose fixed cost alone is 20-40 us; the gallery is
kept in float32 with its squared norms, so the nearest example is one more matrix-vector product.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from engines.backends.dense import compile_dense

from .canonical import canonical_hand
from .gallery import UNKNOWN, Gallery


class GestureRecognizer:
    def __init__(self, engine, gallery: Gallery, reject_distance: float, window: int = 5) -> None:
        if not gallery.labels:
            raise ValueError("the gallery is empty")
        self.engine = engine
        self._out = engine.output_names[0]
        self._dense = compile_dense(engine)  # None: not a plain dense graph, ONNX Runtime runs it
        self.labels = [str(x) for x in gallery.labels]
        self.reject_distance = float(reject_distance)
        self.embeddings = np.concatenate([self.embed(c) for c in gallery.joints[:, None]]).astype(np.float32)
        self._sq = (self.embeddings.astype(np.float64) ** 2).sum(1).astype(np.float32)  # |g|^2 per row
        self._votes: deque[str] = deque(maxlen=int(window))

    @property
    def runs_dense(self) -> bool:
        """Whether the embedding runs as numpy products (True) or through the engine's runtime."""
        return self._dense is not None

    def embed(self, canonical: np.ndarray) -> np.ndarray:
        """(1, 21, 3) canonical joints -> (1, d) float32 embedding."""
        x = np.ascontiguousarray(canonical, np.float32)
        if self._dense is not None:
            return self._dense(x)
        return np.asarray(self.engine.infer(x)[self._out], np.float32)

    def reset(self) -> None:
        # rebound, not cleared: a copy of this recognizer for another hand must not share the votes
        self._votes = deque(maxlen=self._votes.maxlen)

    def __call__(self, joints_xyz_mm: np.ndarray | None) -> tuple[str | None, float | None]:
        """(gesture name or None, distance to the nearest enrolled example or None) for this frame."""
        if joints_xyz_mm is None or not np.isfinite(joints_xyz_mm).all():
            self.reset()
            return None, None
        e = self.embed(canonical_hand(joints_xyz_mm)[None])[0]
        # |g - e|^2 = |g|^2 - 2 g.e + |e|^2: the argmin needs only the first two terms
        d2 = self._sq - 2.0 * self.embeddings.dot(e)
        i = int(d2.argmin())
        dist = math.sqrt(max(float(d2[i]) + float(e.dot(e)), 0.0))
        self._votes.append(UNKNOWN if dist > self.reject_distance else self.labels[i])
        counts: dict[str, int] = {}
        for v in self._votes:
            counts[v] = counts.get(v, 0) + 1
        name, n = max(counts.items(), key=lambda kv: kv[1])
        if name == UNKNOWN or 2 * n < len(self._votes):
            return None, dist
        return name, dist
