"""A tiny fully-convolutional hand detector for the segmenter: depth frame at 160x120 in, palm-centre
heatmap and hand-mask logits at 1/4 of the input out. The runtime (stream/preprocess/detect.py) runs its
ONNX export.

Why a learned detector: the hand-tuned segmenter's candidate generation misses the hand on ~19 % of the
synthetic body + distractor scenes, and judging candidates in Python costs ~3.5 ms; a network sees the whole
context (arm, body, clutter) at once and costs a fixed, small amount per frame.

Layout (CenterNet-like, deliberately small: ~6 M multiply-adds so ONNX Runtime runs it in well under 1 ms
on one CPU thread):
  stem 3x3/2 -> 3x3/2 (the 1/4 skip) -> 3x3/2 -> depthwise-separable blocks with dilation 1, 2, 4
  (receptive field ~ the whole 160x120 frame: an arm's end is judged with the arm) -> 1x1, upsample x2,
  add the skip -> one depthwise-separable block -> 1x1 to 2 channels: heatmap (sigmoid inside the graph)
  and mask (logits); with `depth_head`, a third channel: the depth (m) of the hand's visible surface,
  meaningful near a palm peak only.

Why the depth channel: where an occluder (box, cup, ball) lies in front of
the hand, the palm peak often sits on it, and the runtime's depth at the peak -- the median of the measured
pixels under the coarse predicted mask -- was the occluder's: the hand cut out was the occluder (~4 % of
the pose test frames). The network sees both layers; asking it which one is the hand costs one output
channel, and the runtime snaps that estimate to the nearest measured surface.

Not registered in train.models' MODEL_SPECS: that table is the pose models' (input (B, C, S, S) -> (B, 3J))
and lives in a file this module's owner does not edit; `create_detector` builds it instead.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

INPUT_HW = (120, 160)
STRIDE = 4


def _cbr(
    cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1
) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _ds(ch: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 (dilated) + pointwise 1x1, each with BN + ReLU (BN folds into the conv at export)."""
    return nn.Sequential(_cbr(ch, ch, 3, 1, dilation, groups=ch), _cbr(ch, ch, 1))


class _Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class HandDetectorNet(nn.Module):
    """(B, 1, 120, 160) depth in metres (0 = missing) -> heatmap (B, 1, 30, 40) in [0, 1] and mask logits
    (B, 1, 30, 40). Any input whose sides are multiples of 8 works (the export fixes 120x160)."""

    def __init__(
        self,
        width: int = 16,
        deep: int = 32,
        dilations: tuple[int, ...] = (1, 2, 4, 1),
        depth_head: bool = False,
    ):
        super().__init__()
        self.depth_head = bool(depth_head)
        self.down4 = nn.Sequential(_cbr(1, width // 2, 3, 2), _cbr(width // 2, width, 3, 2))
        self.down8 = _cbr(width, deep, 3, 2)
        self.context = nn.Sequential(*[_Residual(_ds(deep, d)) for d in dilations])
        self.lateral = nn.Conv2d(deep, width, 1)
        self.fuse = _Residual(_ds(width))
        self.head = nn.Conv2d(width, 3 if self.depth_head else 2, 1)
        nn.init.constant_(self.head.bias, 0.0)
        with torch.no_grad():
            self.head.bias[0] = -4.0  # heatmap starts near 0 everywhere (focal-loss practice, CenterNet)
            if self.depth_head:
                self.head.bias[2] = 0.5  # metres: the middle of the hand range

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(heatmap, mask logits) or, with the depth head, (heatmap, mask logits, hand depth m)."""
        s4 = self.down4(x)
        s8 = self.context(self.down8(s4))
        up = F.interpolate(self.lateral(s8), scale_factor=2.0, mode="nearest")
        y = self.head(self.fuse(F.relu(s4 + up)))
        if self.depth_head:
            return torch.sigmoid(y[:, :1]), y[:, 1:2], y[:, 2:3]
        return torch.sigmoid(y[:, :1]), y[:, 1:2]

    def load_two_channel(self, state_dict: dict) -> None:
        """Load a checkpoint of the 2-channel (no depth head) detector: the depth channel keeps its fresh
        initialization, everything else is copied (fine-tuning the shipped detector with the new head)."""
        sd = dict(state_dict)
        if self.depth_head and sd["head.weight"].shape[0] == 2:
            w, b = self.head.weight.detach().clone(), self.head.bias.detach().clone()
            w[:2], b[:2] = sd["head.weight"], sd["head.bias"]
            sd["head.weight"], sd["head.bias"] = w, b
        self.load_state_dict(sd)


def create_detector(**kwargs) -> HandDetectorNet:
    """The detector with the given widths (see HandDetectorNet)."""
    return HandDetectorNet(**kwargs)


def focal_heatmap_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on a Gaussian target (peak = 1 at the palm centre), pixels with
    weight 0 ignored (partly visible hands: neither a miss nor a false detection), normalized by the number
    of peaks (at least 1, so no-hand frames still teach "nothing here")."""
    p = pred.clamp(1e-4, 1 - 1e-4)
    pos = (target > 0.99).float()
    neg = 1.0 - pos
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg
    n = (pos * weight).sum().clamp(min=1.0)
    return ((pos_loss + neg_loss) * weight).sum() / n


def depth_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """L1 (m) of the hand-depth channel where weight > 0 (the cells around visible hands' palms)."""
    return ((pred - target).abs() * weight).sum() / weight.sum().clamp(min=1.0)


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + soft dice (per frame; frames without a hand contribute BCE only)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).flatten(1).sum(1)
    denom = (p + target).flatten(1).sum(1)
    has = target.flatten(1).sum(1) > 0.5
    dice = 1.0 - (2 * inter + 1.0) / (denom + 1.0)
    return bce + (dice[has].mean() if has.any() else 0.0 * bce)


def load_folded_onnx(model: HandDetectorNet, path) -> None:
    """Load an exported detector (.onnx, BatchNorm folded into the convolutions at export) into `model`:
    each convolution takes the folded weights, its BatchNorm becomes the identity plus the folded bias
    (weight 1, mean 0, variance 1 - eps). The model then computes exactly the engine's function as long as
    its BatchNorms run in eval mode (`freeze_batchnorm`): fine-tuning the shipped engine, whose training
    checkpoint is not kept in the repository.

    The ONNX graph's Conv nodes come in the model's module order (checked by shape, group and dilation)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes = [n for n in graph.node if n.op_type == "Conv"]
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if len(nodes) != len(convs):
        raise ValueError(f"{path}: {len(nodes)} convolutions, the model has {len(convs)}")
    modules = dict(model.named_modules())
    with torch.no_grad():
        for node, (name, conv) in zip(nodes, convs):
            w = torch.from_numpy(init[node.input[1]].copy())
            b = torch.from_numpy(init[node.input[2]].copy()) if len(node.input) > 2 else None
            attrs = {
                a.name: (a.i if a.type == onnx.AttributeProto.INT else list(a.ints)) for a in node.attribute
            }
            if (
                tuple(w.shape) != tuple(conv.weight.shape)
                or attrs.get("group", 1) != conv.groups
                or tuple(attrs.get("dilations", [1, 1])) != tuple(conv.dilation)
            ):
                raise ValueError(f"{path}: convolution {node.input[1]} does not match {name}")
            conv.weight.copy_(w)
            parent, _, idx = name.rpartition(".")
            bn = modules[parent][int(idx) + 1] if parent and idx.isdigit() else None
            if isinstance(bn, nn.BatchNorm2d):
                bn.weight.fill_(1.0)
                bn.bias.copy_(b if b is not None else torch.zeros_like(bn.bias))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            elif b is not None and conv.bias is not None:
                conv.bias.copy_(b)
            else:
                raise ValueError(f"{path}: convolution {name} has a bias but neither BatchNorm nor a bias")


def widen_context(model: HandDetectorNet, deep: int, seed: int = 0) -> HandDetectorNet:
    """A copy of `model` with `deep` context channels instead of `model`'s, computing exactly the same
    outputs (Net2Net-style growth): the new channels get fresh filters from `down8` on, the old channels never
    read them (zero pointwise weights from new to old), and `lateral` reads them with zero weights. Training
    then grows them from the old function instead of from scratch.

    Why: fine-tuning the shipped 21 k-parameter detector on close-range scenes trades frontal hands away
    whatever the data or schedule (BENCHMARKS.md, "Close-range and hand-object scenes"); more context
    channels are the cheapest room (1/8 resolution: 48 -> 64 channels costs ~0.07 ms a frame, 96 ~0.27 ms).
    Measured: with 96 channels the close-range fine-tune keeps the frontal segmentation, but still puts
    close-range hands on the objects they hold; the shipped engine stays at 48.

    New BatchNorms are the identity (weight 1, bias 0, mean 0, variance 1 - eps), as `load_folded_onnx`
    leaves the old ones, so a model loaded from an engine keeps training with frozen BatchNorms."""
    old = model.context[0].body[0][0].in_channels
    if deep < old:
        raise ValueError(f"widen_context: {deep} channels is fewer than the model's {old}")
    dil = tuple(int(b.body[0][0].dilation[0]) for b in model.context)
    width = model.lateral.out_channels
    wide = HandDetectorNet(width=width, deep=deep, dilations=dil, depth_head=model.depth_head)
    if deep == old:
        wide.load_state_dict(model.state_dict())
        return wide
    gen = torch.Generator().manual_seed(seed)
    src = dict(model.named_modules())

    def fresh(shape, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * float(like.std())

    with torch.no_grad():
        for name, m in wide.named_modules():
            o = src[name]
            if isinstance(m, nn.Conv2d):
                w = m.weight
                ow = o.weight
                if name.startswith("context") and m.groups > 1:  # depthwise: one filter per channel
                    w[:old] = ow
                    w[old:] = fresh(w[old:].shape, ow)
                elif name.startswith("context"):  # pointwise deep -> deep
                    w.zero_()
                    w[:old, :old] = ow
                    w[old:] = fresh(w[old:].shape, ow) * (old / deep) ** 0.5
                elif name == "down8.0":
                    w[:old] = ow
                    w[old:] = fresh(w[old:].shape, ow)
                elif name == "lateral":
                    w.zero_()
                    w[:, :old] = ow
                    m.bias.copy_(o.bias)
                else:
                    w.copy_(ow)
                    if m.bias is not None:
                        m.bias.copy_(o.bias)
            elif isinstance(m, nn.BatchNorm2d):
                n = o.num_features
                for attr, fill in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0)):
                    t = getattr(m, attr)
                    t.fill_(fill)
                    t[:n] = getattr(o, attr)
                m.running_var.fill_(1.0 - m.eps)
                m.running_var[:n] = o.running_var
    return wide


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode (fixed statistics; its affine weights still train): call after each
    model.train() when fine-tuning a model loaded by load_folded_onnx."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
