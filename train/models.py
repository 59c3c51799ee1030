"""Pose networks: the Depth-Net family Net1-Net9 (seed 003, Tables 4.1-4.2, Fig. 4.3), RGB-D fusion nets
(§4.3.3) and compact CPU variants, all built by name from one table (timm style).

Every model maps an input (B, C, S, S) float32 to (B, 3J) float32: normalized joints, row-major (J, 3),
i.e. x0 y0 z0 x1 y1 z1 ..., in [-1, 1] through a tanh -- except the dense compact head (DenseCompactPoseNet),
whose weighted vote is not squashed.  C is 1 for depth nets, 3 for RGB-Net, 4 for RGBD-Net.

Two-stream nets (FusePred-Net, Fuse-Net) take either `model(depth, rgb)` with (B,1,S,S) and (B,3,S,S), or a
single (B,4,S,S) tensor whose channel 0 is depth and channels 1-3 are RGB -- the single-tensor form is
what exports to ONNX with one input, like RGBD-Net.

Padding: the seed says 3x3 kernels use zero-padding 1 and Net3's larger kernels use "zero-padding
accordingly ... such that it preserves the spatial resolution", so every conv uses padding k // 2
(1 for 3x3, 2 for 5x5, 3 for 7x7). With 2x2/2 max-pooling a 128x128 input reaches 16x16 after 3 pools.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .canonical import pixel_grid

M = "M"  # a 2x2 stride-2 max-pooling layer in a layer list
# A conv is (filters, kernel). The table is the seed's Tables 4.1 and 4.2 column by column.
NET_CONFIGS: dict[str, tuple] = {
    "net1": ((32, 3), M, (64, 3), M, (128, 3), (128, 3), M),
    "net2": ((32, 3), M, (64, 3), M, (128, 3), (128, 3), (128, 3), M),
    "net3": ((32, 7), M, (64, 5), M, (128, 3), (128, 3), (128, 3), M),
    "net4": ((64, 3), M, (128, 3), M, (256, 3), (256, 3), (256, 3), M),
    "net5": ((32, 3), (32, 3), M, (64, 3), (64, 3), M, (128, 3), (128, 3), (128, 3), M),
    "net6": ((32, 3), (32, 3), M, (64, 3), (64, 3), M, (128, 3), (128, 3), (128, 3), M, (128, 3), (128, 3)),
    "net7": ((32, 3), M, (64, 3), M, (128, 3), (128, 3), M, (128, 3), (128, 3), M),
    "net8": ((32, 3), M, (64, 3), M, (128, 3), (128, 3), M, (128, 3), (128, 3), M, (128, 3), (128, 3), M),
    "net9": ((32, 3), M, (64, 3), M, (128, 3), (128, 3), (128, 3), M, (128, 3), (128, 3), (128, 3), M),
}
FUSIONS = ("sum", "max", "cat", "conv")


def conv_layers(cfg: tuple) -> list[tuple[int, int]]:
    """The (filters, kernel) of each conv of a configuration, in order (pools dropped)."""
    return [c for c in cfg if c != M]


def _body(cfg: tuple, in_ch: int, start: int = 0, stop: int | None = None) -> tuple[nn.Sequential, int]:
    """Layers of `cfg` from conv index `start` (0-based) up to, not including, conv `stop`.

    The pool between conv i and conv i+1 belongs to the piece holding conv i+1, so a stream cut after
    conv k ends with that conv's ReLU, and the trunk after the fusion opens with the pool (if any).
    Returns (module, output channels)."""
    end = 10**9 if stop is None else stop
    layers: list[nn.Module] = []
    idx = -1  # index of the last conv seen
    ch = in_ch
    for item in cfg:
        if item == M:
            if start <= idx + 1 < end:
                layers.append(nn.MaxPool2d(2, 2))
            continue
        idx += 1
        if start <= idx < end:
            filters, k = item
            layers += [nn.Conv2d(ch, filters, k, stride=1, padding=k // 2), nn.ReLU(inplace=True)]
            ch = filters
    return nn.Sequential(*layers), ch


def _spatial_after(cfg: tuple, size: int) -> int:
    for item in cfg:
        if item == M:
            size //= 2
    return size


def _head(in_features: int, out: int, fc_width: int, dropout: float) -> nn.Sequential:
    """Two fc layers with ReLU and dropout, then the 3J tanh output (seed 003 §4.3.2)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, fc_width),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(fc_width, fc_width),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(fc_width, out),
        nn.Tanh(),
    )


class DepthNetFamily(nn.Module):
    """Net1-Net9 (and RGB-Net / RGBD-Net, which are Depth-Net with 3 / 4 input channels)."""

    def __init__(
        self,
        cfg: tuple,
        in_channels: int = 1,
        num_joints: int = 21,
        input_size: int = 128,
        fc_width: int = 4096,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.features, ch = _body(cfg, in_channels)
        side = _spatial_after(cfg, input_size)
        if side < 1:
            raise ValueError(
                f"input size {input_size} is too small for {len([c for c in cfg if c == M])} pools"
            )
        self.head = _head(ch * side * side, 3 * num_joints, fc_width, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _split_rgbd(x: torch.Tensor, rgb: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if rgb is not None:
        return x, rgb
    if x.shape[1] != 4:
        raise ValueError(f"a two-stream net takes (depth, rgb) or one 4-channel tensor, got {tuple(x.shape)}")
    return x[:, :1], x[:, 1:]


class FusePredNet(nn.Module):
    """Score fusion (seed 003 §4.3.3): a per-output weighted mean of Depth-Net and RGB-Net predictions.

    Weights start at 0.5; `set_weights_from_errors` sets w_depth = e_rgb / (e_depth + e_rgb) per output,
    so the net with the lower validation error on an output gets the larger weight there."""

    def __init__(self, depth_net: nn.Module, rgb_net: nn.Module, num_outputs: int):
        super().__init__()
        self.depth_net = depth_net
        self.rgb_net = rgb_net
        self.register_buffer("w_depth", torch.full((num_outputs,), 0.5))

    @torch.no_grad()
    def set_weights_from_errors(self, err_depth: torch.Tensor, err_rgb: torch.Tensor) -> None:
        """Per-output validation errors (3J,) of each stream -> inverse-error weights."""
        ed = torch.as_tensor(err_depth, dtype=torch.float32).clamp_min(1e-12)
        er = torch.as_tensor(err_rgb, dtype=torch.float32).clamp_min(1e-12)
        self.w_depth.copy_(er / (ed + er))

    def forward(self, x: torch.Tensor, rgb: torch.Tensor | None = None) -> torch.Tensor:
        d, r = _split_rgbd(x, rgb)
        return self.w_depth * self.depth_net(d) + (1.0 - self.w_depth) * self.rgb_net(r)


class MeanPair(nn.Module):
    """Two pose nets on the same crop, predictions averaged: FusePred-Net's score fusion (seed 003 §4.3.3)
    with weights fixed at 0.5, applied to two depth nets of different bodies (their errors are partly
    independent). Exported as one ONNX graph, so the runtime sees one engine."""

    def __init__(self, a: nn.Module, b: nn.Module):
        super().__init__()
        self.a = a
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.a(x) + self.b(x))


class FeatureFusion(nn.Module):
    """Fuse two feature maps (B, D, H, W): max (4.15), sum (4.16), interleaved concatenation (4.17:
    y_2k = x^a_k, y_2k-1 = x^b_k, 1-based), or 1x1 conv on the concatenation (4.18)."""

    def __init__(self, kind: str, channels: int):
        super().__init__()
        if kind not in FUSIONS:
            raise ValueError(f"unknown fusion {kind!r}; choose from {', '.join(FUSIONS)}")
        self.kind = kind
        self.out_channels = 2 * channels if kind == "cat" else channels
        self.conv = nn.Conv2d(2 * channels, channels, 1) if kind == "conv" else None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.kind == "sum":
            return a + b
        if self.kind == "max":
            return torch.maximum(a, b)
        # 0-based: channel 2i holds b_i and channel 2i+1 holds a_i (eq. 4.17 with 1-based k).
        cat = torch.stack((b, a), dim=2).flatten(1, 2)
        return cat if self.conv is None else self.conv(cat)


class FuseNet(nn.Module):
    """Double-stream fusion (seed 003 Fig. 4.6): a depth stream and an RGB stream, each the given
    configuration up to conv `fuse_after` (1-based, after its ReLU), fused, then one shared trunk."""

    def __init__(
        self,
        cfg: tuple,
        fusion: str = "sum",
        fuse_after: int = 4,
        num_joints: int = 21,
        input_size: int = 128,
        fc_width: int = 4096,
        dropout: float = 0.5,
    ):
        super().__init__()
        n_conv = len(conv_layers(cfg))
        if not 1 <= fuse_after <= n_conv:
            raise ValueError(f"fuse_after must be a conv layer 1..{n_conv}, got {fuse_after}")
        self.fuse_after = fuse_after
        self.depth_stream, ch = _body(cfg, 1, 0, fuse_after)
        self.rgb_stream, _ = _body(cfg, 3, 0, fuse_after)
        self.fusion = FeatureFusion(fusion, ch)
        self.trunk, ch_out = _body(cfg, self.fusion.out_channels, fuse_after, None)
        side = _spatial_after(cfg, input_size)
        self.head = _head(ch_out * side * side, 3 * num_joints, fc_width, dropout)

    def forward(self, x: torch.Tensor, rgb: torch.Tensor | None = None) -> torch.Tensor:
        d, r = _split_rgbd(x, rgb)
        fused = self.fusion(self.depth_stream(d), self.rgb_stream(r))
        return self.head(self.trunk(fused))


# ---------------------------------------------------------------------------------------------------
# Compact CPU variants. Deviation from the seed, on purpose: the full Net6 has ~150 M parameters (600 MB)
# and its fc-4096 head dominates CPU latency, so these replace plain convs by depthwise-separable blocks
# (MobileNet, seed 004) with stride-2 downsampling and replace the 4096 head by a small one.


def _ds_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, each with BatchNorm + ReLU (BN folds into the conv at export)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _stem_layers(cin: int, cout: int) -> list[nn.Module]:
    """The compact bodies' stem: conv 3x3 stride 2 + BatchNorm + ReLU (`features.0-2`; checkpoints rely on it)."""
    return [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CompactPoseNet(nn.Module):
    """Stem conv 3x3/2, depthwise-separable stages, then either global average pooling (`head="gap"`,
    position-blind but tiny) or a flatten of the last small map (`head="flat"`, keeps where features
    are, which matters for regressing coordinates) into fc-`fc_width` with dropout and the 3J tanh."""

    def __init__(
        self,
        stages: tuple[tuple[int, int], ...],
        stem: int = 16,
        in_channels: int = 1,
        num_joints: int = 21,
        input_size: int = 96,
        fc_width: int = 256,
        dropout: float = 0.0,
        head: str = "flat",
    ):
        super().__init__()
        layers = _stem_layers(in_channels, stem)
        ch, side = stem, (input_size + 1) // 2
        for cout, stride in stages:
            layers.append(_ds_block(ch, cout, stride))
            ch = cout
            side = (side + 1) // 2 if stride == 2 else side
        self.features = nn.Sequential(*layers)
        if head == "gap":
            flat, pool = ch, nn.AdaptiveAvgPool2d(1)
        elif head == "flat":
            flat, pool = ch * side * side, nn.Identity()
        else:
            raise ValueError(f"head must be 'gap' or 'flat', got {head!r}")
        self.pool = pool
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, fc_width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_width, 3 * num_joints),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


def soft_argmax_joints(logits: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Integral / anchor-voting readout. logits (B, J, H, W); offsets (B, J, 3, H, W) = per-cell (dx, dy, z)
    -> (B, 3J) normalized joints: each joint is the softmax(logits)-weighted mean over the grid of
    (cell centre x + dx, cell centre y + dy, z). Cell centres sit on the cube frame's pixel convention
    ((i + 0.5) / n * 2 - 1, augment.py), so a single peaked cell with zero offsets reads out its centre."""
    b, j, h, w = logits.shape
    wts = torch.softmax(logits.reshape(b, j, h * w), -1)
    gy, gx = pixel_grid(h, logits), pixel_grid(w, logits)
    cx = gx.view(1, w).expand(h, w).reshape(1, 1, h * w)
    cy = gy.view(h, 1).expand(h, w).reshape(1, 1, h * w)
    off = offsets.reshape(b, j, 3, h * w)
    x = (wts * (cx + off[:, :, 0])).sum(-1)
    y = (wts * (cy + off[:, :, 1])).sum(-1)
    z = (wts * off[:, :, 2]).sum(-1)
    return torch.stack([x, y, z], -1).reshape(b, 3 * j)


class DenseCompactPoseNet(nn.Module):
    """CompactPoseNet's body (same `features` layout and parameter names, so a trained compact body
    warm-starts it), a top-down decoder (FPN: 1x1 laterals from the last map of every scale, nearest 2x
    upsampling, sums) back to the first stride-4 map, and an anchor/integral head: per joint a softmax
    weight map over that grid plus per-cell (dx, dy, z); the joint is the weighted mean (soft_argmax_joints).

    Why (a deviation from seed 003, whose nets regress 3J numbers with fully-connected layers): at 64 px
    the flat head regresses from a 2x2 map, so fine finger positions must pass through an fc bottleneck;
    voting from a 16x16 grid keeps them where they are (A2J, Xiong et al. ICCV 2019; integral regression,
    Sun et al. ECCV 2018). Output contract unchanged: (B, 3J) normalized joints, no tanh -- the weighted
    mean of cell centres is already bounded by the grid and the offsets are free to reach past it."""

    def __init__(
        self,
        stages: tuple[tuple[int, int], ...],
        stem: int = 24,
        in_channels: int = 1,
        num_joints: int = 21,
        decoder_width: int = 64,
    ):
        super().__init__()
        layers = _stem_layers(in_channels, stem)
        ch, taps, widths = stem, [], []
        for i, (cout, stride) in enumerate(stages):
            layers.append(_ds_block(ch, cout, stride))
            ch = cout
            last_of_scale = i == len(stages) - 1 or stages[i + 1][1] == 2
            if last_of_scale and any(s == 2 for _, s in stages[: i + 1]):
                taps.append(len(layers) - 1)
                widths.append(cout)
        if len(taps) < 2:
            raise ValueError("the dense head needs at least two scales after the stem")
        self.features = nn.Sequential(*layers)
        self.taps = tuple(taps)  # indices in `features` whose outputs feed the decoder, finest first
        d = decoder_width
        self.laterals = nn.ModuleList(nn.Conv2d(c, d, 1) for c in widths)
        self.smooth = _ds_block(d, d, 1)
        self.num_joints = num_joints
        self.out = nn.Conv2d(d, 4 * num_joints, 1)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                maps.append(x)
        p = self.laterals[-1](maps[-1])
        for lat, m in zip(list(self.laterals)[-2::-1], maps[-2::-1]):
            p = lat(m) + nn.functional.interpolate(p, size=m.shape[-2:], mode="nearest")
        o = self.out(self.smooth(p))
        b, _, h, w = o.shape
        j = self.num_joints
        return soft_argmax_joints(o[:, :j], o[:, j:].reshape(b, j, 3, h, w))


class CompactConvNet(nn.Module):
    """A seed-style plain 3x3 conv body (a layer list as in NET_CONFIGS) with BatchNorm after each conv
    and a small fc head: the Depth-Net design at a fraction of the width, for CPU real time."""

    def __init__(
        self,
        cfg: tuple,
        in_channels: int = 1,
        num_joints: int = 21,
        input_size: int = 64,
        fc_width: int = 512,
        dropout: float = 0.0,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_channels
        for item in cfg:
            if item == M:
                layers.append(nn.MaxPool2d(2, 2))
                continue
            filters, k = item
            layers += [
                nn.Conv2d(ch, filters, k, 1, k // 2, bias=False),
                nn.BatchNorm2d(filters),
                nn.ReLU(inplace=True),
            ]
            ch = filters
        self.features = nn.Sequential(*layers)
        side = _spatial_after(cfg, input_size)
        if side < 1:
            raise ValueError(f"input size {input_size} is too small for this configuration")
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(ch * side * side, fc_width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_width, 3 * num_joints),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# Net7's pattern (1, 1, 2, 2 convs per pool) at widths 16-32-64-128.
SLIM_NET7 = ((16, 3), M, (32, 3), M, (64, 3), (64, 3), M, (128, 3), (128, 3), M)
_DS_S = ((32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1))
_DS_M = ((32, 2), (48, 1), (64, 2), (96, 1), (128, 2), (128, 1), (192, 2))
# compact_m with two more blocks at 1/8 and 1/16 scale and a 256-wide last map: ~1.4x the params and only
# ~6 % more training time per step on a CPU core (depthwise convs are cheap; the time goes to memory)
_DS_L = ((32, 2), (48, 1), (64, 2), (96, 1), (96, 1), (128, 2), (160, 1), (160, 1), (256, 2))


# ---------------------------------------------------------------------------------------------------
# The registry: one table, every model by name.


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named model and what it is for (shown by `handstream models`)."""

    name: str
    task: str
    in_channels: int
    builder: Callable[..., nn.Module]
    description: str
    trade_off: str
    default_input_size: int = 128
    default_fc_width: int = 4096
    default_dropout: float = 0.5


@dataclass(frozen=True)
class ModelInfo:
    """One row of the model table. Shapes include the batch dimension (batch 1)."""

    name: str
    task: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    description: str
    trade_off: str

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "task": self.task,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "params": self.params,
            "description": self.description,
            "trade_off": self.trade_off,
        }


def _net(cfg_name: str, in_ch: int = 1):
    def build(num_joints, input_size, fc_width, dropout, **kw):
        if kw:
            raise TypeError(f"unexpected options {sorted(kw)}")
        return DepthNetFamily(NET_CONFIGS[cfg_name], in_ch, num_joints, input_size, fc_width, dropout)

    return build


def _fusepred(num_joints, input_size, fc_width, dropout, base: str = "net6", **kw):
    if kw:
        raise TypeError(f"unexpected options {sorted(kw)}")
    cfg = NET_CONFIGS[base]
    d = DepthNetFamily(cfg, 1, num_joints, input_size, fc_width, dropout)
    r = DepthNetFamily(cfg, 3, num_joints, input_size, fc_width, dropout)
    return FusePredNet(d, r, 3 * num_joints)


def _fusenet(fusion_default: str):
    def build(
        num_joints, input_size, fc_width, dropout, fusion=fusion_default, fuse_after=4, base="net6", **kw
    ):
        if kw:
            raise TypeError(f"unexpected options {sorted(kw)}")
        return FuseNet(NET_CONFIGS[base], fusion, int(fuse_after), num_joints, input_size, fc_width, dropout)

    return build


def _canonical(inner):
    """A builder that wraps `inner`'s model in train/canonical.py's in-plane canonicalization."""

    def build(num_joints, input_size, fc_width, dropout, test_shifts_px=(), **kw):
        from .canonical import InPlaneCanonical

        return InPlaneCanonical(inner(num_joints, input_size, fc_width, dropout, **kw), test_shifts_px)

    return build


def _pair(first, second):
    """A builder of MeanPair(first's model, second's model), both with the same options."""

    def build(num_joints, input_size, fc_width, dropout, **kw):
        return MeanPair(
            first(num_joints, input_size, fc_width, dropout, **kw),
            second(num_joints, input_size, fc_width, dropout, **kw),
        )

    return build


def _compact_conv(num_joints, input_size, fc_width, dropout, **kw):
    if kw:
        raise TypeError(f"unexpected options {sorted(kw)}")
    return CompactConvNet(SLIM_NET7, 1, num_joints, input_size, fc_width, dropout)


def _compact(stages, stem, head):
    def build(num_joints, input_size, fc_width, dropout, **kw):
        if kw:
            raise TypeError(f"unexpected options {sorted(kw)}")
        return CompactPoseNet(stages, stem, 1, num_joints, input_size, fc_width, dropout, head)

    return build


def _dense(stages, stem):
    def build(num_joints, input_size, fc_width, dropout, decoder_width=64, **kw):
        # input_size / fc_width / dropout do not shape this net (fully convolutional, no fc head); accepted
        # so every model builds the same way
        if kw:
            raise TypeError(f"unexpected options {sorted(kw)}")
        return DenseCompactPoseNet(stages, stem, 1, num_joints, int(decoder_width))

    return build


_NET_NOTES = {
    "net1": "4 conv / 3 pool, pattern 1 (one conv per pool, then two)",
    "net2": "5 conv / 3 pool, pattern 2 (1, 1, then 3 convs per pool)",
    "net3": "5 conv / 3 pool, Net2 with 7x7 and 5x5 first kernels",
    "net4": "5 conv / 3 pool, Net2 with twice the filters",
    "net5": "7 conv / 3 pool, pattern 3 (2, 2, 3 convs per pool)",
    "net6": "9 conv / 3 pool: Depth-Net (Fig. 4.3), Net5 + two convs after the last pool",
    "net7": "6 conv / 4 pool, pattern 1",
    "net8": "8 conv / 5 pool, pattern 1",
    "net9": "8 conv / 4 pool, pattern 2",
}
_FULL_TRADE = (
    "seed architecture; fc-4096 head dominates size (~0.5-1 GB fp32), far too slow for CPU real time"
)

MODEL_SPECS: dict[str, ModelSpec] = {}
for _n, _note in _NET_NOTES.items():
    MODEL_SPECS[_n] = ModelSpec(_n, "pose-depth", 1, _net(_n), f"{_n.capitalize()}: {_note}", _FULL_TRADE)
MODEL_SPECS.update(
    {
        "depthnet": ModelSpec(
            "depthnet", "pose-depth", 1, _net("net6"), "Depth-Net = Net6 (seed 003 Fig. 4.3)", _FULL_TRADE
        ),
        "rgbnet": ModelSpec(
            "rgbnet", "pose-rgb", 3, _net("net6", 3), "RGB-Net: Depth-Net body on 3-channel RGB", _FULL_TRADE
        ),
        "rgbdnet": ModelSpec(
            "rgbdnet",
            "pose-rgbd",
            4,
            _net("net6", 4),
            "RGBD-Net: input fusion, Depth-Net on 4 channels (depth, R, G, B)",
            "cheapest fusion: one extra input channel; " + _FULL_TRADE,
        ),
        "fusepred": ModelSpec(
            "fusepred",
            "pose-rgbd",
            4,
            _fusepred,
            "FusePred-Net: score fusion, per-output weighted mean of Depth-Net and RGB-Net (input ch0 depth, ch1-3 RGB)",
            "two full nets: twice the cost of Depth-Net; weights fixed 0.5 or from validation errors",
        ),
    }
)
for _f in FUSIONS:
    MODEL_SPECS[f"fusenet_{_f}"] = ModelSpec(
        f"fusenet_{_f}",
        "pose-rgbd",
        4,
        _fusenet(_f),
        f"Fuse-Net: double-stream Depth-Net/RGB-Net, {_f} fusion after conv `fuse_after` (default 4)",
        "two streams up to the fusion layer, one trunk after; cat doubles the next conv's input channels",
    )
MODEL_SPECS.update(
    {
        "compact_s": ModelSpec(
            "compact_s",
            "pose-depth",
            1,
            _compact(_DS_S, 16, "flat"),
            "compact: stem 3x3/2 + 6 depthwise-separable blocks to 6x6x128 @96, flatten, fc-256",
            "~1% of Net6's FLOPs, ~1.2 M params (fc on the 6x6 map); loses some accuracy, real time on CPU",
            96,
            256,
            0.0,
        ),
        "compact_s_canon": ModelSpec(
            "compact_s_canon",
            "pose-depth",
            1,
            _canonical(_compact(_DS_S, 16, "flat")),
            "compact_s inside in-plane canonicalization (train/canonical.py): the crop is rotated so the "
            "hand's principal axis points up, the joints are rotated back",
            "compact_s's size, + image moments and one GridSample per crop; the net no longer has to learn "
            "every pose at every in-plane angle (val 29.9 -> 26.4 mm at equal CPU time)",
            96,
            256,
            0.0,
        ),
        "compact_gap": ModelSpec(
            "compact_gap",
            "pose-depth",
            1,
            _compact(_DS_S, 16, "gap"),
            "compact: compact_s body, global average pooling instead of flatten, fc-256",
            "smallest (~70 k params) and fastest, but pooling discards where features are: less accurate",
            96,
            256,
            0.0,
        ),
        "compact_conv": ModelSpec(
            "compact_conv",
            "pose-depth",
            1,
            _compact_conv,
            "compact: Net7's layout (1, 1, 2, 2 convs per pool) at widths 16-32-64-128 with BatchNorm, 4x4 map @64, fc-512",
            "plain 3x3 convs: ~8x compact_s's FLOPs at 64x64 but far more conv capacity; ~0.3 M conv + 1 M fc params",
            64,
            512,
            0.0,
        ),
        "compact_m": ModelSpec(
            "compact_m",
            "pose-depth",
            1,
            _compact(_DS_M, 24, "flat"),
            "compact: stem 3x3/2 + 7 depthwise-separable blocks to 3x3x192 @96, flatten, fc-512",
            "wider/deeper than compact_s: better accuracy for ~2x its latency",
            96,
            512,
            0.0,
        ),
        "compact_m_canon": ModelSpec(
            "compact_m_canon",
            "pose-depth",
            1,
            _canonical(_compact(_DS_M, 24, "flat")),
            "compact_m inside in-plane canonicalization (train/canonical.py)",
            "fewer params than compact_s but a deeper body; 0.18 ms ORT; val 18.1 mm after 72 min vs "
            "compact_s_canon's 19.8 mm after 100 min (BENCHMARKS.md)",
            96,
            512,
            0.0,
        ),
        "compact_ml_canon_pair": ModelSpec(
            "compact_ml_canon_pair",
            "pose-depth",
            1,
            _pair(_canonical(_compact(_DS_M, 24, "flat")), _canonical(_compact(_DS_L, 24, "flat"))),
            "compact_m_canon and compact_l_canon on the same crop, predictions averaged (score fusion, 0.5/0.5)",
            "the sum of both nets' latency and size for ~0.9 mm and +3.6 points of success at 20 mm over the "
            "better one alone (BENCHMARKS.md)",
            96,
            512,
            0.0,
        ),
        "compact_l_canon": ModelSpec(
            "compact_l_canon",
            "pose-depth",
            1,
            _canonical(_compact(_DS_L, 24, "flat")),
            "compact_m_canon with 9 depthwise-separable blocks to a 256-channel last map",
            "the shipped default before the voting head: more capacity in the body for ~6 % more training "
            "time per step than compact_m_canon; 0.20 ms ORT. Needs data to match: on 62 k crops it memorized "
            "(12.8 mm on its training crops, 17.6 on unseen ones), on 316 k it does not (BENCHMARKS.md)",
            96,
            512,
            0.0,
        ),
        "compact_l_dense_canon": ModelSpec(
            "compact_l_dense_canon",
            "pose-depth",
            1,
            _canonical(_dense(_DS_L, 24)),
            "compact_l_canon's body, FPN decoder to the 1/4 map, per-joint softmax voting of (cell + dx, dy, z)",
            "the shipped default, with two test-time views shifted by one pixel averaged inside the engine: "
            "drops the fc bottleneck (0.18 M vs 0.69 M params) for a decoder "
            "at 1/4 resolution; ~1.4x the training step, +0.08 ms ORT; from the same body 13.1 vs 14.3 mm "
            "validation, success@20 36 vs 28 % on the test (BENCHMARKS.md). Warm-starts from a compact_l_canon body",
            96,
            512,
            0.0,
        ),
    }
)


def canonical_name(name: str) -> str:
    """'Depth-Net', 'depth_net', 'NET6 ', 'FusePred-Net' -> registry keys; KeyError lists the choices."""
    key = re.sub(r"[\s_\-]", "", name.lower())
    aliases = {"fusenet": "fusenet_sum", "fuseprednet": "fusepred"}
    for spec_name in MODEL_SPECS:
        if key == spec_name.replace("_", ""):
            return spec_name
    if key in aliases:
        return aliases[key]
    raise KeyError(f"unknown model {name!r}; known: {', '.join(MODEL_SPECS)}")


def create_model(
    name: str,
    num_joints: int = 21,
    input_size: int | None = None,
    fc_width: int | None = None,
    dropout: float | None = None,
    **kw,
) -> nn.Module:
    """Build a model by name (case, '-' and '_' ignored). `None` (the default) for input size / fc width /
    dropout means the model's own default: 128 / 4096 / 0.5 for the seed's nets (as Tables 4.1-4.2), 96 /
    256-512 / 0.0 for the compact ones. Extra options: Fuse-Net takes
    `fusion` ('sum', 'max', 'cat', 'conv'), `fuse_after` (1-based conv index) and `base` (a NetK);
    FusePred-Net takes `base`."""
    spec = MODEL_SPECS[canonical_name(name)]
    model = spec.builder(
        num_joints=int(num_joints),
        input_size=int(spec.default_input_size if input_size is None else input_size),
        fc_width=int(spec.default_fc_width if fc_width is None else fc_width),
        dropout=float(spec.default_dropout if dropout is None else dropout),
        **kw,
    )
    model.spec_name = spec.name  # type: ignore[attr-defined]
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_info(name: str, num_joints: int = 21, input_size: int | None = None, **kw) -> ModelInfo:
    """A model's table row. Built on the meta device, so even Net4's 270 M parameters cost no memory."""
    spec = MODEL_SPECS[canonical_name(name)]
    size = int(spec.default_input_size if input_size is None else input_size)
    with torch.device("meta"):
        model = create_model(spec.name, num_joints, size, None, None, **kw)
    return ModelInfo(
        spec.name,
        spec.task,
        (1, spec.in_channels, size, size),
        (1, 3 * num_joints),
        count_params(model),
        spec.description,
        spec.trade_off,
    )


def list_models(num_joints: int = 21) -> list[ModelInfo]:
    """Every model the project defines, at its default input size and head width."""
    return [model_info(n, num_joints) for n in MODEL_SPECS]
