"""An architecture of a search space: per stage its depth, and per block of it a kernel and an
expand ratio. The one notion of "a network of the space" that sampling (`SearchSpace.sample`),
the supernet (`nas/supernet.py`) and a later accuracy predictor share.

`str(arch)` reads stage by stage, blocks as kKeE (`k5e4` = kernel 5, expand 4), stages apart by
`|`: `k3e4-k5e6 | k7e3-k3e3-k5e4`; `Arch.parse` reads it back. `encode` is a flat 0/1 vector:
per stage, per block slot up to the stage's largest depth, a one-hot kernel then a one-hot expand
(all zero for a block the depth leaves out)."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from hil.errors import LabError

if TYPE_CHECKING:
    from nas.space import StageChoices


class ArchError(LabError):
    """An architecture that is malformed or not of the given space."""


@dataclass(frozen=True)
class Block:
    kernel: int
    expand: int

    def __str__(self) -> str:
        return f"k{self.kernel}e{self.expand}"


@dataclass(frozen=True)
class Arch:
    """`stages[i]` holds the blocks stage i keeps (its depth is their count)."""

    stages: tuple[tuple[Block, ...], ...]

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.stages)

    def __str__(self) -> str:
        return " | ".join("-".join(str(b) for b in stage) for stage in self.stages)

    @classmethod
    def parse(cls, text: str) -> Arch:
        """The architecture `str(arch)` wrote."""
        stages = []
        for part in text.split("|"):
            blocks = []
            for item in part.strip().split("-"):
                kernel, sep, expand = item.strip().lstrip("k").partition("e")
                if not (item.strip().startswith("k") and sep and kernel.isdigit() and expand.isdigit()):
                    raise ArchError(f"architecture {text!r}: block {item.strip()!r} is not kKeE (such as k5e4)")
                blocks.append(Block(int(kernel), int(expand)))
            stages.append(tuple(blocks))
        return cls(tuple(stages))

    def check(self, choices: Sequence[StageChoices]) -> None:
        """Refuse an architecture that the stages' choices do not allow, naming the stage and block."""
        if len(self.stages) != len(choices):
            raise ArchError(f"architecture {self}: {len(self.stages)} stages, the space has {len(choices)}")
        for i, (blocks, stage) in enumerate(zip(self.stages, choices)):
            if len(blocks) not in stage.repeats:
                raise ArchError(f"architecture {self}: stage {i} depth {len(blocks)} is not one of {list(stage.repeats)}")
            for j, block in enumerate(blocks):
                if block.kernel not in stage.kernels or block.expand not in stage.expands:
                    raise ArchError(f"architecture {self}: stage {i} block {j} {block} is not of kernels "
                                    f"{list(stage.kernels)} and expands {list(stage.expands)}")

    def encode(self, choices: Sequence[StageChoices]) -> list[float]:
        """The flat 0/1 vector of the module docstring, for an accuracy predictor."""
        self.check(choices)
        vector: list[float] = []
        for blocks, stage in zip(self.stages, choices):
            for slot in range(max(stage.repeats)):
                block = blocks[slot] if slot < len(blocks) else None
                vector += [float(block is not None and block.kernel == k) for k in stage.kernels]
                vector += [float(block is not None and block.expand == e) for e in stage.expands]
        return vector


def sample_arch(choices: Sequence[StageChoices], rng: random.Random) -> Arch:
    """A random architecture: each stage draws its depth, then each block its expand and kernel."""
    stages = []
    for stage in choices:
        depth = rng.choice(stage.repeats)
        blocks = []
        for _ in range(depth):
            expand = rng.choice(stage.expands)
            blocks.append(Block(kernel=rng.choice(stage.kernels), expand=expand))
        stages.append(tuple(blocks))
    return Arch(tuple(stages))


def largest_arch(choices: Sequence[StageChoices]) -> Arch:
    """Every stage at its deepest, every block at its largest kernel and expand ratio."""
    return Arch(tuple(tuple(Block(max(s.kernels), max(s.expands)) for _ in range(max(s.repeats))) for s in choices))


def smallest_arch(choices: Sequence[StageChoices]) -> Arch:
    """Every stage at its shallowest, every block at its smallest kernel and expand ratio."""
    return Arch(tuple(tuple(Block(min(s.kernels), min(s.expands)) for _ in range(min(s.repeats))) for s in choices))
