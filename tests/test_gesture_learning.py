"""Seed 001's losses, quadruplet selection rules and metrics on small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the embedding losses need torch (the train extra)")

from stream.gestures import UNKNOWN, nearest_class  # noqa: E402
from train.gesture.losses import (  # noqa: E402
    QuadrupletLossConfig,
    classification_loss,
    combined_loss,
    contrastive_loss,
    global_loss,
    quadruplet_distance_loss,
    triplet_loss,
)
from train.gesture.metrics import clustering_nmi, nmi, recall_at_k, shot_accuracy  # noqa: E402
from train.gesture.selection import select_quadruplets, valid_references  # noqa: E402


def t(*v):
    return torch.tensor(v, dtype=torch.float64)


# ---- losses ----
def test_quadruplet_distance_terms_by_hand():
    # fine term: 1 - 0.6 / (0.5 + 0.7 - 0.3) = 1/3; coarse term: 1 - 1.0 / (0.6 + 0.3) < 0 -> 0
    got = quadruplet_distance_loss(t(0.5, 0.1), t(0.6, 0.6), t(1.0, 1.0), m1=0.7, m2=0.3)
    assert got.tolist() == pytest.approx([1 / 3, 0.0])
    # the coarse term alone: P- far from R, N close: 1 - 0.5 / (1.0 + 0.3)
    got = quadruplet_distance_loss(t(0.1), t(1.0), t(0.5))
    assert got.item() == pytest.approx(1 - 0.5 / 1.3)


def test_global_loss_by_hand():
    # variances 0.01 + 0.01 + 0; hinge1 = 0.3 - 0.6 + 0.4 = 0.1; hinge2 = 0.6 - 1.0 + 0.3 < 0
    got = global_loss(t(0.2, 0.4), t(0.5, 0.7), t(1.0, 1.0), t1=0.7, t2=0.3)
    assert got.item() == pytest.approx(0.12)
    got = global_loss(t(0.2, 0.4), t(0.5, 0.7), t(1.0, 1.0), t1=0.7, t2=0.3, lambda_g1=2.0)
    assert got.item() == pytest.approx(0.22)


def test_classification_loss_weights_coarse_and_fine():
    coarse_logits, fine_logits = torch.zeros(3, 4), torch.zeros(3, 10)
    y = torch.zeros(3, dtype=torch.long)
    got = classification_loss(coarse_logits, fine_logits, y, y)
    assert got.tolist() == pytest.approx([0.08 * math.log(4) + 0.25 * math.log(10)] * 3, rel=1e-6)
    assert classification_loss(None, fine_logits, y, y).tolist() == pytest.approx([0.25 * math.log(10)] * 3)


def test_combined_loss_on_points():
    r, pp, pn, n = t(0.0, 0.0)[None], t(0.5, 0.0)[None], t(0.0, 0.6)[None], t(1.0, 0.0)[None]
    # joint: 1/3 (as above); global: zero variances, hinge1 = 0.5 - 0.6 + 0.4 = 0.3, hinge2 = 0
    assert combined_loss(r, pp, pn, n).item() == pytest.approx(1 / 3 + 0.3, abs=1e-6)
    cfg = QuadrupletLossConfig(eta=0.0)
    assert combined_loss(r, pp, pn, n, cfg=cfg).item() == pytest.approx(1 / 3, abs=1e-6)


def test_combined_loss_trains_an_embedding_apart():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(4, 8, 2, generator=g, dtype=torch.float64).mul(0.1).requires_grad_(True)
    opt = torch.optim.SGD([pts], lr=0.05)
    first = None
    for _ in range(100):
        loss = combined_loss(pts[0], pts[1], pts[2], pts[3], reduction="mean")
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_triplet_and_contrastive_baselines():
    r, p = t(0.0, 0.0)[None], t(1.0, 0.0)[None]
    assert triplet_loss(r, p, t(0.0, 2.0)[None]).item() == 0.0  # 1 - 4 + 0.2 < 0
    assert triplet_loss(r, p, t(0.0, 1.0)[None]).item() == pytest.approx(0.2)
    a, b = t(0.0, 0.0).repeat(3, 1), torch.stack([t(0.5, 0.0), t(0.5, 0.0), t(2.0, 0.0)])
    got = contrastive_loss(a, b, torch.tensor([1, 0, 0]), alpha=1.0, reduction="sum")
    assert got.item() == pytest.approx(0.25 + 0.25 + 0.0, abs=1e-6)


# ---- selection ----
# coarse A: fine a1 at (0,0) (3,0) (1,0); fine a2 at (0,1.5) (0,0.5). coarse B: fine b1 at (2,0) (-5,0)
POOL = np.array([[0, 0], [3, 0], [1, 0], [0, 1.5], [0, 0.5], [2, 0], [-5, 0]], np.float64)
COARSE = np.array(["A", "A", "A", "A", "A", "B", "B"])
FINE = np.array(["a1", "a1", "a1", "a2", "a2", "b1", "b1"])


def _for_reference(method: str, ref: int) -> set[tuple[int, ...]]:
    q = select_quadruplets(POOL, COARSE, FINE, 300, method, np.random.default_rng(1))
    return {tuple(int(i) for i in row) for row in q if row[0] == ref}


def test_references_need_every_kind_of_partner():
    # b1's samples have no other fine class in their coarse class: they cannot anchor a quadruplet
    assert valid_references(COARSE, FINE).tolist() == [0, 1, 2, 3, 4]


def test_method1_by_hand():
    # R=0: N = the nearest other-coarse sample, (2,0). P+: of a1's (3,0) d=3 and (1,0) d=1, only (3,0) lies
    # beyond D(R,N)=2. P-: neither a2 sample does, so the one closest to N: (0,0.5) (2.06 vs 2.5 from N)
    assert _for_reference("method1", 0) == {(0, 1, 4, 5)}


def test_method2_by_hand():
    # P+: the closest outside the sphere of radius 2: (3,0). P-: none outside, the furthest inside: (0,1.5)
    assert _for_reference("method2", 0) == {(0, 1, 3, 5)}
    # R=2 at (1,0): N = (2,0) at 1. P+: (0,0) d=1 is not outside (strict), (3,0) d=2 is -> (3,0)
    # P-: (0,1.5) d=1.80 and (0,0.5) d=1.12 are both outside -> the closer, (0,0.5)
    assert _for_reference("method2", 2) == {(2, 1, 4, 5)}


def test_random_selection_obeys_the_label_constraints():
    q = select_quadruplets(None, COARSE, FINE, 500, "random", np.random.default_rng(0))
    r, pp, pn, n = q.T
    assert (FINE[r] == FINE[pp]).all() and (r != pp).all()
    assert (COARSE[r] == COARSE[pn]).all() and (FINE[r] != FINE[pn]).all()
    assert (COARSE[r] != COARSE[n]).all()
    assert len({tuple(x) for x in q}) > 10  # really random, not one fixed quadruplet
    with pytest.raises(ValueError, match="unknown selection method"):
        select_quadruplets(POOL, COARSE, FINE, 1, "hardest")


# ---- metrics ----
def test_recall_at_k_by_hand():
    assert recall_at_k(np.array([[0.0], [1], [10], [11]]), [0, 0, 1, 1], ks=(1,))[1] == 1.0
    # positions 0, 10 (class 0) and 1, 11 (class 1): every nearest neighbour is of the other class
    got = recall_at_k(np.array([[0.0], [10], [1], [11]]), [0, 0, 1, 1], ks=(1, 2, 4))
    assert got == {1: 0.0, 2: 0.5, 4: 1.0}


def test_nmi_by_hand():
    assert nmi([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(1.0)
    assert nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)
    # MI 0.215762, H(U) 0.562335, H(V) ln 2 -> 0.215762 / 0.627741
    assert nmi([0, 0, 0, 1], [0, 0, 1, 1]) == pytest.approx(0.34371, abs=1e-5)


def test_clustering_and_shots_on_separated_classes():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16)) * 5
    labels = np.repeat(np.arange(6), 20)
    emb = centres[labels] + rng.normal(size=(120, 16)) * 0.1
    assert clustering_nmi(emb, labels) == pytest.approx(1.0)
    assert shot_accuracy(emb, labels, shots=3) == 1.0
    assert shot_accuracy(emb, labels, shots=3, reject_distance=1e-3) == 0.0  # everything "unknown"
    mixed = rng.normal(size=(120, 16))  # no structure: near chance
    assert shot_accuracy(mixed, labels, shots=3) < 0.5


def test_nearest_class_rejects_far_queries():
    labels, dist = nearest_class(
        np.array([[0.0, 0], [1, 0]]), ["fist", "open"], np.array([[0.9, 0], [5, 5]]), 1.0
    )
    assert labels.tolist() == ["open", UNKNOWN]
    assert dist[0] == pytest.approx(0.1)
