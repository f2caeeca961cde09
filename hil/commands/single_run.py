"""What `tinylab run` and `tinylab mlperf` do with the result of one run: store its rows (unless
--no-store) and show its summary (JSON with --json)."""
from __future__ import annotations

import argparse
import json
from typing import Callable, Protocol

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
                   print_run: Callable[[dict[str, object]], None]) -> None:
    """Add the run's rows to the store (`args.store`) with the engine's provenance, unless
    `args.no_store`; print its summary, with the store's path, as JSON (`args.json`) or with
    `print_run`."""
    summary = result.summary()
    if not args.no_store:
        with open_store(args.store) as store:
            store.add(result.measurements(engine_provenance(board, result.backend)))
            summary["store"] = str(store.path)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_run(summary)
