"""The torch building blocks that `engine.quantize` understands: MobileNetV2-style pieces.

`ConvBNAct` pads the way TFLite's SAME padding does (the smaller half before, the larger after),
so that a stride-2 layer computes exactly what its int8 CONV_2D will. `TinyMobileNet` is an
`nn.Sequential` (stem, blocks, optional head, pool, flatten, classifier, optional softmax): its
forward is its children in order, which is how the quantiser walks it. nas/ reuses these blocks."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("relu", "relu6", "none")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite SAME padding of one spatial dimension: (before, after)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def activation_module(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "relu6":
        return nn.ReLU6()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"activation {name!r} is not one of {', '.join(ACTIVATIONS)}")


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias, TFLite SAME padding) + BatchNorm2d + ReLU / ReLU6 / nothing.

    `groups` is 1 (a regular conv) or the input channel count (a depthwise conv)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, activation: str = "relu6") -> None:
        if groups not in (1, in_channels):
            raise ValueError(f"groups={groups}: only 1 (conv) or in_channels={in_channels} (depthwise) are supported")
        if groups == in_channels and out_channels % in_channels:
            raise ValueError(f"depthwise conv: out_channels {out_channels} is not a multiple of in_channels {in_channels}")
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding=0, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = activation_module(activation)

    @property
    def is_depthwise(self) -> bool:
        return self.conv.groups > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.conv.kernel_size
        sh, sw = self.conv.stride
        top, bottom = same_padding(x.shape[-2], kh, sh)
        left, right = same_padding(x.shape[-1], kw, sw)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (when expand > 1), kxk depthwise, 1x1 linear project,
    and a residual add when stride is 1 and the channel count is kept."""

    def __init__(self, in_channels: int, out_channels: int, expand: int = 1, kernel: int = 3,
                 stride: int = 1, activation: str = "relu6") -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride {stride}: only 1 or 2")
        if kernel % 2 == 0:
            raise ValueError(f"kernel {kernel}: only odd kernel sizes")
        hidden = in_channels * expand
        self.expand = ConvBNAct(in_channels, hidden, 1, 1, activation=activation) if expand != 1 else None
        self.depthwise = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, activation=activation)
        self.project = ConvBNAct(hidden, out_channels, 1, 1, activation="none")
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.use_residual else y


@dataclass(frozen=True)
class Stage:
    """`repeats` inverted-residual blocks; the first has `stride`, the others stride 1."""

    expand: int
    channels: int
    repeats: int
    stride: int
    kernel: int


@dataclass(frozen=True)
class TinyMobileNetConfig:
    stages: tuple[Stage, ...]
    input_size: int = 48  # square input, height = width
    input_channels: int = 3
    stem_channels: int = 8
    stem_kernel: int = 3
    stem_stride: int = 2
    head_channels: int = 0  # a 1x1 ConvBNAct before pooling; 0: none
    num_classes: int = 10
    activation: str = "relu6"
    softmax: bool = False

    def __post_init__(self) -> None:
        stages = tuple(s if isinstance(s, Stage) else Stage(*s) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        if self.activation not in ("relu", "relu6"):
            raise ValueError(f"activation {self.activation!r}: relu or relu6")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width), torch's layout."""
        return (self.input_channels, self.input_size, self.input_size)


class TinyMobileNet(nn.Sequential):
    """stem -> blocks -> [head] -> pool -> flatten -> classifier -> [softmax]."""

    def __init__(self, config: TinyMobileNetConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = ConvBNAct(config.input_channels, config.stem_channels, config.stem_kernel,
                              config.stem_stride, activation=config.activation)
        blocks = []
        channels = config.stem_channels
        for stage in config.stages:
            for repeat in range(stage.repeats):
                blocks.append(InvertedResidual(channels, stage.channels, stage.expand, stage.kernel,
                                               stage.stride if repeat == 0 else 1, config.activation))
                channels = stage.channels
        self.blocks = nn.Sequential(*blocks)
        if config.head_channels:
            self.head = ConvBNAct(channels, config.head_channels, 1, 1, activation=config.activation)
            channels = config.head_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(channels, config.num_classes)
        if config.softmax:
            self.softmax = nn.Softmax(dim=-1)
