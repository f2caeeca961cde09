"""The lab's report: the results store read into pandas and turned into plain data for one static
HTML page: per model and board, our engine against each baseline (latest run of each, with
ratios), the memory plan, trends with regressions, and where every figure came from; per NAS
search (`tinylab nas run`), accuracy against latency and peak SRAM with the Pareto fronts and the
networks it deployed (hil.report.search_data).

`make_report()` does it all: `load_frame()` reads the store, `collect_report()` builds the data,
`write_report()` draws the figures (hil.report.report_figures) and renders
hil/report/templates/report.html.j2."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.cycles.estimated import ESTIMATED_METRIC, ESTIMATED_UNIT
from hil.firmware_build.planlayout import PlanLayout
from hil.errors import LabError
from hil.experiments.regressions import Regression, find_regressions
from hil.experiments.tflm_columns import UNAVAILABLE_METRIC
from hil.report.report_data import (OURS, PATCHED, Cell, ComparisonRow, ComparisonTable, PlanPicture, Quantity, Source, StoreRow,
                                    Trend, TrendPoint, TrendSeries)
from hil.report.search_data import (CANDIDATE_METRIC, ROLES, Budget, Candidate, DeployedNetwork, SearchRun,
                                    pareto_front)
from hil.resources import report_templates_dir
from hil.store.location import resolve_store_path
from hil.store.provenance import utc_now
from hil.store.results import open_store
from hil.store.results_format import TABLE_COLUMNS, commit_text, value_text
from hil.targets.boards import load_board

if TYPE_CHECKING:
    import pandas

TEMPLATES_DIR = report_templates_dir()
TEMPLATE = "report.html.j2"
FIGURE_FORMATS = ("png", "svg")
FIGURE_KINDS = ("-comparison", "-plan", "-patch-plan", "-trend", "-search")  # file names: <section>-<kind>.<format>

HOST_BACKEND = "host"
# Baseline columns, in this order, always shown (empty with a reason when not measured); any other
# engine found next to ours is appended.
BASELINES = ("tinylab-portable", "tflm", "tflm-cmsis-nn", "tflite-micro")
BASELINE_LABELS = {
    "tinylab-portable": "our portable kernels",
    "tflm": "TFLM reference on target",
    "tflm-cmsis-nn": "TFLM + CMSIS-NN on target",
    "tflite-micro": "TFLM arena (host)",
}
NOT_MEASURED = {
    "tinylab-portable": "not measured: run `tinylab bench --compare`",
    "tflm": "not measured: no TFLM library given (--tflm-dir or TINYLAB_TFLM_DIR)",
    "tflm-cmsis-nn": "not measured: no TFLM library with CMSIS-NN given (--tflm-dir or TINYLAB_TFLM_DIR)",
    "tflite-micro": "not measured: run `tinylab bench --compare` (TFLM's arena from the tflite-micro package)",
}
RERUN_HINTS = {
    "tinylab-portable": "run `tinylab bench --compare` here",
    "tflite-micro": "run `tinylab bench --compare` here",
    "tflm": "bench it here with a TFLM library (--tflm-dir or TINYLAB_TFLM_DIR)",
    "tflm-cmsis-nn": "bench it here with a TFLM library with CMSIS-NN (--tflm-dir or TINYLAB_TFLM_DIR)",
}
# A latency table's figures; those of a table in estimated cycles (nas.lutunit.table_metric) are
# prefixed "estimated_".
LUT_METRICS = frozenset({metric for base in ("layer_latency", "overhead_latency", "latency_predicted", "patch_op_latency",
                                             "patch_base_latency") for metric in (base, f"estimated_{base}")})
TREND_METRICS = ("latency", "mlperf_latency", "peak_sram", "flash", "arena_planned", "stack_high_water")


class ReportError(LabError):
    """The report cannot be made: no store, nothing selected, or its folder cannot be written."""


QUANTITIES = (
    Quantity("latency", "latency", ("latency",), {"tflite-micro": ()}),
    # Cycles estimated from the profile of an emulated run (--cycle-model): their own row, never
    # merged with or compared against a measured latency.
    Quantity("estimated_latency", "estimated latency", (ESTIMATED_METRIC,), {"tflite-micro": ()}),
    Quantity("peak_sram", "peak SRAM", ("peak_sram",), {"tflite-micro": ()}),
    Quantity("flash", "flash", ("flash",), {"tflite-micro": ()}),
    Quantity("arena", "arena", ("arena_planned",),
             {"tflite-micro": ("tflm_arena",), "tflm": ("arena_planned", "tflm_arena", "arena_used"),
              "tflm-cmsis-nn": ("arena_planned", "tflm_arena", "arena_used")}),
    Quantity("arena_activations", "arena, activations only", ("arena_planned",),
             {"tflite-micro": ("tflm_arena_activations",), "tinylab-portable": (),
              "tflm": ("tflm_arena_activations",), "tflm-cmsis-nn": ("tflm_arena_activations",)},
             needs_baseline=True),
    Quantity("matches_reference", "bit-exact with TFLM", ("matches_reference",), {"tflite-micro": ()}),
)


# --- provenance ---------------------------------------------------------------------------------


def _minute(timestamp: Any) -> str:
    return f"{timestamp:%Y-%m-%d %H:%M} UTC" if hasattr(timestamp, "strftime") else str(timestamp)[:16]


def source_of(rows: pandas.DataFrame, board: str, backend: str) -> Source:
    ordered = rows.sort_values("timestamp", kind="stable")
    engines = tuple(dict.fromkeys(f"{e} {v}".strip() for e, v in zip(ordered["engine"], ordered["engine_version"])))
    commits = tuple(dict.fromkeys(commit_text(c) for c in reversed(list(ordered["git_commit"]))))
    backends = sorted(set(ordered["backend"]))
    shown_backend = backend if backends == [backend] else " + ".join([backend] + [b for b in backends if b != backend])
    return Source(board=board, backend=shown_backend, engines=engines, commits=commits,
                  first=_minute(ordered["timestamp"].iloc[0]), last=_minute(ordered["timestamp"].iloc[-1]),
                  runs=ordered["run_id"].nunique())


# --- rows as `tinylab results` shows them -------------------------------------------------------


STORE_ROW_COLUMNS = TABLE_COLUMNS


def store_row(row: Any) -> StoreRow:
    """A row of the store's DataFrame (a namedtuple or a Series) as `tinylab results` prints it."""
    timestamp = row.timestamp.isoformat() if hasattr(row.timestamp, "isoformat") else str(row.timestamp)
    return StoreRow(
        timestamp=timestamp[:19].replace("T", " "), model=row.model, board=row.board, backend=row.backend,
        metric=row.metric, value=value_text(float(row.value)), unit=row.unit,
        engine=f"{row.engine} {row.engine_version}".strip(), commit=commit_text(row.git_commit),
        run_id=row.run_id, raw_value=float(row.value))


# --- the comparison table -----------------------------------------------------------------------


def latest_rows(frame: pandas.DataFrame) -> pandas.DataFrame:
    """The newest row of each (model, board, backend, engine, metric)."""
    ordered = frame.sort_values(["timestamp", "run_id"], kind="mergesort")
    return ordered.groupby(["model", "board", "backend", "engine", "metric"], sort=False).tail(1)


def _cell(latest: pandas.DataFrame, engine: str, metrics: tuple[str, ...]) -> Cell | None:
    for metric in metrics:
        found = latest[(latest["engine"] == engine) & (latest["metric"] == metric)]
        if len(found):
            row = next(found.itertuples(index=False))
            return Cell(engine, metric, float(row.value), row.unit, row.run_id, store_row(row),
                        **_estimate_of(row))
    return None


def _estimate_of(row: Any) -> dict[str, Any]:
    """A row of estimated cycles: its model, error bar and estimated milliseconds (from its extra)."""
    if row.unit != ESTIMATED_UNIT:
        return {}
    extra = _extra(row.extra)
    return {"cycle_model": str(extra.get("cycle_model") or "unnamed model"), "error_bar": str(extra.get("error_bar", "")),
            "estimated_ms": _number_or_none(extra.get("estimated_ms"))}


def _ratio(ours: Cell | None, baseline: Cell | None) -> float | None:
    if ours is None or baseline is None or ours.unit != baseline.unit or ours.unit == "bool":
        return None
    if ours.cycle_model != baseline.cycle_model:  # two models' estimates are not compared
        return None
    return ours.value / baseline.value if baseline.value else None


def _milliseconds(cell: Cell | None, board: str) -> str:
    """Milliseconds, derived from cycles and the board's clock only."""
    if cell is None or cell.unit != "cycles":
        return ""
    try:
        clock = load_board(board).clock_hz
    except LabError:
        return ""
    return f"{cell.value / clock * 1e3:,.3g} ms at {clock / 1e6:g} MHz"


def comparison_tables(frame: pandas.DataFrame) -> list[ComparisonTable]:
    """One table per (model, board, target backend) that has rows of our engine."""
    latest = latest_rows(frame)
    engines_anywhere = set(frame["engine"])
    tables = []
    targets = latest[(latest["backend"] != HOST_BACKEND) & (latest["engine"] == OURS)]
    for (model, board, backend), _ in targets.groupby(["model", "board", "backend"], sort=True):
        here = latest[(latest["model"] == model) & (latest["board"] == board)
                      & latest["backend"].isin([backend, HOST_BACKEND])]
        others = [e for e in sorted(set(here["engine"])) if e != OURS and e not in BASELINES]
        baselines = list(BASELINES) + others
        rows, used = [], {}
        for quantity in QUANTITIES:
            ours = _cell(here, OURS, quantity.metrics_for(OURS))
            cells = {e: _cell(here, e, quantity.metrics_for(e)) for e in baselines}
            if not any(cells.values()) and (ours is None or quantity.needs_baseline):
                continue
            for cell in [ours, *cells.values()]:
                if cell is not None:
                    used[(cell.engine, cell.metric, cell.run_id)] = cell.row
            rows.append(ComparisonRow(
                quantity=quantity, unit=(ours or next(c for c in cells.values() if c)).unit, ours=ours,
                baselines=cells, ratios={e: _ratio(ours, c) for e, c in cells.items()},
                derived=_milliseconds(ours, board)))
        notes = {}
        for engine in baselines:
            if any(row.baselines[engine] for row in rows):
                continue
            stored = _stored_reason(here, engine)
            if stored:
                notes[engine] = f"not measured: {stored}"
            elif engine not in engines_anywhere:
                notes[engine] = NOT_MEASURED.get(engine, "not measured")
            else:
                hint = RERUN_HINTS.get(engine)
                notes[engine] = (f"not measured for {model} on {board} in the selected rows"
                                 + (f" (only elsewhere); {hint}" if hint else ""))
        if not rows:
            continue
        cited = list(used.values())
        tables.append(ComparisonTable(
            model=model, board=board, backend=backend, baselines=baselines, notes=notes, rows=rows,
            source=source_of(_rows_of(here, cited), board, backend),
            used=sorted(cited, key=lambda r: (r.timestamp, r.engine, r.metric), reverse=True)))
    return tables


def _stored_reason(latest: pandas.DataFrame, engine: str) -> str:
    """Why the newest run left `engine`'s column empty, as it stored it (metric `unavailable`,
    hil.experiments.tflm_columns), or ""."""
    found = latest[(latest["engine"] == engine) & (latest["metric"] == UNAVAILABLE_METRIC)]
    if not len(found):
        return ""
    try:
        return str(json.loads(found.sort_values("timestamp").iloc[-1]["extra"] or "{}").get("reason", ""))
    except ValueError:
        return ""


def _rows_of(frame: pandas.DataFrame, cited: list[StoreRow]) -> pandas.DataFrame:
    keys = {(r.run_id, r.metric, r.backend) for r in cited}
    mask = [(r, m, b) in keys for r, m, b in zip(frame["run_id"], frame["metric"], frame["backend"])]
    return frame[mask]


# --- the memory plan ----------------------------------------------------------------------------


def plan_pictures(frame: pandas.DataFrame, engine: str = OURS) -> list[PlanPicture]:
    """The memory plan of `engine`'s newest run of each model and board: ours, or ours with
    patches (PATCHED)."""
    latest = latest_rows(frame)
    planned = latest[(latest["engine"] == engine) & (latest["metric"] == "arena_planned")
                     & (latest["backend"] != HOST_BACKEND)]
    pictures = []
    for row in planned.sort_values(["model", "board", "backend"]).itertuples(index=False):
        layout, missing = None, ""
        try:
            extra = json.loads(row.extra or "{}")
        except ValueError:
            extra = {}
        stored = extra.get("plan")
        if stored is None:
            missing = "no plan stored with this run (measured before runs stored their memory plan)"
        else:
            try:
                layout = PlanLayout.from_json(stored)
            except ValueError as error:
                missing = f"the stored plan cannot be read: {error}"
        run = frame[frame["run_id"] == row.run_id]
        run = run[(run["engine"] == engine) & (run["model"] == row.model) & (run["board"] == row.board)]

        def measured(metric: str) -> int | None:
            values = run[run["metric"] == metric]["value"]
            return int(values.iloc[-1]) if len(values) else None

        pictures.append(PlanPicture(
            model=row.model, board=row.board, backend=row.backend, layout=layout,
            static_ram=measured("static_ram"), stack_high_water=measured("stack_high_water"),
            source=source_of(run, row.board, row.backend), row=store_row(row), missing=missing,
            patches=extra.get("patches")))
    return pictures


# --- trends -------------------------------------------------------------------------------------


def trends(frame: pandas.DataFrame, history: list[Regression]) -> list[Trend]:
    marked = {(r.model, r.board, r.backend, r.engine, r.metric, r.unit, r.new_run_id): r for r in history}
    found = []
    selected = frame[frame["metric"].isin(TREND_METRICS) & (frame["backend"] != HOST_BACKEND)]
    for (model, board, backend), rows in selected.groupby(["model", "board", "backend"], sort=True):
        if OURS not in set(rows["engine"]):
            continue
        run_times = rows.groupby("run_id").agg(timestamp=("timestamp", "max"), commit=("git_commit", "last"))
        run_times = run_times.sort_values("timestamp")
        runs = [(run_id, _minute(t)[:16], commit_text(c)) for run_id, t, c in
                zip(run_times.index, run_times["timestamp"], run_times["commit"])]
        series = []
        engines = [OURS] + sorted(e for e in set(rows["engine"]) if e != OURS)
        for metric in TREND_METRICS:
            for engine in engines:
                these = rows[(rows["metric"] == metric) & (rows["engine"] == engine)]
                for unit, by_unit in these.groupby("unit", sort=True):
                    per_run = (by_unit.groupby("run_id")
                               .agg(value=("value", "median"), timestamp=("timestamp", "max"),
                                    commit=("git_commit", "last"), version=("engine_version", "last"))
                               .sort_values("timestamp"))
                    points = [TrendPoint(run_id, _minute(t), commit_text(c), v, float(value),
                                         marked.get((model, board, backend, engine, metric, unit, run_id)))
                              for run_id, value, t, c, v in zip(per_run.index, per_run["value"],
                                                                per_run["timestamp"], per_run["commit"],
                                                                per_run["version"])]
                    series.append(TrendSeries(engine, metric, unit, points))
        if series:
            found.append(Trend(model, board, backend, runs, series, source_of(rows, board, backend)))
    return found


# --- NAS searches -------------------------------------------------------------------------------

SEARCH_CONTEXT = ("dataset", "width", "resolution", "cycle_model")  # what the page names of a search's setting


def search_run_ids(frame: pandas.DataFrame) -> set[str]:
    """Runs of `tinylab nas run`: those that scored architectures (`nas_validation_accuracy`)."""
    return set(frame.loc[frame["metric"] == CANDIDATE_METRIC, "run_id"])


def _extra(text: Any) -> dict[str, Any]:
    try:
        extra = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return extra if isinstance(extra, dict) else {}


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _candidate(row: Any, extra: dict[str, Any]) -> Candidate:
    return Candidate(
        architecture=str(extra.get("architecture", row.model.removeprefix("nas:"))),
        method=str(extra.get("method", "")), accuracy=float(row.value),
        latency=_number_or_none(extra.get("predicted_latency")), latency_unit=extra.get("latency_unit"),
        peak_sram=_number_or_none(extra.get("predicted_peak_sram_bytes")),
        flash=_number_or_none(extra.get("predicted_flash_bytes")))


def _deployed(role: str, architecture: str, model: str, rows: list[tuple[Any, dict[str, Any]]]) -> DeployedNetwork:
    """A deployed network from its rows (oldest first: the newest of each metric counts)."""
    figures = {row.metric: (float(row.value), row.unit) for row, _ in rows}

    def value(metric: str) -> float | None:
        return figures[metric][0] if metric in figures else None

    def flag(metric: str) -> bool | None:
        return bool(figures[metric][0]) if metric in figures else None

    predicted = figures.get("nas_predicted_latency")
    # measured in the prediction's unit: with a table in estimated cycles, the estimate of the run
    estimated = predicted is not None and predicted[1] == ESTIMATED_UNIT
    latency = figures.get(ESTIMATED_METRIC if estimated else "latency")
    return DeployedNetwork(
        role=role, architecture=architecture, model=model,
        int8_accuracy=value("int8_accuracy"), float_accuracy=value("float_accuracy"),
        latency=latency[0] if latency else None, latency_unit=latency[1] if latency else None,
        peak_sram=value("peak_sram"), flash=value("flash"),
        matches_reference=flag("matches_reference"), target_matches_host=flag("target_matches_host"),
        predicted_latency=predicted[0] if predicted else None,
        predicted_latency_unit=predicted[1] if predicted else None,
        predicted_peak_sram=value("nas_predicted_peak_sram"), predicted_flash=value("nas_predicted_flash"),
        run_id=rows[-1][0].run_id)


def _budget(extra: dict[str, Any]) -> Budget:
    budget = extra.get("budget")
    if not isinstance(budget, dict):
        return Budget()
    return Budget(sram_bytes=_number_or_none(budget.get("sram_bytes")),
                  flash_bytes=_number_or_none(budget.get("flash_bytes")),
                  latency=_number_or_none(budget.get("latency")))


def search_runs(frame: pandas.DataFrame) -> list[SearchRun]:
    """Every NAS search among the rows: its candidates, their Pareto fronts (validation accuracy
    against predicted latency and against predicted peak SRAM) and the networks it deployed."""
    searches = []
    for run_id in sorted(search_run_ids(frame)):
        rows = frame[frame["run_id"] == run_id].sort_values("timestamp", kind="mergesort")
        pairs = [(row, _extra(row.extra)) for row in rows.itertuples(index=False)]
        scored = [(row, extra) for row, extra in pairs if row.metric == CANDIDATE_METRIC]
        candidates = [_candidate(row, extra) for row, extra in scored]
        groups: dict[tuple[str, str, str], list[tuple[Any, dict[str, Any]]]] = {}
        for row, extra in pairs:
            if row.metric != CANDIDATE_METRIC and extra.get("role") in ROLES:
                key = (extra["role"], str(extra.get("architecture", "")), row.model)
                groups.setdefault(key, []).append((row, extra))
        deployed = [_deployed(*key, group) for key, group in
                    sorted(groups.items(), key=lambda item: (ROLES.index(item[0][0]), item[0][1], item[0][2]))]
        first_row, first = scored[0]
        context = {name: str(first[name]) for name in SEARCH_CONTEXT if name in first}
        searches.append(SearchRun(
            run_id=run_id, board=first_row.board, backend=first_row.backend, context=context,
            budget=_budget(first), candidates=candidates,
            latency_front=pareto_front(candidates, lambda c: c.latency),
            sram_front=pareto_front(candidates, lambda c: c.peak_sram), deployed=deployed,
            source=source_of(rows, first_row.board, first_row.backend)))
    return searches


# --- the report ---------------------------------------------------------------------------------


@dataclass
class Section:
    """What the page shows for one model on one board."""

    model: str
    board: str
    backend: str
    table: ComparisonTable | None
    plan: PlanPicture | None
    trend: Trend | None
    patch_plan: PlanPicture | None = None  # the plan of the same model run by patches (`--patches`)
    anchor: str = ""  # unique in the page; names the section's figure files too
    figures: dict[str, str] = field(default_factory=dict)  # kind -> relative path of the image

    @property
    def title(self) -> str:
        return f"{self.model} on {self.board} ({self.backend})"


@dataclass
class ReportData:
    store: str
    generated: str
    filters: dict[str, str]
    measurements: int  # rows selected
    sections: list[Section]
    regressions: list[Regression]  # in the newest run of each series
    history: list[Regression]  # every run against the runs before it
    left_out: list[str]  # notes on rows not shown (or shown elsewhere)
    searches: list[SearchRun] = field(default_factory=list)  # NAS searches, each in its own section


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:120] or "figure"


def load_frame(store: str | None = None, *, since: str | datetime | date | None = None,
               board: str | None = None, model: str | None = None) -> tuple[pandas.DataFrame, str]:
    """The selected rows of the store as a DataFrame, and the store's path. The store must exist."""
    path = resolve_store_path(store)
    if not path.exists():
        raise ReportError(f"there is no results store at {path}; run `tinylab bench` first "
                          "(or give --store / $TINYLAB_STORE)")
    with open_store(str(path)) as opened:
        frame = opened.dataframe(board=board, model=model, since=since)
    return frame, str(path)


def lut_runs(frame: pandas.DataFrame) -> set[str]:
    """Runs that measured latency-table keys or validation networks (`tinylab lut`)."""
    return set(frame.loc[frame["metric"].isin(LUT_METRICS), "run_id"])


def collect_report(frame: pandas.DataFrame, *, store: str = "", filters: dict[str, str] | None = None,
                   keep_lut_runs: bool = False) -> ReportData:
    """The report's data from the store's rows."""
    left_out = []
    if not keep_lut_runs:
        lut = lut_runs(frame)
        if lut:
            dropped = frame["run_id"].isin(lut)
            left_out.append(f"{int(dropped.sum())} rows of {len(lut)} latency-table runs (`tinylab lut`) "
                            "are left out; select them with --model")
            frame = frame[~dropped]
    selected = len(frame)
    searches = search_runs(frame)
    if searches:
        dropped = frame["run_id"].isin({s.run_id for s in searches})
        left_out.append(f"{int(dropped.sum())} rows of {len(searches)} NAS search runs (`tinylab nas run`) are "
                        "shown in the NAS search sections below, not among the models")
        frame = frame[~dropped]
    history = find_regressions(frame, latest_only=False)
    latest = find_regressions(frame)
    tables = {t.key: t for t in comparison_tables(frame)}
    plans = {p.key: p for p in plan_pictures(frame)}
    patch_plans = {p.key: p for p in plan_pictures(frame, PATCHED)}
    trend_list = {t.key: t for t in trends(frame, history)}
    keys = sorted(set(tables) | set(plans) | set(trend_list))
    sections, anchors = [], set()
    for key in keys:
        anchor = base = slug("-".join(key))
        while anchor in anchors:  # distinct keys that slug alike
            anchor = f"{base}-{len(anchors)}"
        anchors.add(anchor)
        sections.append(Section(*key, table=tables.get(key), plan=plans.get(key), trend=trend_list.get(key),
                                anchor=anchor, patch_plan=patch_plans.get(key)))
    for search in searches:
        anchor = base = slug(f"search-{search.run_id}")
        while anchor in anchors:
            anchor = f"{base}-{len(anchors)}"
        anchors.add(anchor)
        search.anchor = anchor
    return ReportData(store=store, generated=_minute(_now()), filters=filters or {},
                      measurements=selected, sections=sections, regressions=latest, history=history,
                      left_out=left_out, searches=searches)


def _now() -> datetime:
    return datetime.fromisoformat(utc_now())


@dataclass
class WrittenReport:
    index: Path
    figures: list[Path]
    data: ReportData


def write_report(data: ReportData, out_dir: Path, *, image_format: str = "png") -> WrittenReport:
    """Draw the figures into `out_dir`/figures and write `out_dir`/index.html."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    from hil.report import report_figures

    if image_format not in FIGURE_FORMATS:
        raise ReportError(f"figure format {image_format!r}: one of {', '.join(FIGURE_FORMATS)}")
    out_dir = Path(out_dir)
    figures_dir = out_dir / "figures"
    try:
        figures_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportError(f"cannot create {figures_dir}: {error.strerror or error}") from None
    for stale in figures_dir.glob("*-*.*"):  # figures of an earlier report in the same folder
        if stale.suffix[1:] in FIGURE_FORMATS and stale.stem.endswith(FIGURE_KINDS):
            stale.unlink()
    written = []
    for section in data.sections:
        drawings = (("comparison", section.table, report_figures.comparison_figure),
                    ("plan", section.plan if section.plan and section.plan.layout else None,
                     report_figures.plan_figure),
                    ("patch-plan", section.patch_plan if section.patch_plan and section.patch_plan.layout else None,
                     report_figures.plan_figure),
                    ("trend", section.trend, report_figures.trend_figure))
        for kind, item, draw in drawings:
            if item is None:
                continue
            path = figures_dir / f"{section.anchor}-{kind}.{image_format}"
            draw(item, path)
            written.append(path)
            section.figures[kind] = path.relative_to(out_dir).as_posix()
    for search in data.searches:
        path = report_figures.search_figure(search, figures_dir / f"{search.anchor}-search.{image_format}")
        written.append(path)
        search.figures["search"] = path.relative_to(out_dir).as_posix()
    environment = Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), undefined=StrictUndefined,
                              autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                              lstrip_blocks=True)
    environment.filters["number"] = _number
    environment.filters["ratio"] = lambda r: "—" if r is None else f"{r:.2f}×"
    environment.filters["code"] = _code
    environment.filters["percent"] = lambda r: "—" if r is None else f"{r:.1%}"
    environment.filters["yesno"] = lambda b: "—" if b is None else ("yes" if b else "NO")
    html = environment.get_template(TEMPLATE).render(
        data=data, ours=OURS, labels=BASELINE_LABELS, columns=STORE_ROW_COLUMNS,
        plan_rows=plan_rows)
    index = out_dir / "index.html"
    try:
        index.write_text(html, encoding="utf-8")
    except OSError as error:
        raise ReportError(f"cannot write {index}: {error.strerror or error}") from None
    return WrittenReport(index=index, figures=written, data=data)


def _code(text: str) -> Any:
    """Text with `backquoted` parts as <code>, the rest escaped."""
    from markupsafe import Markup, escape

    parts = str(text).split("`")
    return Markup("".join(str(escape(p)) if i % 2 == 0 else f"<code>{escape(p)}</code>"
                          for i, p in enumerate(parts)))


def _number(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def plan_rows(layout: PlanLayout) -> list[dict[str, Any]]:
    """The table behind the memory-plan picture: one row per step."""
    rows = []
    for index, step in enumerate(layout.steps):
        segments = layout.segments(step)
        rows.append({
            "step": index, "op": f"{step.op_kind} #{step.op_index}",
            "tensors": [(s.tensor.name, s.tensor.bytes, s.shared_bytes) for s in segments],
            "scratch": step.scratch_bytes, "live": sum(s.bytes for s in segments) + step.scratch_bytes,
        })
    return rows


def make_report(out_dir: Path, *, store: str | None = None, since: str | None = None,
                board: str | None = None, model: str | None = None,
                image_format: str = "png") -> WrittenReport:
    """Read the store, select rows, and write the report into `out_dir`."""
    frame, path = load_frame(store, since=since, board=board, model=model)
    filters = {k: v for k, v in (("since", since), ("board", board), ("model", model)) if v}
    if frame.empty:
        chosen = ", ".join(f"{k} {v}" for k, v in filters.items())
        raise ReportError(f"the results store at {path} has no measurements"
                          + (f" matching {chosen}" if chosen else "") + "; run `tinylab bench` first")
    data = collect_report(frame, store=path, filters=filters, keep_lut_runs=model is not None)
    if not data.sections and not data.searches:
        raise ReportError(f"none of the {len(frame)} selected measurements in {path} is of the "
                          f"{OURS} engine on a board; nothing to report")
    return write_report(data, out_dir, image_format=image_format)
