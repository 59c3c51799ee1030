"""MobileNetV2 (Sandler et al. 2018) for hand-size regression, written to torchvision's layer layout.

torchvision is not installed here, so this is torchvision.models.mobilenet_v2's definition re-typed: the same
module tree and parameter names (features.0.0.weight, features.1.conv.0.0.weight, ..., classifier.1.weight),
the same `_make_divisible` channel rounding, width multiplier and initialisation, so a torchvision state dict
(e.g. ImageNet weights saved from torchvision on another machine) loads into it. ImageNet weights are only
read from a local file when one is given (`pretrained=PATH`); nothing is downloaded. The classifier is
replaced by `outputs` regression outputs, as the seed replaces the 1000-way layer with 1 or 2 outputs.

SizeNet wraps the backbone for the runtime: it takes the pipeline's normalized cube crop (1 = background,
[-1, 1] on the hand), sets the background to zero as the seed does (x = (1 - d) / 2), letterboxes it to
`input_size` (the crop is square, so a resize), and returns millimetres (the network predicts
(size - mean) / sd per quantity; the wrapper undoes it, so the engine's output is the hand size itself).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# t (expansion), c (channels), n (repeats), s (stride) of torchvision's inverted_residual_setting
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's channel rounding: to a multiple of `divisor`, never more than 10 % below `v`."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + ReLU6, torchvision.ops.misc.Conv2dNormActivation's layout."""

    def __init__(self, inp: int, oup: int, kernel_size: int = 3, stride: int = 1, groups: int = 1) -> None:
        pad = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(inp, oup, kernel_size, stride, pad, groups=groups, bias=False),
            nn.BatchNorm2d(oup),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, kernel_size=1))
        layers += [
            Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 with `num_classes` outputs and `in_channels` input channels."""

    def __init__(
        self, num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3, dropout: float = 0.2
    ) -> None:
        super().__init__()
        input_channel = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [Conv2dNormActivation(in_channels, input_channel, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            out = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(input_channel, out, s if i == 0 else 1, t))
                input_channel = out
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


def load_imagenet(model: MobileNetV2, path: str) -> None:
    """ImageNet weights from a local torchvision state dict: everything but the classifier; a 1-channel
    first convolution gets the sum of the RGB filters (a grey image's response)."""
    from stream.errors import InputError

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise InputError(f"cannot read ImageNet weights {path}: {exc}") from None
    sd = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
    w = sd.get("features.0.0.weight")
    own = model.features[0][0].weight
    if w is not None and w.shape[1] != own.shape[1]:
        sd["features.0.0.weight"] = w.sum(1, keepdim=True).expand(-1, own.shape[1], -1, -1) / own.shape[1]
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or [k for k in missing if not k.startswith("classifier.")]:
        raise InputError(f"{path} is not a MobileNetV2 state dict of this width")


class SizeNet(nn.Module):
    """Normalized cube crop (B, 1, S, S) -> hand size (B, K) in mm (K = the quantities it was trained for)."""

    def __init__(
        self,
        quantities: tuple[str, ...] = ("length", "width"),
        mean_mm: tuple[float, ...] = (187.0, 83.0),
        sd_mm: tuple[float, ...] = (11.5, 6.5),
        width_mult: float = 0.5,
        input_size: int = 64,
        color: bool = False,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        if len(mean_mm) != len(quantities) or len(sd_mm) != len(quantities):
            raise ValueError("one mean and one sd per quantity")
        self.quantities = tuple(quantities)
        self.input_size = int(input_size)
        self.color = bool(color)
        self.backbone = MobileNetV2(len(quantities), width_mult, in_channels=3 if color else 1)
        if pretrained:
            load_imagenet(self.backbone, pretrained)
        self.register_buffer("mean_mm", torch.tensor(mean_mm, dtype=torch.float32))
        self.register_buffer("sd_mm", torch.tensor(sd_mm, dtype=torch.float32))
        self.register_buffer("rgb_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("rgb_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def prepare(self, crop: torch.Tensor) -> torch.Tensor:
        """Background to zero (seed: pixels outside the mask are zero), letterboxed to input_size. With
        `color`, the input is a (B, 3, S, S) RGB crop in [0, 1], normalised with ImageNet's mean and sd."""
        if self.color:
            x = (crop - self.rgb_mean) / self.rgb_std
        else:
            x = (1.0 - crop) * 0.5
        if x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="nearest")
        return x

    def forward_normalized(self, crop: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.prepare(crop))

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        return self.forward_normalized(crop) * self.sd_mm + self.mean_mm
