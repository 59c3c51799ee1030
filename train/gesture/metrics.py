"""Embedding metrics on classes the model never saw (seed 001 §4): Recall@K, NMI of a k-means clustering,
and K-shot enrollment accuracy (the run-time flow: K examples per gesture enrolled, the rest classified).

numpy + scipy (k-means); the classification rule is the runtime's own (stream.gestures.nearest_class).
"""

from __future__ import annotations

import numpy as np

from stream.gestures import UNKNOWN, nearest_class

from .selection import pairwise_distances


def recall_at_k(emb: np.ndarray, labels: np.ndarray, ks=(1, 2, 4, 8)) -> dict[int, float]:
    """Fraction of samples with at least one sample of their own class among their K nearest others."""
    labels = np.asarray(labels)
    d = pairwise_distances(emb)
    np.fill_diagonal(d, np.inf)
    kmax = min(max(ks), len(labels) - 1)
    order = np.argsort(d, axis=1, kind="stable")[:, :kmax]
    hit = labels[order] == labels[:, None]
    return {int(k): float(hit[:, : min(k, kmax)].any(1).mean()) for k in ks}


def nmi(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Normalised mutual information, I(U; V) / mean(H(U), H(V)) (arithmetic normalisation, as in the
    metric-learning papers the seed compares with). 1 for identical partitions, 0 for independent ones."""
    _, u = np.unique(np.asarray(labels_true), return_inverse=True)
    _, v = np.unique(np.asarray(labels_pred), return_inverse=True)
    n = len(u)
    joint = np.zeros((u.max() + 1, v.max() + 1))
    np.add.at(joint, (u, v), 1.0)
    joint /= n
    pu, pv = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = float((joint[nz] * np.log(joint[nz] / (pu[:, None] * pv[None, :])[nz])).sum())
    hu = -float((pu[pu > 0] * np.log(pu[pu > 0])).sum())
    hv = -float((pv[pv > 0] * np.log(pv[pv > 0])).sum())
    if hu + hv == 0:
        return 1.0
    return mi / ((hu + hv) / 2.0)


def kmeans_labels(emb: np.ndarray, k: int, seed: int = 0, restarts: int = 5) -> np.ndarray:
    """k-means++ clusters (scipy), the best of `restarts` by within-cluster sum of squares."""
    from scipy.cluster.vq import kmeans2

    x = np.asarray(emb, np.float64)
    best, best_cost = None, np.inf
    for i in range(restarts):
        centres, lab = kmeans2(x, int(k), minit="++", seed=seed + i)
        cost = float(((x - centres[lab]) ** 2).sum())
        if cost < best_cost:
            best, best_cost = lab, cost
    return best


def clustering_nmi(emb: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """NMI of k-means with k = the number of classes present (the seed's protocol)."""
    k = len(np.unique(labels))
    return nmi(labels, kmeans_labels(emb, k, seed=seed))


def shot_accuracy(
    emb: np.ndarray,
    labels: np.ndarray,
    shots: int = 5,
    seed: int = 0,
    reject_distance: float | None = None,
    trials: int = 5,
) -> float:
    """Mean accuracy over `trials` random enrollments: `shots` examples per class form the gallery, every
    other sample is classified by its nearest gallery example; a rejection ("unknown") counts as wrong.
    Classes with no more than `shots` samples are left out (nothing would remain to classify)."""
    labels = np.asarray(labels).astype(str)
    rng = np.random.default_rng(seed)
    classes = [c for c in np.unique(labels) if (labels == c).sum() > shots]
    if not classes:
        raise ValueError(f"no class has more than {shots} samples")
    accs = []
    for _ in range(int(trials)):
        gallery = np.concatenate(
            [rng.choice(np.flatnonzero(labels == c), size=shots, replace=False) for c in classes]
        )
        query = np.setdiff1d(np.flatnonzero(np.isin(labels, classes)), gallery)
        pred, _ = nearest_class(emb[gallery], labels[gallery], emb[query], reject_distance)
        accs.append(float(((pred == labels[query]) & (pred != UNKNOWN)).mean()))
    return float(np.mean(accs))


def embedding_report(
    emb: np.ndarray, labels: np.ndarray, shots: int = 5, seed: int = 0, reject_distance: float | None = None
) -> dict:
    """The JSON object both `handstream gesture eval` and the training recipe report: Recall@1/2/4/8, NMI
    of k-means with k = the number of classes, K-shot accuracy (and, given a rejection distance, the same
    with "unknown" counted wrong), and the class and sample counts."""
    labels = np.asarray(labels)
    out = {
        "recall_at": {str(k): v for k, v in recall_at_k(emb, labels).items()},
        "nmi": clustering_nmi(emb, labels, seed=seed),
        "shot_accuracy": shot_accuracy(emb, labels, shots=shots, seed=seed),
    }
    if reject_distance is not None:
        out["shot_accuracy_with_rejection"] = shot_accuracy(
            emb, labels, shots=shots, seed=seed, reject_distance=reject_distance
        )
    return out | {"classes": int(len(np.unique(labels))), "samples": int(len(labels))}
