"""The layer configurations of a network, each with a readable key such as
`mbconv-in:40x40x24-out:24-e:6-k:5-s:1-res`, and the tiny network that measures one alone."""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from engine.torch_models import ConvBNAct, InvertedResidual, TinyMobileNetConfig

KINDS = ("conv", "mbconv", "pool", "fc")


@dataclass(frozen=True)
class Layer:
    """One layer configuration: its kind, input (height, width, channels) and parameters."""

    kind: str
    height: int
    width: int
    in_channels: int
    out_channels: int
    expand: int = 1
    kernel: int = 1
    stride: int = 1
    activation: str = "relu6"

    @property
    def residual(self) -> bool:
        return self.kind == "mbconv" and self.stride == 1 and self.in_channels == self.out_channels

    @property
    def out_size(self) -> tuple[int, int]:
        return math.ceil(self.height / self.stride), math.ceil(self.width / self.stride)

    @property
    def key(self) -> str:
        shape = f"in:{self.height}x{self.width}x{self.in_channels}"
        if self.kind == "conv":
            return f"conv-{shape}-out:{self.out_channels}-k:{self.kernel}-s:{self.stride}"
        if self.kind == "mbconv":
            key = f"mbconv-{shape}-out:{self.out_channels}-e:{self.expand}-k:{self.kernel}-s:{self.stride}"
            return key + ("-res" if self.residual else "")
        if self.kind == "pool":
            return f"pool-{shape}"
        return f"fc-in:{self.in_channels}-out:{self.out_channels}"

    @property
    def macs(self) -> int:
        """Multiply-accumulates (the MicroNets latency proxy)."""
        oh, ow = self.out_size
        if self.kind == "conv":
            return oh * ow * self.out_channels * self.in_channels * self.kernel * self.kernel
        if self.kind == "mbconv":
            hidden = self.in_channels * self.expand
            expand = self.height * self.width * self.in_channels * hidden if self.expand != 1 else 0
            return expand + oh * ow * hidden * (self.kernel * self.kernel + self.out_channels)
        if self.kind == "pool":
            return self.height * self.width * self.in_channels
        return self.in_channels * self.out_channels

    def module(self) -> nn.Sequential:
        """The smallest torch network holding this layer alone (for `fc`: a 1x1 pool and flatten
        before it, since the quantiser takes image input)."""
        if self.kind == "conv":
            return nn.Sequential(ConvBNAct(self.in_channels, self.out_channels, self.kernel, self.stride,
                                           activation=self.activation))
        if self.kind == "mbconv":
            return nn.Sequential(InvertedResidual(self.in_channels, self.out_channels, self.expand, self.kernel,
                                                  self.stride, self.activation))
        if self.kind == "pool":
            return nn.Sequential(nn.AdaptiveAvgPool2d(1))
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(self.in_channels, self.out_channels))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the tiny network's input."""
        if self.kind == "fc":
            return (self.in_channels, 1, 1)
        return (self.in_channels, self.height, self.width)


def network_layers(config: TinyMobileNetConfig) -> list[Layer]:
    """The layers of a TinyMobileNet in order: stem, blocks, [head], pool, classifier."""
    act = config.activation
    size = config.input_size
    stem = Layer("conv", size, size, config.input_channels, config.stem_channels,
                 kernel=config.stem_kernel, stride=config.stem_stride, activation=act)
    layers = [stem]
    (h, w), channels = stem.out_size, config.stem_channels
    for stage in config.stages:
        for repeat in range(stage.repeats):
            block = Layer("mbconv", h, w, channels, stage.channels, stage.expand, stage.kernel,
                          stage.stride if repeat == 0 else 1, act)
            layers.append(block)
            (h, w), channels = block.out_size, stage.channels
    if config.head_channels:
        layers.append(Layer("conv", h, w, channels, config.head_channels, activation=act))
        channels = config.head_channels
    layers.append(Layer("pool", h, w, channels, channels))
    layers.append(Layer("fc", 1, 1, channels, config.num_classes))
    return layers


def network_macs(config: TinyMobileNetConfig) -> int:
    return sum(layer.macs for layer in network_layers(config))


def space_layers(space) -> dict[str, Layer]:
    """Every distinct layer configuration of a search space (`nas.space.SearchSpace`), by key,
    at each of its widths and resolutions."""
    found: dict[str, Layer] = {}
    for width in space.widths:
        _scaled_space_layers(space.at(width), found)
    return found


def _scaled_space_layers(space, found: dict[str, Layer]) -> None:
    """The layers of a space of one width (channels already scaled) into `found`."""
    from engine.torch_models import Stage

    def default(stage, stride: int) -> Stage:
        return Stage(stage.expands[0], stage.channels, 1, stride, stage.kernels[0])

    prefix: tuple[Stage, ...] = (Stage(1, space.first_block_channels, 1, 1, 3),) if space.first_block_channels else ()
    for resolution in space.resolutions:
        # A stage's input shape does not depend on the choices before it: vary one stage at a time,
        # the others at their first choice, with the first block and (when deeper than 1) a repeat.
        for index, stage in enumerate(space.stages):
            before = tuple(default(s, s.stride) for s in space.stages[:index])
            after = tuple(default(s, s.stride) for s in space.stages[index + 1:])
            for expand in stage.expands:
                for kernel in stage.kernels:
                    chosen = (Stage(expand, stage.channels, 1, stage.stride, kernel),)
                    if max(stage.repeats) > 1:
                        chosen += (Stage(expand, stage.channels, 1, 1, kernel),)
                    for layer in network_layers(space.config(resolution, prefix + before + chosen + after)):
                        found.setdefault(layer.key, layer)
