"""The constraints every candidate of the search is checked against before it is evaluated, at
one (W, R) of a space: its peak SRAM (the planner's arena, `nas.footprint`, plus the board's
measured overhead, `nas.overhead`) within the SRAM budget, its flash (int8 constants plus the
board's code and harness: with the board's table, each layer's measured code, else the overhead's
code per layer) within the flash budget, and, where a latency budget is given, its
latency predicted by the board's lookup table (`nas.lut`) within it, in the table's unit.

`Constraints.figures` computes an architecture's figures once (they are cached), and `violation`
names the first budget they break, so that a search counts its rejections by reason."""
from __future__ import annotations

import random
import statistics
from dataclasses import asdict, dataclass, field
from functools import cached_property

from nas.arch import Arch, sample_arch
from nas.footprint import footprint, shape_plan
from nas.lut import LatencyTable
from nas.overhead import BoardOverhead
from nas.patching import patch_latency, plan_patches
from nas.space import SearchSpace

REASONS = ("sram", "flash", "latency")


@dataclass(frozen=True)
class Figures:
    """An architecture's predicted figures on the board."""

    peak_sram_bytes: int
    flash_bytes: int
    macs: int
    latency: float | None  # None: no latency table (no latency budget)
    latency_unit: str | None
    patches: str | None = None  # the patch plan (PxQ@N) the network needs to fit; None: whole tensors

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Constraints:
    """The budgets of one search at (`width`, `resolution`) of `space` on a board."""

    space: SearchSpace
    width: float
    resolution: int
    overhead: BoardOverhead
    sram_bytes: int
    flash_bytes: int
    latency: float | None = None  # in the table's unit; None: no latency limit
    table: LatencyTable | None = None  # needed when `latency` is given
    patches: bool = False  # a network that does not fit whole may run its first ops by patches (nas.patching)
    _cache: dict[Arch, Figures] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from nas.space import SpaceError

        if self.latency is not None and self.table is None:
            raise SpaceError("a latency budget needs the board's latency table")

    @cached_property
    def space_name(self) -> str:
        """The name of the space at this (W, R), under which the table keeps its patch cost."""
        return self.space.at(self.width, self.resolution).name

    @property
    def unit(self) -> str | None:
        return self.table.unit if self.table is not None else None

    def figures(self, arch: Arch) -> Figures:
        """Peak SRAM, flash, MACs and (with a table) latency of `arch` at this (W, R), with the
        patch plan it needs when it fits only with one (`patches`); cached."""
        found = self._cache.get(arch)
        if found is None:
            config = self.space.network(arch, self.width, self.resolution)
            shaped = shape_plan(config)
            fp = footprint(config, shaped)
            arena, plan = fp.arena_bytes, None
            if self.patches and arena + self.overhead.sram_bytes > self.sram_bytes:
                plan = plan_patches(config, self.sram_bytes - self.overhead.sram_bytes, shaped=shaped)
                arena = arena if plan is None else plan.arena_bytes
            if self.table is None:
                latency, flash = None, self.overhead.flash_bytes(fp.constant_bytes, fp.ops)
            else:
                from nas.lut import predict_flash
                from nas.measure import predict_checked

                latency = predict_checked(self.table, config)
                flash = predict_flash(self.table, config, fp.constant_bytes)
                if plan is not None:
                    latency += patch_latency(self.table, self.space_name, config, plan)
            if plan is not None:
                flash += self.overhead.patch_code_bytes(plan.patch_ops)
            found = self._cache[arch] = Figures(
                peak_sram_bytes=arena + self.overhead.sram_bytes, flash_bytes=flash, macs=fp.macs,
                latency=latency, latency_unit=self.unit, patches=None if plan is None else str(plan.grid))
        return found

    def violation(self, arch: Arch) -> str | None:
        """The first budget `arch` breaks ("sram", "flash" or "latency"), or None when it fits."""
        f = self.figures(arch)
        if f.peak_sram_bytes > self.sram_bytes:
            return "sram"
        if f.flash_bytes > self.flash_bytes:
            return "flash"
        if self.latency is not None and f.latency is not None and f.latency > self.latency:
            return "latency"
        return None

    def describe(self) -> str:
        text = f"SRAM {self.sram_bytes:,} B{' (patches allowed)' if self.patches else ''}, flash {self.flash_bytes:,} B"
        return text + (f", latency {self.latency:,.0f} {self.unit}" if self.latency is not None else "")


def median_latency(constraints: Constraints, samples: int, seed: int = 0) -> float:
    """The median predicted latency of the networks among `samples` drawn uniformly from the space
    that fit the SRAM and flash budgets (a latency budget that binds: half of them break it)."""
    from nas.space import SpaceError

    if constraints.table is None:
        raise SpaceError("the median latency needs the board's latency table")
    rng = random.Random(f"{seed}:median-latency")
    values = []
    for _ in range(samples):
        arch = sample_arch(constraints.space.stages, rng)
        f = constraints.figures(arch)
        if f.peak_sram_bytes <= constraints.sram_bytes and f.flash_bytes <= constraints.flash_bytes:
            values.append(f.latency)
    if not values:
        raise SpaceError(f"none of {samples} sampled networks of {constraints.space.name} at W={constraints.width:g}, "
                         f"R={constraints.resolution} fits SRAM {constraints.sram_bytes:,} B and flash "
                         f"{constraints.flash_bytes:,} B; no median latency to take")
    return float(statistics.median(values))
