"""Gesture embeddings learned with hierarchical (coarse / fine) labels, after Karaman et al. 2019 (seed 001).

- `losses`: the quadruplet loss (eq. 5), the global loss (eq. 3), their combination (eq. 6), and the triplet
  (eq. 2) and contrastive (eq. 1) baselines.
- `selection`: which quadruplets to train on: random, Method 1 and Method 2 (§3.3).
- `metrics`: Recall@K, NMI of k-means clusters, and K-shot enrollment accuracy on classes never trained on.
"""

# the embedding losses the training loop knows (train.gesture.train), here so that listing them needs no torch
LOSSES = ("quadruplet", "triplet", "contrastive")
