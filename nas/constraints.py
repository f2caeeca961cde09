"""The constraints every candidate of the search is checked against before it is evaluated, at
one (W, R) of a space: its peak SRAM (the planner's arena, `nas.footprint`, plus the board's
measured overhead, `nas.overhead`) within the SRAM budget, its flash (int8 constants plus the
board's code and harness) within the flash budget, and, where a latency budget is given, its
latency predicted by the board's lookup table (`nas.lut`) within it, in the table's unit.

`Constraints.figures` computes an architecture's figures once (they are cached), and `violation`
names the first budget they break, so that a search counts its rejections by reason."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from nas.arch import Arch
from nas.footprint import footprint
from nas.lut import LatencyTable
from nas.overhead import BoardOverhead
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
    _cache: dict[Arch, Figures] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from nas.space import SpaceError

        if self.latency is not None and self.table is None:
            raise SpaceError("a latency budget needs the board's latency table")

    @property
    def unit(self) -> str | None:
        return self.table.unit if self.table is not None else None

    def figures(self, arch: Arch) -> Figures:
        """Peak SRAM, flash, MACs and (with a table) latency of `arch` at this (W, R); cached."""
        found = self._cache.get(arch)
        if found is None:
            config = self.space.network(arch, self.width, self.resolution)
            fp = footprint(config)
            latency = None
            if self.table is not None:
                from nas.measure import predict_checked

                latency = predict_checked(self.table, config)
            found = self._cache[arch] = Figures(
                peak_sram_bytes=fp.arena_bytes + self.overhead.sram_bytes,
                flash_bytes=self.overhead.flash_bytes(fp.constant_bytes, fp.ops), macs=fp.macs,
                latency=latency, latency_unit=self.unit)
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
        text = f"SRAM {self.sram_bytes:,} B, flash {self.flash_bytes:,} B"
        return text + (f", latency {self.latency:,.0f} {self.unit}" if self.latency is not None else "")
