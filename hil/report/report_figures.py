"""The report's figures, drawn with matplotlib (Agg) from hil.report.report_data's plain data: our engine
against its baselines, the memory plan step by step, trends with regressions marked, and a NAS
search's accuracy against latency and peak SRAM (hil.report.search_data). Each figure carries a
footer saying where its numbers came from."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (no display; before pyplot)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator, PercentFormatter  # noqa: E402

from hil.firmware_build.planlayout import short_name  # noqa: E402
from hil.report.report_data import OURS, ComparisonTable, PlanPicture, Source, Trend  # noqa: E402
from hil.report.search_data import METHODS, Candidate, DeployedNetwork, SearchRun  # noqa: E402

OURS_COLOR = "#1f77b4"
BASELINE_COLORS = ("#7f7f7f", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
REGRESSION_COLOR = "#d62728"
SCRATCH_COLOR = "#d9d9d9"
DPI = 110
BAR_QUANTITIES = ("latency", "peak_sram", "flash", "arena", "arena_activations")
SRAM_ON_SCALE = 1.6  # draw the SRAM line in the plan panel when it is within this × the tallest bar


def _footer(figure: plt.Figure, source: Source, extra: str = "") -> None:
    text = source.text() + (f" · {extra}" if extra else "")
    figure.text(0.01, 0.005, "\n".join(textwrap.wrap(text, 150)), fontsize=7, color="#444444",
                ha="left", va="bottom")


def _save(figure: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.15,
                   metadata={"Software": None} if path.suffix == ".png" else None)
    plt.close(figure)
    return path


def _bytes(value: float) -> str:
    if value >= 1 << 20:
        return f"{value / (1 << 20):.2f} MiB"
    if value >= 1 << 10:
        return f"{value / (1 << 10):.1f} KiB"
    return f"{value:.0f} B"


_COMMAS = FuncFormatter(lambda value, _: f"{value:,.0f}")
_BYTES = FuncFormatter(lambda value, _: _bytes(value) if value else "0")


class _BinaryLocator(MaxNLocator):
    """Ticks at multiples of a power of two (bytes: 4 KiB, 64 KiB, ...), about five of them."""

    def tick_values(self, vmin: float, vmax: float):
        span = max(vmax - vmin, 1.0)
        base = 2.0 ** math.ceil(math.log2(span / 5))
        return MultipleLocator(base).tick_values(vmin, vmax)


def _bytes_axis(axis) -> None:
    axis.set_major_locator(_BinaryLocator())
    axis.set_major_formatter(_BYTES)


def _amount(value: float, unit: str) -> str:
    return _bytes(value) if unit == "bytes" else f"{value:,.0f} {unit}"


# --- our engine against the baselines -----------------------------------------------------------


def comparison_figure(table: ComparisonTable, path: Path) -> Path:
    """One panel per quantity: a bar per engine measured, ours first, each labelled with its value
    and ours ÷ it."""
    rows = [r for r in table.rows if r.quantity.name in BAR_QUANTITIES]
    engines = [OURS] + table.measured_baselines
    colors = {e: (OURS_COLOR if e == OURS else BASELINE_COLORS[i % len(BASELINE_COLORS)])
              for i, e in enumerate(engines)}
    figure, axes = plt.subplots(len(rows), 1, figsize=(9, 1.0 + 0.45 * len(engines) * len(rows) + 0.5 * len(rows)),
                                squeeze=False)
    for ax, row in zip(axes[:, 0], rows):
        cells = [(OURS, row.ours)] + [(e, row.baselines.get(e)) for e in table.measured_baselines]
        cells = [(e, c) for e, c in cells if c is not None]
        labels = [f"{e} ({c.metric})" if c.metric != row.quantity.metrics[0] else e for e, c in cells]
        values = [c.value for _, c in cells]
        positions = range(len(cells))
        ax.barh(list(positions), values, color=[colors[e] for e, _ in cells], height=0.6)
        ax.set_yticks(list(positions), labels, fontsize=8)
        ax.invert_yaxis()
        top = max(values) if values else 1.0
        ax.set_xlim(0, top * 1.45 if top > 0 else 1)
        for y, (engine, cell) in zip(positions, cells):
            note = _amount(cell.value, cell.unit)
            ratio = row.ratios.get(engine)
            if engine != OURS and ratio is not None:
                note += f"   ours ÷ this = {ratio:.2f}×"
            ax.text(cell.value + top * 0.01, y, note, va="center", fontsize=8)
        ax.set_title(f"{row.quantity.label} ({row.unit})" + (f" — ours {row.derived}" if row.derived else ""),
                     fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=7)
        if row.unit == "bytes":
            _bytes_axis(ax.xaxis)
        else:
            ax.xaxis.set_major_formatter(_COMMAS)
        ax.grid(axis="x", alpha=0.3)
    missing = [f"{e}: {why}" for e, why in table.notes.items()]
    figure.suptitle(f"{table.model} on {table.board}: {OURS} against its baselines (latest run of each)",
                    fontsize=10, x=0.01, ha="left")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    _footer(figure, table.source, ("; ".join(missing)) if missing else "")
    return _save(figure, path)


# --- the memory plan ----------------------------------------------------------------------------


def plan_figure(picture: PlanPicture, path: Path) -> Path:
    """Bytes live at each step, stacked by tensor (an output written over its dying input counts
    only its own bytes, hatched), scratch on top; the arena, the floor (largest tensor) and the
    board's SRAM as lines; beside it, the whole SRAM budget of the run."""
    layout = picture.layout
    assert layout is not None
    steps = len(layout.steps)
    figure = plt.figure(figsize=(max(10.0, 4.0 + 0.28 * steps), 7.4))
    grid = figure.add_gridspec(2, 2, width_ratios=[7, 1], height_ratios=[5, 1.5], hspace=0.55, wspace=0.12)
    ax, budget, key = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1]), figure.add_subplot(grid[1, :])
    key.axis("off")
    labelled = {"fontsize": 8, "bbox": {"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1}}
    palette = plt.get_cmap("tab20")
    tensor_colors = {t: palette(i % 20) for i, t in enumerate(sorted(layout.tensors))}
    tallest = 0
    for x, step in enumerate(layout.steps):
        bottom = 0
        for segment in layout.segments(step):
            if segment.bytes <= 0:
                continue
            ax.bar(x, segment.bytes, bottom=bottom, width=0.8, color=tensor_colors[segment.tensor.id],
                   edgecolor="white", linewidth=0.4, hatch="//" if segment.shared_bytes else None)
            bottom += segment.bytes
        if step.scratch_bytes:
            ax.bar(x, step.scratch_bytes, bottom=bottom, width=0.8, color=SCRATCH_COLOR, edgecolor="#999999",
                   linewidth=0.4)
            bottom += step.scratch_bytes
        tallest = max(tallest, bottom)
    floor = layout.floor
    ax.axhline(layout.arena_bytes, color="black", linestyle="--", linewidth=1)
    ax.axhline(floor.bytes, color=REGRESSION_COLOR, linestyle=":", linewidth=1.2)
    close = abs(layout.arena_bytes - floor.bytes) < 0.06 * max(tallest, layout.arena_bytes, 1)
    ax.text(steps - 0.5, layout.arena_bytes, f"arena {_bytes(layout.arena_bytes)} ", va="bottom", ha="right",
            **labelled)
    ax.text(steps - 0.5, floor.bytes, f"floor: largest tensor, {short_name(floor.name, 40)} ({_bytes(floor.bytes)}) ",
            va="top" if close or floor.bytes < layout.arena_bytes else "bottom", ha="right",
            color=REGRESSION_COLOR, **labelled)
    top = max(tallest, layout.arena_bytes) * 1.15
    if layout.sram_bytes <= top * SRAM_ON_SCALE:
        ax.axhline(layout.sram_bytes, color="#2ca02c", linewidth=1.5)
        ax.text(-0.5, layout.sram_bytes, f" board SRAM {_bytes(layout.sram_bytes)}", va="bottom",
                color="#2ca02c", **labelled)
        top = max(top, layout.sram_bytes * 1.08)
    else:
        ax.text(0.99, 0.98, f"board SRAM {_bytes(layout.sram_bytes)} is {layout.sram_bytes / layout.arena_bytes:.0f}× "
                "the arena: its line is off this scale (see the budget, right)",
                transform=ax.transAxes, ha="right", va="top", color="#2ca02c", **labelled)
    ax.set_ylim(0, top)
    ax.set_xticks(range(steps), [f"{i} {s.op_kind.replace('_2D', '').lower()}" for i, s in enumerate(layout.steps)],
                  rotation=90, fontsize=7)
    ax.set_xlim(-0.6, steps - 0.4)
    ax.set_ylabel("bytes live in the arena")
    _bytes_axis(ax.yaxis)
    ax.set_xlabel("step (op)")
    ax.set_title(f"{picture.model} on {picture.board}: memory plan, bytes live at each step", fontsize=10, loc="left")
    ax.grid(axis="y", alpha=0.3)
    largest = sorted(layout.tensors.values(), key=lambda t: -t.bytes)[:10]
    handles = [Patch(color=tensor_colors[t.id], label=f"{short_name(t.name, 40)} ({_bytes(t.bytes)})")
               for t in largest]
    handles += [Patch(facecolor=SCRATCH_COLOR, edgecolor="#999999", label="kernel scratch"),
                Patch(facecolor="white", edgecolor="#555555", hatch="//", label="written over its dying input")]
    key.legend(handles=handles, fontsize=7, loc="upper left", frameon=False, ncol=3,
               title=f"tensors ({len(largest)} largest of {len(layout.tensors)})", title_fontsize=7)
    _budget(budget, picture)
    _footer(figure, picture.source,
            f"arena {layout.arena_bytes:,} B, lower bound {layout.lower_bound:,} B, floor {floor.bytes:,} B")
    return _save(figure, path)


def _budget(ax: plt.Axes, picture: PlanPicture) -> None:
    """The run's SRAM: the arena, the rest of .data + .bss, the stack's high-water mark, on the
    board's SRAM."""
    layout = picture.layout
    assert layout is not None
    parts = [("arena", layout.arena_bytes, OURS_COLOR)]
    if picture.static_ram is not None:
        parts.append(("other .data + .bss", max(0, picture.static_ram - layout.arena_bytes), "#aec7e8"))
    if picture.stack_high_water is not None:
        parts.append(("stack (high water)", picture.stack_high_water, "#ff7f0e"))
    bottom = 0
    for label, size, color in parts:
        ax.bar(0, size, bottom=bottom, color=color, width=0.6, label=f"{label} {_bytes(size)}")
        bottom += size
    ax.axhline(layout.sram_bytes, color="#2ca02c", linewidth=1.5)
    ax.text(0, layout.sram_bytes, f"SRAM {_bytes(layout.sram_bytes)}", ha="center", va="bottom", fontsize=7,
            color="#2ca02c")
    ax.set_ylim(0, max(layout.sram_bytes, bottom) * 1.12)
    ax.set_xticks([0], ["budget"], fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(f"uses {bottom / layout.sram_bytes:.1%}", fontsize=8)
    _bytes_axis(ax.yaxis)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.0, -0.06), frameon=False)


# --- trends -------------------------------------------------------------------------------------


def trend_figure(trend: Trend, path: Path) -> Path:
    """A panel per metric (rows) and engine (columns), each on its own scale so that a small change
    shows; x: the runs in time order (date and commit); regressions as red triangles."""
    metrics = trend.metrics
    engines = list(dict.fromkeys(s.engine for s in trend.series))
    index = {run_id: i for i, (run_id, _, _) in enumerate(trend.runs)}
    figure, axes = plt.subplots(len(metrics), len(engines), figsize=(4.2 + 4.2 * len(engines), 1.2 + 1.9 * len(metrics)),
                                sharex=True, squeeze=False)
    colors = {e: (OURS_COLOR if e == OURS else BASELINE_COLORS[i % len(BASELINE_COLORS)])
              for i, e in enumerate(engines)}
    for row, metric in enumerate(metrics):
        for column, engine in enumerate(engines):
            ax = axes[row, column]
            series = [s for s in trend.series if s.metric == metric and s.engine == engine]
            if row == 0:
                ax.set_title(engine, fontsize=9)
            if column == 0:
                ax.set_ylabel(metric, fontsize=8)
            if not series:
                ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center", fontsize=8,
                        color="#888888")
                ax.set_yticks([])
                continue
            for one in series:
                _trend_panel(ax, one, index, colors[engine])
    step = max(1, len(trend.runs) // (12 // len(engines) + 2))
    ticks = list(range(0, len(trend.runs), step))
    for ax in axes[-1, :]:
        ax.set_xticks(ticks, [f"{trend.runs[i][1][5:]}\n{trend.runs[i][2][:8]}" for i in ticks], fontsize=7)
        ax.set_xlim(-0.5, max(0.5, len(trend.runs) - 0.5))
        ax.set_xlabel("run (date UTC, commit)", fontsize=8)
    count = len(trend.regressions)
    figure.suptitle(f"{trend.model} on {trend.board}: trends over {len(trend.runs)} run(s)"
                    + (f", {count} regression(s) marked" if count else ", no regressions"),
                    fontsize=10, x=0.01, ha="left")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    _footer(figure, trend.source)
    return _save(figure, path)


def _trend_panel(ax: plt.Axes, series, index: dict[str, int], color: str) -> None:
    xs = [index[p.run_id] for p in series.points]
    ys = [p.value for p in series.points]
    ax.plot(xs, ys, marker="o", markersize=4, color=color, linewidth=1.2, label=series.unit)
    bad = [(index[p.run_id], p.value, p.regression) for p in series.points if p.regression]
    if bad:
        ax.scatter([b[0] for b in bad], [b[1] for b in bad], marker="^", s=70, color=REGRESSION_COLOR, zorder=5,
                   label="regression")
        for x, y, regression in bad:
            relative = regression.relative_change
            text = f"+{regression.change:,.0f}" + (f" ({relative:+.2%})" if relative is not None else "")
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 5), fontsize=7, color=REGRESSION_COLOR)
    low, high = min(ys), max(ys)
    margin = (high - low) * 0.25 or max(abs(high) * 0.01, 1.0)
    ax.set_ylim(low - margin, high + margin)
    ax.yaxis.set_major_formatter(_COMMAS)  # exact: a regression may be a few bytes
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


# --- NAS searches -------------------------------------------------------------------------------

METHOD_COLORS = {"evolution": "#1f77b4", "random": "#ff7f0e"}
OTHER_METHOD_COLOR = "#7f7f7f"
ROLE_STYLES = {  # marker, colour, size
    "winner": ("*", "#d62728", 260),
    "random": ("^", "#ff7f0e", 110),
    "uniform": ("s", "#2ca02c", 90),
    "deployed": ("D", "#9467bd", 80),
}
BUDGET_COLOR = "#555555"


def search_figure(search: SearchRun, path: Path) -> Path:
    """Two panels, accuracy against latency and against peak SRAM: the candidates as dots by method
    (the supernet's validation accuracy at their predicted figures), their Pareto front as a step
    line, the deployed networks marked at their measured figures with their int8 test accuracy,
    the budgets dashed."""
    unit = search.latency_unit
    figure, axes = plt.subplots(2, 2, figsize=(13, 7.2), gridspec_kw={"height_ratios": [5, 1.5]})
    (latency_ax, sram_ax), keys = axes
    latency_notes = []
    if not any(c.latency is not None for c in search.candidates):
        latency_notes.append("no latency table: the candidates have no predicted latency")
    other_units = sorted({d.latency_unit for d in search.deployed if d.latency is not None and d.latency_unit != unit})
    if other_units:
        latency_notes.append(f"measured in {', '.join(other_units)}: not on this axis")
    _search_panel(latency_ax, search, "latency", lambda c: c.latency if c.latency_unit == unit else None,
                  lambda d: d.latency if d.latency_unit == unit else None, search.latency_front,
                  search.budget.latency, "latency budget", unit or "")
    latency_ax.set_xlabel(f"latency ({unit or 'not measured'}): candidates predicted, deployed measured", fontsize=8)
    latency_ax.xaxis.set_major_formatter(_COMMAS)
    if latency_notes:
        latency_ax.text(0.01, 0.01, "; ".join(latency_notes), transform=latency_ax.transAxes, fontsize=7,
                        color="#444444", va="bottom")
    _search_panel(sram_ax, search, "peak SRAM", lambda c: c.peak_sram, lambda d: d.peak_sram, search.sram_front,
                  search.budget.sram_bytes, "SRAM budget", "bytes")
    sram_ax.set_xlabel("peak SRAM (bytes): candidates predicted, deployed measured", fontsize=8)
    _bytes_axis(sram_ax.xaxis)
    latency_ax.set_ylabel("accuracy", fontsize=8)
    setting = ", ".join(f"{k} {v}" for k, v in search.context.items())
    figure.suptitle(f"NAS search {search.run_id} on {search.board}: accuracy against latency and peak SRAM"
                    + (f" ({setting})" if setting else ""), fontsize=10, x=0.01, ha="left")
    for ax, key in zip((latency_ax, sram_ax), keys):
        key.axis("off")
        key.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="upper left", frameon=False)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    counts = ", ".join(f"{n} {m}" for m, n in search.methods().items())
    _footer(figure, search.source, f"{len(search.candidates)} candidates ({counts}); dots: supernet validation "
                                   "accuracy; marked networks: int8 test accuracy, measured on the board")
    return _save(figure, path)


def _search_panel(ax: plt.Axes, search: SearchRun, quantity: str, cost, measured, front: list[Candidate],
                  budget: float | None, budget_label: str, unit: str) -> None:
    methods = list(METHODS) + sorted({c.method for c in search.candidates} - set(METHODS))
    for method in methods:
        points = [(cost(c), c.accuracy) for c in search.candidates if c.method == method and cost(c) is not None]
        if not points:
            continue
        ax.scatter([x for x, _ in points], [y for _, y in points], s=10, alpha=0.55,
                   color=METHOD_COLORS.get(method, OTHER_METHOD_COLOR), linewidths=0,
                   label=f"candidates, {method} ({len(points)}): supernet validation accuracy, predicted {quantity}")
    front_points = [(cost(c), c.accuracy) for c in front if cost(c) is not None]
    marked: list[tuple[DeployedNetwork, float]] = [(d, measured(d)) for d in search.deployed
                                                  if measured(d) is not None and d.int8_accuracy is not None]
    for network, x in marked:
        marker, color, size = ROLE_STYLES.get(network.role, ROLE_STYLES["deployed"])
        ax.scatter([x], [network.int8_accuracy], marker=marker, s=size, color=color, edgecolors="black",
                   linewidths=0.7, zorder=5, label=f"{network.label}: int8 test accuracy, measured {quantity}")
        ax.annotate(f"{network.int8_accuracy:.1%}", (x, network.int8_accuracy), textcoords="offset points",
                    xytext=(6, 4), fontsize=7, color=color)
    if budget is not None:
        ax.axvline(budget, color=BUDGET_COLOR, linestyle="--", linewidth=1.2,
                   label=f"{budget_label} {_amount(budget, unit) if unit else f'{budget:,.0f}'}")
    xs = [cost(c) for c in search.candidates if cost(c) is not None] + [x for _, x in marked]
    xs += [budget] if budget is not None else []
    if xs:
        low, high = min(xs), max(xs)
        margin = (high - low) * 0.06 or max(abs(high) * 0.05, 1.0)
        ax.set_xlim(max(0.0, low - margin) if low >= 0 else low - margin, high + margin)
    if front_points:
        right = max(ax.get_xlim()[1], front_points[-1][0])
        ax.step([x for x, _ in front_points] + [right], [y for _, y in front_points] + [front_points[-1][1]],
                where="post", color="black", linewidth=0.9, zorder=3,
                label=f"Pareto front of the candidates ({len(front_points)}): "
                      f"most validation accuracy for the {quantity}")
        ax.scatter([x for x, _ in front_points], [y for _, y in front_points], s=28, facecolors="none",
                   edgecolors="black", linewidths=0.8, zorder=4)
    else:
        ax.text(0.5, 0.5, f"no candidate has a predicted {quantity}", transform=ax.transAxes, ha="center",
                fontsize=8, color="#888888")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(f"accuracy against {quantity}" + (f" ({unit})" if unit else ""), fontsize=9, loc="left")
