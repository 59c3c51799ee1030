"""Gesture embedding networks, constructed by name (`create_gesture_model`).

- `joint_mlp`: the runtime default. Canonical joints (stream.gestures.canonical_joints, wrist dropped: 60
  numbers) -> an MLP -> an L2-normalised embedding. A few tens of thousands of multiply-adds: far below
  0.1 ms per hand.
- `depth_cnn`: the seed's image embedding, on our normalised depth crop (1, S, S) instead of an RGB photo:
  a small strided CNN, global average pooling, a linear embedding. The seed fine-tunes an ImageNet ResNet-101;
  a depth crop has no ImageNet counterpart, so it trains from scratch (and is sized for this CPU).

Both return the embedding from `forward`; `logits(features)` gives the coarse and fine class scores that the
combined loss's classification term (seed eq. 4) needs during training only. Exported graphs hold only the
embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class _Heads(nn.Module):
    def __init__(self, width: int, n_coarse: int, n_fine: int) -> None:
        super().__init__()
        self.coarse = nn.Linear(width, n_coarse) if n_coarse else None
        self.fine = nn.Linear(width, n_fine) if n_fine else None

    def forward(self, h: torch.Tensor):
        return (
            self.coarse(h) if self.coarse is not None else None,
            self.fine(h) if self.fine is not None else None,
        )


class JointEmbeddingNet(nn.Module):
    """(B, 21, 3) canonical joints -> (B, dim) unit vectors."""

    input_kind = "joints"

    def __init__(self, dim: int = 64, hidden: int = 256, n_coarse: int = 0, n_fine: int = 0) -> None:
        super().__init__()
        self.dim = int(dim)
        self.body = nn.Sequential(
            nn.Linear(60, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
        )
        self.embed = nn.Linear(hidden, self.dim)
        self.heads = _Heads(hidden, n_coarse, n_fine)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x[:, 1:, :].reshape(x.shape[0], 60))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed(self.features(x)), dim=1)

    def embed_and_logits(self, x: torch.Tensor):
        h = self.features(x)
        return F.normalize(self.embed(h), dim=1), *self.heads(h)


class DepthCropEmbeddingNet(nn.Module):
    """(B, 1, S, S) normalised depth crop -> (B, dim) unit vectors."""

    input_kind = "depth"

    def __init__(self, dim: int = 64, width: int = 32, n_coarse: int = 0, n_fine: int = 0) -> None:
        super().__init__()
        self.dim = int(dim)
        chans = (width, width * 2, width * 4, width * 4)
        layers: list[nn.Module] = []
        cin = 1
        for c in chans:
            layers += [
                nn.Conv2d(cin, c, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(True),
            ]
            cin = c
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embed = nn.Linear(cin, self.dim)
        self.heads = _Heads(cin, n_coarse, n_fine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed(self.body(x)), dim=1)

    def embed_and_logits(self, x: torch.Tensor):
        h = self.body(x)
        return F.normalize(self.embed(h), dim=1), *self.heads(h)


GESTURE_MODELS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "joint_mlp": (JointEmbeddingNet, "canonical 21 joints -> MLP 256-256 -> L2-normalised embedding"),
    "depth_cnn": (DepthCropEmbeddingNet, "normalised depth crop -> 4 strided convs -> GAP -> embedding"),
}


def create_gesture_model(name: str, dim: int = 64, n_coarse: int = 0, n_fine: int = 0, **kw) -> nn.Module:
    """A gesture embedding network by name, with classification heads when the class counts are given."""
    if name not in GESTURE_MODELS:
        import difflib

        close = difflib.get_close_matches(name, GESTURE_MODELS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown gesture model {name!r}{hint} (known: {', '.join(GESTURE_MODELS)})")
    return GESTURE_MODELS[name][0](dim=dim, n_coarse=n_coarse, n_fine=n_fine, **kw)


def gesture_model_infos(dim: int = 64) -> list:
    """Rows for `handstream models`: each gesture embedding net as it ships (no classification heads)."""
    from ..models import ModelInfo, count_params

    shapes = {"joint_mlp": (1, 21, 3), "depth_cnn": (1, 1, 64, 64)}
    trade = {
        "joint_mlp": "runtime default: canonical joints in, ~0.04 ms on one CPU thread",
        "depth_cnn": "the seed's image embedding on depth crops; needs far more training than the joints",
    }
    return [
        ModelInfo(
            name,
            "gesture_embedding",
            shapes[name],
            (1, dim),
            count_params(create_gesture_model(name, dim=dim)),
            desc,
            trade[name],
        )  # fmt: skip
        for name, (_, desc) in GESTURE_MODELS.items()
    ]
