"""The report's plain data: what `hil.report.report` collects from the store and what
`hil.report.report_figures` and the page's template draw. No pandas and no matplotlib here."""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.compiler import ENGINE_NAME, PATCHES_ENGINE_NAME
from hil.firmware_build.planlayout import PlanLayout
from hil.experiments.regressions import Regression

OURS = ENGINE_NAME
PATCHED = PATCHES_ENGINE_NAME


@dataclass(frozen=True)
class Quantity:
    """A row of the comparison: a label and, per engine, the metrics that stand for it."""

    name: str
    label: str
    metrics: tuple[str, ...]  # for our engine and any engine not named below
    by_engine: dict[str, tuple[str, ...]] = field(default_factory=dict)
    needs_baseline: bool = False  # shown only when a baseline has it (else it repeats another row)

    def metrics_for(self, engine: str) -> tuple[str, ...]:
        return self.by_engine.get(engine, self.metrics)


@dataclass(frozen=True)
class Source:
    """Where a figure's or a table's numbers came from."""

    board: str
    backend: str
    engines: tuple[str, ...]  # "tinylab 0.2"
    commits: tuple[str, ...]
    first: str  # the oldest and newest measurement, "YYYY-MM-DD HH:MM UTC"
    last: str
    runs: int

    def text(self) -> str:
        dates = self.first if self.first == self.last else f"{self.first} … {self.last}"
        commits = ", ".join(self.commits[:3]) + (f" (+{len(self.commits) - 3} more)" if len(self.commits) > 3 else "")
        return (f"board {self.board} · backend {self.backend} · engine {', '.join(self.engines)} · "
                f"commit {commits} · {dates} · {self.runs} run{'s' if self.runs != 1 else ''}")


@dataclass(frozen=True)
class StoreRow:
    """One measurement as the report cites it: the columns of `tinylab results`, plus its run."""

    timestamp: str
    model: str
    board: str
    backend: str
    metric: str
    value: str
    unit: str
    engine: str
    commit: str
    run_id: str
    raw_value: float

    @property
    def cells(self) -> tuple[str, ...]:
        return (self.timestamp, self.model, self.board, self.backend, self.metric, self.value, self.unit,
                self.engine, self.commit)


@dataclass(frozen=True)
class Cell:
    """The measurement in one cell of a comparison table."""

    engine: str
    metric: str
    value: float
    unit: str
    run_id: str
    row: StoreRow
    # An estimate (unit estimated_cycles): the model that made it, its error bar, and its milliseconds
    # at the real board's clock, never shown without the other two.
    cycle_model: str = ""
    error_bar: str = ""
    estimated_ms: float | None = None

    def estimate_note(self) -> str:
        """The model and error bar of an estimate (with its milliseconds); "" for a measurement."""
        if not self.cycle_model:
            return ""
        ms = f": {self.estimated_ms:,.3g} ms estimated" if self.estimated_ms is not None else ""
        return f"estimated by {self.cycle_model}, error {self.error_bar or 'not validated'}{ms}"

    def shown(self) -> str:
        if self.unit == "bool":
            return "yes" if self.value else "NO"
        return f"{self.value:,.0f}" if float(self.value).is_integer() else f"{self.value:,.4g}"


@dataclass(frozen=True)
class ComparisonRow:
    quantity: Quantity
    unit: str
    ours: Cell | None
    baselines: dict[str, Cell | None]
    ratios: dict[str, float | None]  # ours / baseline
    derived: str = ""  # e.g. milliseconds from cycles and the board's clock


@dataclass
class ComparisonTable:
    """Our engine against each baseline for one model on one board, latest run of each."""

    model: str
    board: str
    backend: str
    baselines: list[str]
    notes: dict[str, str]  # engine -> why its column is empty
    rows: list[ComparisonRow]
    source: Source
    used: list[StoreRow]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.board, self.backend)

    @property
    def measured_baselines(self) -> list[str]:
        return [e for e in self.baselines if e not in self.notes]


@dataclass
class PlanPicture:
    """The memory plan stored with our engine's newest `arena_planned` row for a model and board,
    with the SRAM the rest of that run measured."""

    model: str
    board: str
    backend: str
    layout: PlanLayout | None
    static_ram: int | None
    stack_high_water: int | None
    source: Source
    row: StoreRow
    missing: str = ""  # why there is no layout
    patches: dict | None = None  # the patch plan the run used (PatchChoice.to_json), where it used one

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.board, self.backend)


@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    timestamp: str
    commit: str
    engine_version: str
    value: float
    regression: Regression | None = None


@dataclass
class TrendSeries:
    engine: str
    metric: str
    unit: str
    points: list[TrendPoint]


@dataclass
class Trend:
    """The history of one model on one board: per metric, a line per engine."""

    model: str
    board: str
    backend: str
    runs: list[tuple[str, str, str]]  # (run_id, "YYYY-MM-DD HH:MM", commit), oldest first
    series: list[TrendSeries]
    source: Source

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.board, self.backend)

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(s.metric for s in self.series))

    @property
    def regressions(self) -> list[Regression]:
        return [p.regression for s in self.series for p in s.points if p.regression is not None]
