"""MCUNet/ProxylessNAS-style search spaces as plain data: input resolutions, a stem, stages of
inverted-residual blocks with per-block choices of expand ratio and kernel, and a head.

A network of a space is an `engine.torch_models.TinyMobileNetConfig` with one `Stage` of one
block per inverted-residual block, so that every block may pick its own expand ratio and kernel."""
from __future__ import annotations

import random
from dataclasses import dataclass

from engine.torch_models import Stage, TinyMobileNetConfig


@dataclass(frozen=True)
class StageChoices:
    """One stage: `channels` out, the first block has `stride`; its depth is one of `repeats`,
    and each block picks an expand ratio from `expands` and a kernel from `kernels`."""

    channels: int
    stride: int
    repeats: tuple[int, ...]
    expands: tuple[int, ...] = (3, 4, 6)
    kernels: tuple[int, ...] = (3, 5, 7)


@dataclass(frozen=True)
class SearchSpace:
    name: str
    resolutions: tuple[int, ...]
    stages: tuple[StageChoices, ...]
    stem_channels: int = 16
    stem_kernel: int = 3
    stem_stride: int = 2
    first_block_channels: int = 8  # the fixed expand-1, kernel-3 block after the stem (0: none)
    head_channels: int = 0  # the final 1x1 conv before pooling (0: none)
    num_classes: int = 10
    input_channels: int = 3
    activation: str = "relu6"

    def sample(self, rng: random.Random) -> TinyMobileNetConfig:
        """A random network of the space."""
        blocks: list[Stage] = []
        if self.first_block_channels:
            blocks.append(Stage(expand=1, channels=self.first_block_channels, repeats=1, stride=1, kernel=3))
        for stage in self.stages:
            depth = rng.choice(stage.repeats)
            for index in range(depth):
                blocks.append(Stage(expand=rng.choice(stage.expands), channels=stage.channels, repeats=1,
                                    stride=stage.stride if index == 0 else 1, kernel=rng.choice(stage.kernels)))
        return self.config(rng.choice(self.resolutions), tuple(blocks))

    def config(self, resolution: int, blocks: tuple[Stage, ...]) -> TinyMobileNetConfig:
        return TinyMobileNetConfig(
            stages=blocks, input_size=resolution, input_channels=self.input_channels,
            stem_channels=self.stem_channels, stem_kernel=self.stem_kernel, stem_stride=self.stem_stride,
            head_channels=self.head_channels, num_classes=self.num_classes, activation=self.activation,
            softmax=False,
        )


# The one table of named spaces.
SPACES: dict[str, SearchSpace] = {
    # For tests and quick checks: 14 layer keys.
    "tiny": SearchSpace(
        name="tiny",
        resolutions=(32,),
        stem_channels=8,
        first_block_channels=0,
        stages=(
            StageChoices(channels=16, stride=2, repeats=(1, 2), expands=(3, 6), kernels=(3, 5)),
            StageChoices(channels=24, stride=2, repeats=(1,), expands=(4,), kernels=(3, 5)),
        ),
        head_channels=32,
    ),
    # MCUNet-like for the 320 KB SRAM of an STM32F746.
    "mcunet-f746": SearchSpace(
        name="mcunet-f746",
        resolutions=(48, 64, 80),
        stem_channels=16,
        first_block_channels=8,
        stages=(
            StageChoices(channels=16, stride=2, repeats=(1, 2)),
            StageChoices(channels=24, stride=2, repeats=(1, 2, 3)),
            StageChoices(channels=40, stride=2, repeats=(1, 2, 3)),
            StageChoices(channels=48, stride=1, repeats=(1, 2)),
            StageChoices(channels=96, stride=2, repeats=(1, 2)),
        ),
        head_channels=0,
    ),
}


def get_space(name: str) -> SearchSpace:
    from hil.errors import LabError

    if name not in SPACES:
        raise LabError(f"unknown search space {name!r}: one of {', '.join(SPACES)}")
    return SPACES[name]
