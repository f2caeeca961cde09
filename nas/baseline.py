"""The search's baseline (MCUNet Table 2's scaled MobileNetV2): one uniform architecture, every
block k = 3 and expand 6, every stage at full depth, scaled over the space's (W, R) grid. The best
that fits is the one with the most MACs among the grid points whose network, built within the
flash budget and run on the board, fits the SRAM budget and the latency budget. It is trained from
scratch, for as many epochs as the supernet."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from engine.torch_models import TinyMobileNetConfig
from hil.errors import LabError
from nas.arch import Arch, Block
from nas.footprint import footprint
from nas.overhead import BoardOverhead
from nas.space import SearchSpace

BASELINE_KERNEL = 3
BASELINE_EXPAND = 6



@dataclass(frozen=True)
class Measured:
    """A network as built within the flash budget and run on the board."""

    latency: float
    latency_unit: str
    peak_sram_bytes: int
    flash_bytes: int


MeasureOf = Callable[[float, int, TinyMobileNetConfig], "Measured | None"]  # None: its image exceeds the flash budget


@dataclass(frozen=True)
class Baseline:
    width: float
    resolution: int
    arch: Arch
    macs: int
    measured: Measured
    tried: list[str]  # the grid points measured before it and why each was passed over


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
                     latency: float | None, measure_of: MeasureOf, max_tries: int = 8) -> Baseline:
    """The uniform network with the most MACs over the grid that fits every budget as measured:
    the grid points whose predicted peak SRAM fits and whose int8 constants alone fit the flash
    are measured in order of MACs until one fits (at most `max_tries`); a LabError names what was
    seen when none does."""
    arch = uniform_arch(space)
    candidates = []
    least_sram = None
    for width, resolution in space.grid:
        network = space.network(arch, width, resolution)
        fp = footprint(network)
        peak = fp.arena_bytes + overhead.sram_bytes
        least_sram = peak if least_sram is None else min(least_sram, peak)
        if peak <= sram_bytes and fp.constant_bytes < flash_bytes:
            candidates.append((fp.macs, width, resolution, network))
    if not candidates:
        raise LabError(f"the uniform baseline {arch} fits no (W, R) of {space.name}: the least predicted peak SRAM "
                       f"is {least_sram:,} B (budget {sram_bytes:,} B)")
    candidates.sort(key=lambda item: (-item[0], -item[1], -item[2]))
    tried: list[str] = []
    for macs, width, resolution, network in candidates[:max_tries]:
        where = f"W={width:g}, R={resolution}"
        found = measure_of(width, resolution, network)
        if found is None:
            tried.append(f"{where}: its image exceeds {flash_bytes:,} B of flash")
        elif found.peak_sram_bytes > sram_bytes:
            tried.append(f"{where}: peak SRAM {found.peak_sram_bytes:,} B measured")
        elif latency is not None and found.latency > latency:
            tried.append(f"{where}: latency {found.latency:,.0f} {found.latency_unit} measured")
        else:
            return Baseline(width, resolution, arch, macs, found, tried)
    raise LabError(f"the uniform baseline {arch} fits no (W, R) of {space.name} as measured: " + "; ".join(tried))
