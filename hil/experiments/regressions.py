"""Regressions in the results store: a series' newest run against the runs before it.

A series is one (model, model sha256, board, backend, engine, metric, unit): like with like only
("tinylab" and "tinylab-portable" are separate series, and a changed model file starts a new
one). Each run (run_id) gives one value per series, the median of its rows. The rules:

- instruction counts (QEMU) and sizes in bytes are deterministic: any increase is a regression;
- cycles (hardware) vary from run to run: a regression is an increase over the baseline beyond
  the spread (max - min) of the earlier runs in the window, or beyond `cycles_tolerance` (a
  fraction of the baseline) when there is only one earlier run;
- `matches_reference` regresses when it goes from 1 to 0;
- other units (ratios, percentages, accuracy) and the latency table's predictions are not judged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hil.errors import StoreError

if TYPE_CHECKING:
    import pandas

SERIES_KEY = ("model", "model_sha256", "board", "backend", "engine", "metric", "unit")
NEEDED_COLUMNS = SERIES_KEY + ("value", "git_commit", "run_id", "timestamp")
DETERMINISTIC_UNITS = frozenset({"instructions", "bytes"})
NOISY_UNITS = frozenset({"cycles"})
CORRECTNESS_METRICS = frozenset({"matches_reference"})
# Predictions and prediction errors (`tinylab lut`) are not measurements of the engine.
UNJUDGED_METRICS = frozenset({"latency_predicted"})
UNJUDGED_PREFIXES = ("latency_rmse.",)
CYCLES_TOLERANCE = 0.02  # 2 % of the baseline, when a single earlier run gives no spread
WINDOW = 5  # earlier runs that make the baseline and the spread for cycles


@dataclass(frozen=True)
class Regression:
    """A series whose run `new_run_id` is worse than the run(s) before it."""

    model: str
    board: str
    backend: str
    engine: str
    metric: str
    unit: str
    baseline: float
    new: float
    baseline_commit: str
    baseline_run_id: str
    new_commit: str
    new_run_id: str
    timestamp: str  # of the new run, ISO-8601 UTC
    tolerance: float = 0.0  # the increase allowed (the spread, for cycles)
    rule: str = ""  # which rule flagged it

    @property
    def change(self) -> float:
        return self.new - self.baseline

    @property
    def relative_change(self) -> float | None:
        return self.change / self.baseline if self.baseline else None

    def describe(self) -> str:
        """One line: model, board, metric and both values."""
        if self.metric in CORRECTNESS_METRICS:
            what = "no longer matches the reference (1 → 0)"
        else:
            relative = self.relative_change
            percent = f", {relative:+.2%}" if relative is not None else ""
            what = (f"{_number(self.baseline)} → {_number(self.new)} {self.unit} "
                    f"({self.change:+,.0f}{percent})")
            if self.rule == "beyond spread":
                what += f", beyond the run-to-run spread of {_number(self.tolerance)}"
            elif self.rule == "beyond tolerance":
                what += f", beyond the {_number(self.tolerance)} {self.unit} tolerance"
        return (f"{self.model} on {self.board} ({self.backend}, {self.engine}): {self.metric} {what}; "
                f"commit {_short(self.baseline_commit)} → {_short(self.new_commit)}, "
                f"run {self.new_run_id}")


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def _short(commit: str) -> str:
    sha, plus, rest = commit.partition("+")
    return sha[:10] + plus + rest


def judged(metric: str, unit: str) -> bool:
    """Whether a series of this metric and unit has a regression rule."""
    if metric in UNJUDGED_METRICS or metric.startswith(UNJUDGED_PREFIXES):
        return False
    return metric in CORRECTNESS_METRICS or unit in DETERMINISTIC_UNITS or unit in NOISY_UNITS


def run_values(frame: pandas.DataFrame) -> pandas.DataFrame:
    """One row per series and run: the median value, the run's commit and latest timestamp,
    oldest run first within each series."""
    missing = [c for c in NEEDED_COLUMNS if c not in frame.columns]
    if missing:
        raise StoreError(f"the measurements lack the results store's columns {', '.join(missing)}")
    runs = (frame.groupby([*SERIES_KEY, "run_id"], sort=False, dropna=False)
            .agg(value=("value", "median"), git_commit=("git_commit", "last"),
                 timestamp=("timestamp", "max"))
            .reset_index())
    return runs.sort_values([*SERIES_KEY, "timestamp", "run_id"], kind="mergesort")


def find_regressions(frame: pandas.DataFrame, *, latest_only: bool = True,
                     cycles_tolerance: float = CYCLES_TOLERANCE,
                     window: int = WINDOW) -> list[Regression]:
    """The regressions in `frame` (rows of the results store, e.g. `ResultsStore.dataframe()`):
    each series' newest run against the earlier ones; every run of the history against the runs
    before it when `latest_only` is False (for marking trends)."""
    if frame.empty:
        return []
    found: list[Regression] = []
    for key, runs in run_values(frame).groupby(list(SERIES_KEY), sort=True, dropna=False):
        record = dict(zip(SERIES_KEY, key))
        if not judged(record["metric"], record["unit"]) or len(runs) < 2:
            continue
        rows = list(runs.itertuples(index=False))
        positions = [len(rows) - 1] if latest_only else range(1, len(rows))
        for position in positions:
            regression = _judge(record, rows[max(0, position - window):position], rows[position],
                                cycles_tolerance)
            if regression is not None:
                found.append(regression)
    found.sort(key=lambda r: (r.timestamp, r.model, r.board, r.engine, r.metric))
    return found


def _judge(series: dict[str, str], earlier: list, new, cycles_tolerance: float) -> Regression | None:
    previous = earlier[-1]
    metric, unit = series["metric"], series["unit"]
    if metric in CORRECTNESS_METRICS:
        if previous.value >= 0.5 > new.value:
            return _regression(series, previous, new, 0.0, "1 → 0")
        return None
    if unit in DETERMINISTIC_UNITS:
        if new.value > previous.value:
            return _regression(series, previous, new, 0.0, "any increase")
        return None
    # cycles: against the median earlier run, beyond the spread of the earlier runs
    values = sorted(earlier, key=lambda r: r.value)
    baseline = values[(len(values) - 1) // 2]
    if len(earlier) >= 2:
        tolerance, rule = float(values[-1].value - values[0].value), "beyond spread"
    else:
        tolerance, rule = cycles_tolerance * abs(float(baseline.value)), "beyond tolerance"
    if new.value - baseline.value > tolerance:
        return _regression(series, baseline, new, tolerance, rule)
    return None


def _regression(series: dict[str, str], baseline, new, tolerance: float, rule: str) -> Regression:
    return Regression(
        model=series["model"], board=series["board"], backend=series["backend"], engine=series["engine"],
        metric=series["metric"], unit=series["unit"], baseline=float(baseline.value), new=float(new.value),
        baseline_commit=str(baseline.git_commit), baseline_run_id=str(baseline.run_id),
        new_commit=str(new.git_commit), new_run_id=str(new.run_id), timestamp=_iso(new.timestamp),
        tolerance=tolerance, rule=rule)


def _iso(timestamp: object) -> str:
    isoformat = getattr(timestamp, "isoformat", None)
    return isoformat() if callable(isoformat) else str(timestamp)
