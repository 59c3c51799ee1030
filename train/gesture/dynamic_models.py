"""Dynamic gesture embedding networks on feature windows (stream.gestures.dynamic.window_features,
(B, T, 69)), constructed by name (`create_dynamic_model`).

- `ddnet`: after DD-Net (Yang et al. 2019, "Make skeleton-based action recognition model smaller, faster
  and better"): Joint Collection Distances (the 210 pairwise distances of the 21 canonical joints, a
  location- and rotation-free description of the hand's shape) and the global motion at two scales (frame
  differences at stride 1 and 2 of every feature), each embedded by 1-D convolutions, concatenated at half
  the frame rate, then three blocks of 1-D convolutions with pooling, a global max over time and a linear
  embedding, L2-normalised. DD-Net's own blocks, at its small width (filters = 16): ~0.12 M parameters, the
  size of its 0.15 M SHREC'17 variant. Deviation: DD-Net ends in a softmax classifier; this net ends in the
  embedding that seed 001's losses train, with classification heads for the combined loss only.
- `window_mlp`: the flattened window (T x 69) through an MLP, for comparison: no notion of time or of joint
  distances.

Both return the embedding from `forward`, and `embed_and_logits` for the combined loss's classification term.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .models import _Heads

N_FEATURES = 69
N_CANON = 60


def _jcd_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    i, j = torch.triu_indices(21, 21, offset=1)
    return i, j


class _C1(nn.Sequential):
    """Conv1d -> BatchNorm -> LeakyReLU(0.2), DD-Net's c1D."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__(
            nn.Conv1d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm1d(cout), nn.LeakyReLU(0.2, True)
        )


class _Embed(nn.Sequential):
    """DD-Net's per-stream embedding: c1D(2F, 1) -> c1D(F, 3) -> c1D(F, 1)."""

    def __init__(self, cin: int, f: int) -> None:
        super().__init__(_C1(cin, 2 * f, 1), _C1(2 * f, f, 3), _C1(f, f, 1))


class DDNetEmbedding(nn.Module):
    """(B, T, 69) feature windows -> (B, dim) unit vectors."""

    input_kind = "window"

    def __init__(self, dim: int = 64, filters: int = 16, n_coarse: int = 0, n_fine: int = 0) -> None:
        super().__init__()
        f = int(filters)
        self.dim = int(dim)
        i, j = _jcd_pairs()
        self.register_buffer("pair_i", i, persistent=False)
        self.register_buffer("pair_j", j, persistent=False)
        self.jcd = _Embed(i.numel(), f)
        self.slow = _Embed(N_FEATURES, f)
        self.fast = _Embed(N_FEATURES, f)
        self.blocks = nn.Sequential(
            _C1(3 * f, 2 * f, 3),
            _C1(2 * f, 2 * f, 3),
            nn.MaxPool1d(2),
            _C1(2 * f, 4 * f, 3),
            _C1(4 * f, 4 * f, 3),
            nn.MaxPool1d(2),
            _C1(4 * f, 8 * f, 3),
            _C1(8 * f, 8 * f, 3),
        )
        self.width = 8 * f
        self.embed = nn.Linear(self.width, self.dim)
        self.heads = _Heads(self.width, n_coarse, n_fine)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        joints = torch.cat([x.new_zeros(b, t, 1, 3), x[..., :N_CANON].reshape(b, t, 20, 3)], dim=2)
        diff = joints[:, :, self.pair_i] - joints[:, :, self.pair_j]
        jcd = torch.sqrt((diff * diff).sum(-1) + 1e-9)  # (B, T, 210)
        slow = x[:, 1:] - x[:, :-1]
        slow = torch.cat([slow, slow[:, -1:]], dim=1)  # (B, T, 69), the last difference repeated
        fast = x[:, 2::2] - x[:, :-2:2]
        fast = torch.cat([fast, fast[:, -1:]], dim=1)  # (B, T/2, 69)
        a = F.max_pool1d(self.jcd(jcd.transpose(1, 2)), 2)
        s = F.max_pool1d(self.slow(slow.transpose(1, 2)), 2)
        g = self.fast(fast.transpose(1, 2))
        h = self.blocks(torch.cat([a, s, g], dim=1))
        return h.amax(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed(self.features(x)), dim=1)

    def embed_and_logits(self, x: torch.Tensor):
        h = self.features(x)
        return F.normalize(self.embed(h), dim=1), *self.heads(h)


class WindowMLPEmbedding(nn.Module):
    """(B, T, 69) feature windows, flattened -> MLP -> (B, dim) unit vectors."""

    input_kind = "window"

    def __init__(
        self, dim: int = 64, hidden: int = 128, frames: int = 32, n_coarse: int = 0, n_fine: int = 0
    ) -> None:
        super().__init__()
        self.dim = int(dim)
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(frames * N_FEATURES, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(True),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(True),
        )
        self.embed = nn.Linear(hidden, self.dim)
        self.heads = _Heads(hidden, n_coarse, n_fine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed(self.body(x)), dim=1)

    def embed_and_logits(self, x: torch.Tensor):
        h = self.body(x)
        return F.normalize(self.embed(h), dim=1), *self.heads(h)


DYNAMIC_MODELS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "ddnet": (DDNetEmbedding, "feature window -> JCD + two-scale motion, 1-D convs (DD-Net) -> embedding"),
    "window_mlp": (WindowMLPEmbedding, "flattened feature window -> MLP 128-128 -> embedding"),
}


def create_dynamic_model(name: str, dim: int = 64, n_coarse: int = 0, n_fine: int = 0, **kw) -> nn.Module:
    """A dynamic gesture embedding network by name, with classification heads when class counts are given."""
    if name not in DYNAMIC_MODELS:
        raise ValueError(f"unknown dynamic gesture model {name!r} (known: {', '.join(DYNAMIC_MODELS)})")
    return DYNAMIC_MODELS[name][0](dim=dim, n_coarse=n_coarse, n_fine=n_fine, **kw)
