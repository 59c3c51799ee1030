"""Embedding losses of seed 001 (Karaman et al., ICIP 2019), in torch, on embeddings of shape (Q, d).

Distances are Euclidean, D_ij = ||f(x_i) - f(x_j)||_2 (the seed's footnote 4). A quadruplet is
(R, P+, P-, N): P+ shares R's fine class, P- shares R's coarse class but not its fine class, N has another
coarse class. The goal is D(R,P+) < D(R,P-) < D(R,N).

Defaults are the seed's values (§4): lambda_c1 = 0.08, lambda_c2 = 0.25, lambda_g1 = lambda_g2 = eta = 1,
m1 = t1 = 0.7, m2 = t2 = 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

_EPS = 1e-9  # keeps the gradient of a distance finite where two embeddings coincide


def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Euclidean distance (Q,) between (Q, d) tensors."""
    return torch.sqrt(((a - b) ** 2).sum(dim=-1) + _EPS)


@dataclass(frozen=True)
class QuadrupletLossConfig:
    """The weights and margins of eqs. 3-6, defaulting to the seed's values."""

    lambda_c1: float = 0.08  # coarse-class softmax weight
    lambda_c2: float = 0.25  # fine-class softmax weight
    lambda_g1: float = 1.0
    lambda_g2: float = 1.0
    eta: float = 1.0  # weight of the global loss in eq. 6
    m1: float = 0.7
    m2: float = 0.3
    t1: float = 0.7
    t2: float = 0.3


def quadruplet_distance_loss(
    d_rpp: torch.Tensor, d_rpn: torch.Tensor, d_rn: torch.Tensor, m1: float = 0.7, m2: float = 0.3
) -> torch.Tensor:
    """The distance part of eq. 5, per quadruplet (Q,):
    [1 - D(R,P-) / (D(R,P+) + m1 - m2)]_+ + [1 - D(R,N) / (D(R,P-) + m2)]_+.

    The first term asks P- to lie at least m1 - m2 further than P+ (as a ratio), the second asks N to lie at
    least m2 further than P-."""
    fine = F.relu(1.0 - d_rpn / (d_rpp + (m1 - m2)))
    coarse = F.relu(1.0 - d_rn / (d_rpn + m2))
    return fine + coarse


def classification_loss(
    coarse_logits: torch.Tensor | None,
    fine_logits: torch.Tensor | None,
    coarse_y: torch.Tensor,
    fine_y: torch.Tensor,
    lambda_c1: float = 0.08,
    lambda_c2: float = 0.25,
) -> torch.Tensor:
    """Eq. 4 per sample (Q,): lambda_c1 * CE(coarse) + lambda_c2 * CE(fine), hard labels.

    The seed's text names the coarse head g and the fine head h, while eq. 4 writes them the other way
    round; we follow the text's meaning (lambda_c1 weighs the coarse classes, C_1). A head given as None
    contributes nothing (a model without classification heads trains on distances alone)."""
    out = torch.zeros(coarse_y.shape[0], dtype=torch.float32, device=coarse_y.device)
    if coarse_logits is not None and lambda_c1:
        out = out + lambda_c1 * F.cross_entropy(coarse_logits, coarse_y, reduction="none")
    if fine_logits is not None and lambda_c2:
        out = out + lambda_c2 * F.cross_entropy(fine_logits, fine_y, reduction="none")
    return out


def global_loss(
    d_rpp: torch.Tensor,
    d_rpn: torch.Tensor,
    d_rn: torch.Tensor,
    t1: float = 0.7,
    t2: float = 0.3,
    lambda_g1: float = 1.0,
    lambda_g2: float = 1.0,
) -> torch.Tensor:
    """Eq. 3 over the quadruplets of a batch (a scalar): the variances of the three distances plus hinges on
    their means, lambda_g1 [mu_P+ - mu_P- + t1 - t2]_+ + lambda_g2 [mu_P- - mu_N + t2]_+.

    Variances are population variances (divided by Q), the moments of footnote 5; a batch of one quadruplet
    has zero variance rather than NaN."""
    var = sum(d.var(unbiased=False) for d in (d_rpp, d_rpn, d_rn))
    hinge1 = F.relu(d_rpp.mean() - d_rpn.mean() + t1 - t2)
    hinge2 = F.relu(d_rpn.mean() - d_rn.mean() + t2)
    return var + lambda_g1 * hinge1 + lambda_g2 * hinge2


def combined_loss(
    r: torch.Tensor,
    p_pos: torch.Tensor,
    p_neg: torch.Tensor,
    n: torch.Tensor,
    coarse_y: torch.Tensor | None = None,
    fine_y: torch.Tensor | None = None,
    coarse_logits: torch.Tensor | None = None,
    fine_logits: torch.Tensor | None = None,
    cfg: QuadrupletLossConfig | None = None,
    reduction: str = "sum",
) -> torch.Tensor:
    """Eq. 6: sum over quadruplets of L_joint (eq. 5: distances + the reference's classification loss)
    plus eta * L_global (eq. 3). `reduction="mean"` averages the L_joint terms instead of summing them,
    so a learning rate does not depend on the batch size (the seed sums)."""
    cfg = cfg or QuadrupletLossConfig()
    d_rpp, d_rpn, d_rn = distance(r, p_pos), distance(r, p_neg), distance(r, n)
    joint = quadruplet_distance_loss(d_rpp, d_rpn, d_rn, cfg.m1, cfg.m2)
    if coarse_y is not None and fine_y is not None:
        joint = joint + classification_loss(
            coarse_logits, fine_logits, coarse_y, fine_y, cfg.lambda_c1, cfg.lambda_c2
        )
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    total = joint.sum() if reduction == "sum" else joint.mean()
    return total + cfg.eta * global_loss(d_rpp, d_rpn, d_rn, cfg.t1, cfg.t2, cfg.lambda_g1, cfg.lambda_g2)


def triplet_loss(
    r: torch.Tensor, p: torch.Tensor, n: torch.Tensor, margin: float = 0.2, reduction: str = "mean"
) -> torch.Tensor:
    """Eq. 2, the triplet baseline: [D(R,P)^2 - D(R,N)^2 + m]_+. The seed gives no margin for its baselines;
    0.2 is FaceNet's (Schroff et al. 2015) for L2-normalised embeddings."""
    per = F.relu(((r - p) ** 2).sum(-1) - ((r - n) ** 2).sum(-1) + margin)
    return per.sum() if reduction == "sum" else per.mean()


def contrastive_loss(
    a: torch.Tensor, b: torch.Tensor, same: torch.Tensor, alpha: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Eq. 1, the Siamese baseline: y D^2 + (1 - y) [alpha - D]_+^2 with y = 1 for a same-class pair."""
    d = distance(a, b)
    y = same.to(d.dtype)
    per = y * d**2 + (1.0 - y) * F.relu(alpha - d) ** 2
    return per.sum() if reduction == "sum" else per.mean()
