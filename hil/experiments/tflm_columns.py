"""The TFLM columns of a benchmark table, "TFLM reference" (engine tflm) and "TFLM + CMSIS-NN"
(tflm-cmsis-nn), filled from every --tflm-dir given: each library is checked against each board,
the first one built for a board's core (and FPU) fills the column of its kernels there, and a
column left empty says why (none given, a library for another core, a model that does not fit),
in the table and in the results store."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from hil.experiments.models import ModelSource
from hil.experiments.tflm_baseline import measure_with_library, tflm_provenance
from hil.firmware_build.tflm_baseline_library import TflmLibrary, TflmUnavailable, tflm_dirs_from, try_tflm_library
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.targets.boardspec import BoardSpec

TFLM_ENGINES = ("tflm", "tflm-cmsis-nn")
COLUMN_LABELS = {"tflm": "TFLM reference", "tflm-cmsis-nn": "TFLM + CMSIS-NN"}
UNAVAILABLE_METRIC = "unavailable"  # the stored row that says why a column is empty (its extra holds the reason)


@dataclass(frozen=True)
class TflmColumns:
    """For one board: each TFLM column's library, or why it has none."""

    board: str
    columns: Mapping[str, TflmLibrary | TflmUnavailable]  # engine -> library or reason

    def libraries(self) -> list[TflmLibrary]:
        return [c for c in self.columns.values() if isinstance(c, TflmLibrary)]


def tflm_columns(board: BoardSpec, tflm_dirs: Sequence[str | Path] | None,
                 environ: Mapping[str, str] | None = None) -> TflmColumns:
    """Check every TFLM directory given (else those of $TINYLAB_TFLM_DIR) against `board`."""
    located = tflm_dirs_from(tflm_dirs, environ)
    if isinstance(located, TflmUnavailable):
        return TflmColumns(board.name, {engine: located for engine in TFLM_ENGINES})
    found: dict[str, TflmLibrary] = {}
    refused: list[tuple[Path, TflmUnavailable]] = []
    for root in located:
        checked = try_tflm_library(root, board)
        if isinstance(checked, TflmLibrary):
            column = "tflm" if checked.stand_in else checked.engine  # the stand-in says so in that column
            found.setdefault(column, checked)
        else:
            refused.append((root, checked))
    columns: dict[str, TflmLibrary | TflmUnavailable] = {}
    for engine in TFLM_ENGINES:
        if engine in found:
            columns[engine] = found[engine]
            continue
        # Refusals of a library of this column's kernels first, then those whose kernels are unknown.
        reasons = [r for _, r in refused if r.engine == engine] + [r for _, r in refused if not r.engine]
        if reasons:
            kind = reasons[0].kind
            columns[engine] = TflmUnavailable("; ".join(r.reason for r in reasons), kind, engine)
        else:
            others = ", ".join(f"{lib.root} ({lib.kernels})" for lib in found.values()) or "none"
            columns[engine] = TflmUnavailable(
                f"no {COLUMN_LABELS[engine]} library for {board.name} among the --tflm-dir given ({others}); "
                f"build one with tinylab tflm build --board {board.name}", "not-given", engine)
    return TflmColumns(board.name, columns)


def tflm_column_entries(board: BoardSpec, source: ModelSource, value: np.ndarray, columns: TflmColumns,
                        *, optimize: str | None = None) -> tuple[list[dict[str, object]], list[Measurement]]:
    """One model's TFLM entries, one per column: a run's summary and its rows, or
    {model, engine, reason, kind} and a row that stores the reason."""
    entries: list[dict[str, object]] = []
    rows: list[Measurement] = []
    for engine in TFLM_ENGINES:
        result = measure_with_library(board, source, value, columns.columns[engine], optimize=optimize)
        if isinstance(result, TflmUnavailable):
            entries.append({"model": source.name, "engine": engine, "reason": result.reason, "kind": result.kind})
            rows.append(unavailable_row(board, source, engine, result, columns.columns[engine]))
        else:
            entries.append(result.summary())
            rows.extend(result.measurements(tflm_provenance(board, result)))
    return entries, rows


def unavailable_row(board: BoardSpec, source: ModelSource, engine: str, why: TflmUnavailable,
                    library: TflmLibrary | TflmUnavailable) -> Measurement:
    """The stored form of an empty column: metric `unavailable`, value 1, its reason and kind in extra."""
    version = library.engine_version if isinstance(library, TflmLibrary) else ""
    provenance = Provenance.collect(engine=engine, engine_version=version, board=board.name, backend=board.backend,
                                    toolchain="")
    return provenance.measurement(source.name, source.sha256, UNAVAILABLE_METRIC, 1.0, "flag",
                                  {"reason": why.reason, "kind": why.kind})


def format_tflm_column(entries: list[dict[str, object]], ours: list[dict[str, object]] | None = None) -> str:
    """The TFLM columns as text: TFLM's figures beside the engine's (with ratios) where both were
    measured, and why a column is empty where it is."""
    ours_by_model = {o["model"]: o for o in ours or []}
    lines = [f"{'model':<32} {'engine':<16} {'latency':>14} {'unit':<12} {'ours/TFLM':>9} {'peak SRAM':>10} "
             f"{'ours/TFLM':>9} {'arena':>9} {'flash':>9}  matches TFLM"] if any("reason" not in e for e in entries) else []
    for entry in entries:
        label = COLUMN_LABELS.get(str(entry.get("engine", "")), "TFLM")
        if "reason" in entry:
            lines.append(f"{entry['model']:<32} {label} column empty: {entry['reason']}")
            continue
        mine = ours_by_model.get(entry["model"])
        same_unit = mine is not None and mine.get("latency_unit") == entry["latency_unit"] and "latency" in mine
        latency_ratio = f"{mine['latency'] / entry['latency']:.2f}" if same_unit and entry["latency"] else "-"
        sram_ratio = f"{mine['peak_sram_bytes'] / entry['peak_sram_bytes']:.2f}" \
            if mine and "peak_sram_bytes" in mine else "-"
        lines.append(
            f"{entry['model']:<32} {entry['engine']:<16} {entry['latency']:>14,.0f} {entry['latency_unit']:<12} "
            f"{latency_ratio:>9} {entry['peak_sram_bytes']:>10,} {sram_ratio:>9} {entry['arena_used_bytes']:>9,} "
            f"{entry['flash_bytes']:>9,}  {'yes' if entry['matches_reference'] else 'NO'}"
        )
    return "\n".join(lines)
