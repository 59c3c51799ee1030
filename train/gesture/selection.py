"""Quadruplet selection (seed 001 §3.3): which (R, P+, P-, N) to train on, as index arrays into a pool.

Every method draws the reference R uniformly from the pool (among samples for which a valid quadruplet
exists) and obeys the label constraints of §2: P+ has R's fine class (and is not R), P- has R's coarse class
but another fine class, N has another coarse class.

- `random`: P+, P-, N uniformly among the samples that satisfy the constraints (the seed's baseline [9]).
- `method1` and `method2`: N is the hardest negative, the closest sample of another coarse class. Then
  - Method 1 takes as P+ (P-) the candidate closest to N among those with D(R, P) > D(R, N);
  - Method 2 takes the candidate closest to R outside the sphere of radius D(R, N) around R, or, when
    none lies outside, the furthest candidate inside it.

Deviation, where the seed is silent: when no Method 1 candidate satisfies D(R, P) > D(R, N), we take the
candidate closest to N anyway (the constraint cannot be met, and skipping R would bias the batch towards easy
references). The seed selects over the training set; here the pool is whatever embeddings the caller passes
(a large random subset re-embedded every so often keeps the cost bounded).
"""

from __future__ import annotations

import numpy as np

METHODS = ("random", "method1", "method2")


def pairwise_distances(emb: np.ndarray) -> np.ndarray:
    """(N, N) Euclidean distances of the rows of `emb`."""
    e = np.asarray(emb, np.float64)
    sq = (e**2).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * e @ e.T
    return np.sqrt(np.maximum(d2, 0.0))


def valid_references(coarse: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """Indices that can anchor a quadruplet: another sample of the same fine class, a sample of the same
    coarse class with another fine class, and a sample of another coarse class all exist."""
    coarse, fine = np.asarray(coarse), np.asarray(fine)
    same_fine = fine[:, None] == fine[None, :]
    same_coarse = coarse[:, None] == coarse[None, :]
    has_pp = same_fine.sum(1) >= 2
    has_pn = (same_coarse & ~same_fine).any(1)
    has_n = (~same_coarse).any(1)
    return np.flatnonzero(has_pp & has_pn & has_n)


def select_quadruplets(
    emb: np.ndarray | None,
    coarse: np.ndarray,
    fine: np.ndarray,
    count: int,
    method: str = "method2",
    rng: np.random.Generator | None = None,
    dist: np.ndarray | None = None,
) -> np.ndarray:
    """(count, 4) indices (R, P+, P-, N) into the pool. `emb` (N, d) is needed by the two hard methods
    (or pass `dist`, its distance matrix); `random` ignores it."""
    rng, dist = _prepare(method, emb, dist, rng)
    coarse, fine = np.asarray(coarse), np.asarray(fine)
    refs = valid_references(coarse, fine)
    if refs.size == 0:
        raise ValueError("no valid quadruplet: the pool needs two coarse classes, one with two fine classes")
    out = np.empty((int(count), 4), np.int64)
    for q, r in enumerate(rng.choice(refs, size=int(count), replace=True)):
        pp = np.flatnonzero(fine == fine[r])
        pp = pp[pp != r]
        pn = np.flatnonzero((coarse == coarse[r]) & (fine != fine[r]))
        neg = np.flatnonzero(coarse != coarse[r])
        if method == "random":
            out[q] = (r, rng.choice(pp), rng.choice(pn), rng.choice(neg))
            continue
        n = neg[np.argmin(dist[r, neg])]
        pick = _method1 if method == "method1" else _method2
        out[q] = (r, pick(dist, r, n, pp), pick(dist, r, n, pn), n)
    return out


def _prepare(method: str, emb, dist, rng) -> tuple[np.random.Generator, np.ndarray | None]:
    """Check the method; the generator; the distance matrix the hard methods need (None for random)."""
    if method not in METHODS:
        raise ValueError(f"unknown selection method {method!r}; choose from {', '.join(METHODS)}")
    if method != "random" and dist is None:
        if emb is None:
            raise ValueError(f"{method} needs the embeddings")
        dist = pairwise_distances(emb)
    return rng or np.random.default_rng(), dist


def _method1(dist: np.ndarray, r: int, n: int, cand: np.ndarray) -> int:
    """Closest to N among the candidates further from R than N is (all candidates if none is)."""
    outside = cand[dist[r, cand] > dist[r, n]]
    pool = outside if outside.size else cand
    return int(pool[np.argmin(dist[n, pool])])


def _method2(dist: np.ndarray, r: int, n: int, cand: np.ndarray) -> int:
    """Closest to R outside the sphere of radius D(R, N) around R; else the furthest inside it."""
    d = dist[r, cand]
    outside = d > dist[r, n]
    if outside.any():
        return int(cand[outside][np.argmin(d[outside])])
    return int(cand[np.argmax(d)])


def select_triplets(
    emb: np.ndarray | None,
    fine: np.ndarray,
    count: int,
    method: str = "method2",
    rng: np.random.Generator | None = None,
    dist: np.ndarray | None = None,
) -> np.ndarray:
    """(count, 3) indices (R, P, N) for the triplet and contrastive baselines, on fine labels alone: P shares
    R's class, N does not. The same rules as for quadruplets: `random`, or N the hardest negative with P
    picked by Method 1 or Method 2 relative to it."""
    rng, dist = _prepare(method, emb, dist, rng)
    fine = np.asarray(fine)
    same = fine[:, None] == fine[None, :]
    refs = np.flatnonzero((same.sum(1) >= 2) & (~same).any(1))
    if refs.size == 0:
        raise ValueError("no valid triplet: the pool needs two classes, one with two samples")
    out = np.empty((int(count), 3), np.int64)
    for q, r in enumerate(rng.choice(refs, size=int(count), replace=True)):
        pos = np.flatnonzero(same[r])
        pos = pos[pos != r]
        neg = np.flatnonzero(~same[r])
        if method == "random":
            out[q] = (r, rng.choice(pos), rng.choice(neg))
            continue
        n = neg[np.argmin(dist[r, neg])]
        pick = _method1 if method == "method1" else _method2
        out[q] = (r, pick(dist, r, n, pos), n)
    return out
