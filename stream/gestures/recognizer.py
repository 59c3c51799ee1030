"""Per-frame gesture recognition for one tracked hand: embed the skeleton, match the gallery, vote.

The embedding engine takes canonical joints (1, 21, 3) and returns an L2-normalised vector. A single frame's
answer flickers when the skeleton is noisy, so the reported gesture is the majority of the last `window`
frames' answers (unknown included), and only once it holds at least half of them; the reported distance is
the current frame's. `reset()` forgets the votes when the hand is lost.

The per-frame cost is the point (the budget is 0.1 ms per hand): when the engine is a plain dense network
(engines/backends/dense.py checks it and its parity with ONNX Runtime), its weights run as three numpy
matrix-vector products instead of an ONNX Runtime call, whose fixed cost alone is 20-40 us; the gallery is
kept in float32 with its squared norms, so the nearest example is one more matrix-vector product.

With numba (a runtime dependency) the whole frame -- canonical frame, dense layers, nearest example, vote --
is one compiled call (stream/gestures/kernels.py): inside a running pipeline the numpy path's few dozen calls
each start on cold caches. The kernel is compiled and checked against the numpy embeddings of the gallery
(to 1e-5) when the recogniser is built, never on a stream's first frame; a mismatch, a graph the dense
executor does not take, or no numba keeps the numpy path, which stays the reference.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from engines.backends.dense import compile_dense

from ..compiled import announce_compile, not_compiled
from . import kernels
from .canonical import canonical_hand
from .gallery import UNKNOWN, Gallery

KERNEL_ATOL = 1e-5  # the kernel's embeddings of the gallery against the numpy path's, at set-up


class GestureRecognizer:
    def __init__(
        self, engine, gallery: Gallery, reject_distance: float, window: int = 5, use_kernel: bool = True
    ) -> None:
        if not gallery.labels:
            raise ValueError("the gallery is empty")
        self.engine = engine
        self._out = engine.output_names[0]
        self._dense = compile_dense(engine)  # None: not a plain dense graph, ONNX Runtime runs it
        self.labels = [str(x) for x in gallery.labels]
        self.names = list(dict.fromkeys(self.labels))  # the kernel's vote is an index into these
        self.reject_distance = float(reject_distance)
        self.embeddings = np.concatenate([self.embed(c) for c in gallery.joints[:, None]]).astype(np.float32)
        self._sq = (self.embeddings.astype(np.float64) ** 2).sum(1).astype(np.float32)  # |g|^2 per row
        self.window = int(window)
        if self.window < 1:
            raise ValueError(f"the vote window must be >= 1, got {window}")
        self._votes: deque[str] = deque(maxlen=self.window)
        self._kernel = self._compile_kernel(gallery) if use_kernel else None
        self._ring = kernels.new_votes(self.window)

    def _compile_kernel(self, gallery: Gallery) -> tuple[np.ndarray, np.ndarray] | None:
        """(params, meta) of the compiled per-frame kernel, compiled here on the gallery's examples; None
        when it cannot run this engine or disagrees with the numpy embeddings."""
        if not kernels.HAVE_NUMBA or self._dense is None:
            return None
        classes = np.array([self.names.index(x) for x in self.labels], np.int64)
        try:
            params, meta = kernels.pack(self._dense, self.embeddings, classes)
        except ValueError:
            return None
        announce_compile(kernels, "gesture")
        try:
            return self._checked_kernel(gallery, params, meta)
        except Exception as exc:  # noqa: BLE001 - numba cannot compile here: the numpy path serves
            not_compiled("gesture", exc)
            return None

    def _checked_kernel(
        self, gallery: Gallery, params: np.ndarray, meta: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Compiles the kernels on the gallery's examples and checks them against the numpy path."""
        emb = np.empty(self.embeddings.shape[1], np.float32)
        for c, ref in zip(np.asarray(gallery.joints, np.float32), self.embeddings):
            kernels.embed_canonical(np.ascontiguousarray(c), params, meta, emb)
            if not np.allclose(emb, ref, atol=KERNEL_ATOL, rtol=0.0):
                return None
        # the per-frame entry (canonical frame included), compiled on the gallery's skeletons, whose nearest
        # squared distances it must give as the numpy path does (squared: each is its own nearest, at ~0,
        # where a square root would magnify float32 rounding); its votes are thrown away
        for c in np.asarray(gallery.joints, np.float64):
            _, dist, _ = kernels.gesture_step(c, params, meta, kernels.new_votes(1), 1.0)
            e = self.embed(canonical_hand(c)[None])[0]
            ref = max(float((self._sq - 2.0 * self.embeddings.dot(e)).min() + e.dot(e)), 0.0)
            if not abs(dist * dist - ref) <= KERNEL_ATOL:
                return None
        return params, meta

    @property
    def runs_kernel(self) -> bool:
        """Whether each frame is one compiled call (True) or the numpy path."""
        return self._kernel is not None

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
        self._votes = deque(maxlen=self.window)
        self._ring = kernels.new_votes(self.window)

    def __call__(self, joints_xyz_mm: np.ndarray | None) -> tuple[str | None, float | None]:
        """(gesture name or None, distance to the nearest enrolled example or None) for this frame."""
        if self._kernel is None:
            return self.numpy_step(joints_xyz_mm)
        if joints_xyz_mm is None:
            self.reset()
            return None, None
        j = joints_xyz_mm
        # float64 C-contiguous: the one layout compiled at set-up
        if not isinstance(j, np.ndarray) or j.dtype != np.float64 or not j.flags.c_contiguous:
            j = np.ascontiguousarray(j, np.float64)
        if j.shape != (21, 3):
            raise ValueError(f"expected (21, 3) joints, got {j.shape}")
        row, dist, cls = kernels.gesture_step(
            j, self._kernel[0], self._kernel[1], self._ring, self.reject_distance
        )
        if row < 0:
            self.reset()
            return None, None
        return (None if cls < 0 else self.names[cls]), dist

    def numpy_step(self, joints_xyz_mm: np.ndarray | None) -> tuple[str | None, float | None]:
        """`__call__` by numpy calls: the reference for the kernel, and the path without numba."""
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
