"""The nearest-class decision used both by K-shot evaluation (train.gesture.metrics) and at run time.

A query is given the class of its nearest enrolled example (1-NN over the gallery, Euclidean distance on the
L2-normalised embeddings); if that distance exceeds `reject_distance` the answer is UNKNOWN, so a gesture
nobody enrolled is not forced onto the closest one.
"""

from __future__ import annotations

import numpy as np

UNKNOWN = ""  # the label of a rejected query


def nearest_class(
    gallery_emb: np.ndarray,
    gallery_labels: np.ndarray,
    query_emb: np.ndarray,
    reject_distance: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels (Q,), distances (Q,)) of each query's nearest gallery example; labels are UNKNOWN where the
    distance exceeds `reject_distance` (None: never reject)."""
    g = np.asarray(gallery_emb, np.float64)
    q = np.asarray(query_emb, np.float64)
    if g.ndim != 2 or q.ndim != 2 or g.shape[1] != q.shape[1]:
        raise ValueError(f"gallery {g.shape} and queries {q.shape} must be (N, d) with the same d")
    if len(g) == 0:
        raise ValueError("the gallery is empty")
    d2 = (q**2).sum(1)[:, None] + (g**2).sum(1)[None, :] - 2.0 * q @ g.T
    nearest = np.argmin(d2, axis=1)
    dist = np.sqrt(np.maximum(d2[np.arange(len(q)), nearest], 0.0))
    labels = np.asarray(gallery_labels, dtype=object)[nearest]
    if reject_distance is not None:
        labels = np.where(dist > reject_distance, UNKNOWN, labels)
    return labels.astype(str), dist
