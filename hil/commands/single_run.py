"""What `tinylab run` and `tinylab mlperf` do with the result of one run: store its rows (unless
--no-store), show its summary (JSON with --json), then write its files: the rows first, so that
no step after the run can lose them."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Protocol

from hil.errors import LabError, OutputError
from hil.experiments.modelrun import engine_provenance
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.store.results import open_store
from hil.targets.boardspec import BoardSpec


class StorableRun(Protocol):
    """A run of the engine's firmware that summarises itself and turns into rows."""

    backend: str

    def summary(self) -> dict[str, object]: ...

    def measurements(self, provenance: Provenance) -> list[Measurement]: ...


def store_and_show(args: argparse.Namespace, board: BoardSpec, result: StorableRun,
                   print_run: Callable[[dict[str, object]], None],
                   write_files: Callable[[], None] | None = None) -> None:
    """Add the run's rows to the store (`args.store`) with the engine's provenance, unless
    `args.no_store`; print its summary, with the store's path, as JSON (`args.json`) or with
    `print_run`; then `write_files()`. An error after the rows are stored says where they are."""
    summary = result.summary()
    stored = None
    if not args.no_store:
        with open_store(args.store) as store:
            stored = store.add(result.measurements(engine_provenance(board, result.backend)))
            summary["store"] = str(store.path)
    try:
        try:
            if args.json:
                print(json.dumps(summary, indent=2))
            else:
                print_run(summary)
            sys.stdout.flush()
        except OSError as error:
            raise OutputError(f"cannot print the summary: {error.strerror or error}") from None
        if write_files is not None:
            write_files()
    except LabError as error:
        if stored is not None:
            error.add_note(f"the run's {stored} measurements are stored in {summary['store']}")
        raise
