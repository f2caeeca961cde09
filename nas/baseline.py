"""The search's baseline (MCUNet Table 2's scaled MobileNetV2): one uniform architecture, every
block k = 3 and expand 6, every stage at full depth, scaled over the space's (W, R) grid. The best
that fits is the one with the most MACs among the grid points whose network fits the SRAM and flash
budgets (planner plus the board's measured overhead) and, with a latency budget, whose latency
(`latency_of`: measured on the board, or the table's) is within it. It is trained from scratch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from engine.torch_models import TinyMobileNetConfig
from hil.errors import LabError
from nas.arch import Arch, Block
from nas.constraints import Constraints, Figures
from nas.overhead import BoardOverhead
from nas.space import SearchSpace

BASELINE_KERNEL = 3
BASELINE_EXPAND = 6

LatencyOf = Callable[[float, int, TinyMobileNetConfig], float]  # (W, R, network) -> latency in the board's unit


@dataclass(frozen=True)
class Baseline:
    width: float
    resolution: int
    arch: Arch
    figures: Figures  # SRAM and flash predicted; latency as `latency_of` gave it (None without a budget)
    tried: int  # grid points whose latency was asked before this one fitted


def uniform_arch(space: SearchSpace) -> Arch:
    """k = 3 and expand 6 where the stage offers them (else its smallest kernel, its largest
    expand), every stage at its largest depth."""
    stages = []
    for stage in space.stages:
        kernel = BASELINE_KERNEL if BASELINE_KERNEL in stage.kernels else min(stage.kernels)
        expand = BASELINE_EXPAND if BASELINE_EXPAND in stage.expands else max(stage.expands)
        stages.append(tuple(Block(kernel, expand) for _ in range(max(stage.repeats))))
    return Arch(tuple(stages))


def uniform_baseline(space: SearchSpace, overhead: BoardOverhead, sram_bytes: int, flash_bytes: int,
                     latency: float | None = None, latency_of: LatencyOf | None = None,
                     latency_unit: str | None = None) -> Baseline:
    """The uniform network with the most MACs over the grid that fits every budget; a LabError
    naming the smallest figures seen when none does."""
    arch = uniform_arch(space)
    fitting: list[tuple[int, float, int, Figures]] = []
    least_sram = least_flash = None
    for width, resolution in space.grid:
        figures = Constraints(space, width, resolution, overhead, sram_bytes, flash_bytes).figures(arch)
        least_sram = min(least_sram or figures.peak_sram_bytes, figures.peak_sram_bytes)
        least_flash = min(least_flash or figures.flash_bytes, figures.flash_bytes)
        if figures.peak_sram_bytes <= sram_bytes and figures.flash_bytes <= flash_bytes:
            fitting.append((figures.macs, width, resolution, figures))
    if not fitting:
        raise LabError(f"the uniform baseline {arch} fits no (W, R) of {space.name}: the least peak SRAM is "
                       f"{least_sram:,} B (budget {sram_bytes:,} B), the least flash {least_flash:,} B (budget "
                       f"{flash_bytes:,} B)")
    fitting.sort(key=lambda item: (-item[0], -item[1], -item[2]))
    if latency is None:
        _, width, resolution, figures = fitting[0]
        return Baseline(width, resolution, arch, figures, 0)
    if latency_of is None:
        raise LabError("a latency budget needs a way to know the baseline's latency")
    least = None
    for tried, (_, width, resolution, figures) in enumerate(fitting, start=1):
        value = float(latency_of(width, resolution, space.network(arch, width, resolution)))
        least = value if least is None else min(least, value)
        if value <= latency:
            return Baseline(width, resolution, arch, Figures(figures.peak_sram_bytes, figures.flash_bytes,
                                                             figures.macs, value, latency_unit), tried)
    raise LabError(f"the uniform baseline {arch} fits the memory budgets at {len(fitting)} (W, R) of {space.name}, "
                   f"but none within the latency budget {latency:,.0f}: the least is {least:,.0f}")
