"""The supernet of one (W, R) of a space: MobileNetV2-style inverted-residual stages whose
subnets share weights (Once-for-all, MCUNet). Elastic kernel and expand ratio per block
(`nas/elastic.py`), elastic depth per stage (a stage keeps its first blocks); the stem, the fixed
first block, the head and the classifier are the same in every subnet.

`subnet(arch)` extracts a standalone `engine.torch_models.TinyMobileNet` holding the subnet's
weights and batch-norm statistics, the class `engine.quantize` quantises: deployment is quantise,
compile, run. `recalibrate_bn` recomputes batch-norm statistics, which every subnet needs before
it is scored."""
from __future__ import annotations

import random
from typing import Iterable

import torch
from torch import nn

from engine.torch_models import ConvBNAct, InvertedResidual, TinyMobileNet
from nas.arch import Arch, largest_arch, sample_arch, smallest_arch
from nas.elastic import ElasticBlock, centre
from nas.space import SearchSpace, SpaceError


class Supernet(nn.Module):
    """The weight-sharing network of `space` at width `width` and input resolution `resolution`.
    `forward(x, arch)` runs the subnet `arch` (default: the active one, `set_arch`, else the largest)."""

    def __init__(self, space: SearchSpace, width: float, resolution: int) -> None:
        super().__init__()
        for i, stage in enumerate(space.stages):
            if 1 in stage.expands:
                raise SpaceError(f"space {space.name}: stages[{i}].expands holds 1; the supernet's blocks always "
                                 f"have an expand conv, so expand ratios must be at least 2")
        self.space, self.width, self.resolution = space, width, resolution
        self.scaled = space.at(width)
        self.template = space.network(largest_arch(space.stages), width, resolution)
        cfg = self.template
        self.stem = ConvBNAct(cfg.input_channels, cfg.stem_channels, cfg.stem_kernel, cfg.stem_stride,
                              activation=cfg.activation)
        channels = cfg.stem_channels
        self.first = None
        if space.first_block_channels:
            self.first = InvertedResidual(channels, self.scaled.first_block_channels, 1, 3, 1, cfg.activation)
            channels = self.scaled.first_block_channels
        self.stages = nn.ModuleList()
        for stage in self.scaled.stages:
            blocks = nn.ModuleList()
            for index in range(max(stage.repeats)):
                blocks.append(ElasticBlock(channels, stage.channels, stage.stride if index == 0 else 1,
                                           max(stage.kernels), max(stage.expands), cfg.activation))
                channels = stage.channels
            self.stages.append(blocks)
        self.head = None
        if cfg.head_channels:
            self.head = ConvBNAct(channels, cfg.head_channels, 1, 1, activation=cfg.activation)
            channels = cfg.head_channels
        self.classifier = nn.Linear(channels, cfg.num_classes)
        self.arch: Arch | None = None

    # -- architectures --
    def largest(self) -> Arch:
        return largest_arch(self.space.stages)

    def smallest(self) -> Arch:
        return smallest_arch(self.space.stages)

    def sample(self, rng: random.Random) -> Arch:
        return sample_arch(self.space.stages, rng)

    def set_arch(self, arch: Arch | None) -> None:
        """The subnet `forward` runs when given none (None: the largest)."""
        if arch is not None:
            arch.check(self.space.stages)
        self.arch = arch

    # -- running --
    def forward(self, x: torch.Tensor, arch: Arch | None = None) -> torch.Tensor:
        arch = arch or self.arch or self.largest()
        x = self.stem(x)
        if self.first is not None:
            x = self.first(x)
        for blocks, chosen in zip(self.stages, arch.stages):
            for block, choice in zip(blocks, chosen):
                x = block(x, choice.kernel, choice.expand)
        if self.head is not None:
            x = self.head(x)
        return self.classifier(x.mean(dim=(2, 3)))

    def sort_channels(self) -> None:
        """Every block's expanded channels by importance (see `ElasticBlock.sort_channels`); the
        largest subnet computes the same function before and after. Not during training: an
        optimiser's state would no longer match its weights."""
        for blocks in self.stages:
            for block in blocks:
                block.sort_channels()

    # -- extraction --
    @torch.no_grad()
    def subnet(self, arch: Arch) -> TinyMobileNet:
        """A standalone TinyMobileNet of `arch` with the supernet's weights and batch-norm
        statistics (in eval mode it computes what `self(x, arch)` computes)."""
        arch.check(self.space.stages)
        model = TinyMobileNet(self.space.network(arch, self.width, self.resolution))
        model.stem.load_state_dict(self.stem.state_dict())
        extracted = iter(model.blocks)
        if self.first is not None:
            next(extracted).load_state_dict(self.first.state_dict())
        for blocks, chosen in zip(self.stages, arch.stages):
            for block, choice in zip(blocks, chosen):
                copy_block(block, choice.kernel, choice.expand, next(extracted))
        if self.head is not None:
            model.head.load_state_dict(self.head.state_dict())
        model.classifier.load_state_dict(self.classifier.state_dict())
        return model.train(self.training)


def copy_block(block: ElasticBlock, kernel: int, expand: int, target: InvertedResidual) -> None:
    """The weights and statistics of `block` at (kernel, expand) into the fixed block `target`."""
    hidden = block.in_channels * expand
    target.expand.conv.weight.copy_(block.expand_conv.weight[:hidden])
    target.depthwise.conv.weight.copy_(centre(block.depthwise_conv.weight[:hidden], kernel))
    target.project.conv.weight.copy_(block.project_conv.weight[:, :hidden])
    copy_bn(block.expand_bn, target.expand.bn, hidden)
    copy_bn(block.depthwise_bn, target.depthwise.bn, hidden)
    copy_bn(block.project_bn, target.project.bn, block.out_channels)


def copy_bn(source: nn.BatchNorm2d, target: nn.BatchNorm2d, channels: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(target, name).copy_(getattr(source, name)[:channels])
    target.num_batches_tracked.copy_(source.num_batches_tracked)
    target.eps, target.momentum = source.eps, source.momentum


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], arch: Arch | None = None) -> None:
    """Recompute every batch-norm layer's running statistics as the average over `batches` (a
    few hundred training images), then leave `model` in eval mode. For a Supernet, of subnet
    `arch` (the channels it does not use are reset too: recalibrate before scoring each subnet)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    try:
        for batch in batches:
            model(batch, arch) if isinstance(model, Supernet) else model(batch)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
