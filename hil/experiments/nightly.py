"""The nightly suite: every model the lab can find, on each configured board, against its baselines
(our portable kernels, TFLM's arena from the host package, TFLM on the target when a library is
given), stored, reported, and judged: what regressed or stopped matching the reference, by name."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from engine.errors import DoesNotFitError, EngineError
from engine.oracle import tflm_arena
from hil.errors import LabError
from hil.experiments.compare import Comparison
from hil.experiments.modelrun import run_model
from hil.experiments.models import NIGHTLY_BUILTINS, ModelSource, default_input, resolve_model
from hil.experiments.regressions import Regression, find_regressions
from hil.experiments.tflm_columns import COLUMN_LABELS, TflmColumns, tflm_column_entries, tflm_columns
from hil.store.provenance import REPO_ROOT
from hil.store.results import ResultsStore
from hil.targets.boardspec import BoardSpec

SHARED_MODELS = REPO_ROOT.parent / "shared" / "models"  # the lab's real models, when present
KERNEL_SETS = ("optimized", "portable")


def suite_models(folders: list[Path], *, standard: bool = True, chosen: list[str] = (),
                 shared: Path = SHARED_MODELS) -> list[str]:
    """The models to run: `chosen`, then (when `standard`) the project's own models and the
    .tflite files of `shared` if it exists, then those of every folder given (sorted by name)."""
    found = list(chosen) + (list(NIGHTLY_BUILTINS) if standard else [])
    for folder in ([shared] if standard and shared.is_dir() else []) + list(folders):
        if not folder.is_dir():
            raise LabError(f"model folder {folder} does not exist")
        models = sorted(folder.glob("*.tflite"))
        if not models and folder != shared:
            raise LabError(f"model folder {folder} holds no .tflite file")
        found.extend(str(path) for path in models if str(path) not in found)
    return found


@dataclass
class Outcome:
    """One model on one board: measured (with what the comparison says), skipped, or failed."""

    model: str
    board: str
    status: str  # "measured" | "skipped" (does not fit the board) | "failed"
    detail: str = ""
    matches_reference: bool = True
    run_ids: set[str] = field(default_factory=set)


@dataclass
class NightlyResult:
    outcomes: list[Outcome]
    regressions: list[Regression]

    @property
    def mismatches(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "measured" and not o.matches_reference]

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not (self.regressions or self.mismatches or self.failures)

    def problems(self) -> list[str]:
        """One line per thing that went wrong, naming model, board and metric."""
        return ([f"REGRESSION {r.describe()}" for r in self.regressions]
                + [f"MISMATCH {o.model} on {o.board}: {o.detail}" for o in self.mismatches]
                + [f"FAILED {o.model} on {o.board}: {o.detail}" for o in self.failures])


def measure_model(board: BoardSpec, source: ModelSource, store: ResultsStore, *, kernels: str = "optimized",
                  tflm: TflmColumns | None = None) -> Outcome:
    """Our engine (built with `kernels`), the portable-kernel baseline, TFLM's host arena and, with
    libraries, TFLM on the target (reference and CMSIS-NN kernels): all stored, in one run per engine."""
    value = default_input(source.graph)
    ours = run_model(board, source, value, kernels=kernels)
    portable = run_model(board, source, value, kernels="portable")
    rows = Comparison(ours=ours, portable=portable, tflm=tflm_arena(source.tflite)).measurements(board)
    if kernels != "optimized":  # a deliberately different build of our engine: say so in its rows
        rows = [row if row.engine.endswith("-portable") else replace(row, extra=_with_kernels(row.extra, kernels))
                for row in rows]
    tflm_entries, tflm_rows = tflm_column_entries(board, source, value, tflm or tflm_columns(board, None))
    store.add(rows + tflm_rows)
    checked = [("our engine", ours.matches_reference), ("portable kernels", portable.matches_reference)] + [
        (f"{COLUMN_LABELS[e['engine']]} on the target", e["matches_reference"]) for e in tflm_entries if "reason" not in e]
    mismatched = [name for name, run_matches in checked if not run_matches]
    empty = "; ".join(f"{COLUMN_LABELS[e['engine']]} column empty: {e['reason']}" for e in tflm_entries if "reason" in e)
    return Outcome(model=source.name, board=board.name, status="measured",
                   detail=("output differs from TFLite Micro's: " + ", ".join(mismatched)) if mismatched else empty,
                   matches_reference=not mismatched, run_ids={row.run_id for row in rows + tflm_rows})


def _with_kernels(extra: str, kernels: str) -> str:
    return json.dumps({**json.loads(extra), "kernels": kernels}, sort_keys=True)


def run_suite(boards: list[BoardSpec], models: list[str], store: ResultsStore, *, kernels: str = "optimized",
              tflm_dirs: Sequence[str | Path] | None = None,
              progress: Callable[[str], None] | None = None) -> NightlyResult:
    """Measure every model on every board, TFLM from each library in `tflm_dirs` built for the
    board's core; then the regressions of the series this run touched."""
    progress = progress or (lambda line: None)
    outcomes: list[Outcome] = []
    for board in boards:
        columns = tflm_columns(board, tflm_dirs)
        for spec in models:
            try:
                source = resolve_model(spec)
                outcome = measure_model(board, source, store, kernels=kernels, tflm=columns)
            except DoesNotFitError as error:
                outcome = Outcome(model=Path(spec).stem, board=board.name, status="skipped", detail=str(error))
            except (LabError, EngineError) as error:
                outcome = Outcome(model=Path(spec).stem, board=board.name, status="failed", detail=str(error))
            outcomes.append(outcome)
            progress(f"{outcome.model} on {outcome.board}: {outcome.status}"
                     + (f" ({outcome.detail})" if outcome.detail and outcome.status != "measured" else ""))
    ours = set().union(*(o.run_ids for o in outcomes)) if outcomes else set()
    regressions = [r for r in find_regressions(store.dataframe()) if r.new_run_id in ours]
    return NightlyResult(outcomes=outcomes, regressions=regressions)
