"""`tinylab lut`: build a per-layer latency lookup table for a search space on a board, and
validate it against whole networks of the space."""
from __future__ import annotations

import argparse
import json

from engine.compiler import ENGINE_VERSION
from hil.boards import load_board
from hil.results import add_store_argument, open_store

SUMMARY = "build a per-layer latency lookup table on a board, or validate it against whole networks"
EXAMPLES = """\
  tinylab lut build --board qemu-f746 --space tiny        # measure the keys missing from the table
  tinylab lut validate --board qemu-f746 --space tiny --samples 50
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("build", "validate"), help="build the table, or validate it")
    parser.add_argument("--board", default="qemu-f746", help="board name or file (default: qemu-f746)")
    parser.add_argument("--space", default="tiny", help="search space name (default: tiny)")
    parser.add_argument("--table", help="table file (default: the cache's, keyed by board and engine version)")
    parser.add_argument("--samples", type=int, default=50, help="validate: random networks to measure (default: 50)")
    parser.add_argument("--seed", type=int, default=0, help="validate: seed of the random networks")
    add_store_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nas.lut import open_table
    from nas.measure import build_table, validate_table
    from nas.space import get_space

    board = load_board(args.board)
    space = get_space(args.space)
    table, path = open_table(args.table, board.name, ENGINE_VERSION)
    progress = None if args.json else (lambda line: print(line, flush=True))
    with open_store(args.store) as store:
        if args.action == "build":
            report = build_table(board, space, table, path, store=store, progress=progress)
            summary = {"table": str(path), "board": board.name, "engine_version": ENGINE_VERSION,
                       "space": space.name, "keys": report.total_keys, "measured": report.measured,
                       "unit": table.unit, "store": str(store.path)}
            if args.json:
                print(json.dumps(summary, indent=2))
            else:
                print(f"{len(report.measured)} of {report.total_keys} entries measured (overhead included); "
                      f"table {path} ({table.unit})")
            return 0
        if args.samples < 2:
            from hil.errors import LabError
            raise LabError("--samples must be at least 2 (a fit and a rank correlation need two networks)")
        result = validate_table(board, space, table, args.samples, seed=args.seed, store=store, progress=progress)
        stored = str(store.path)
    if args.json:
        print(json.dumps({"board": board.name, "space": space.name, "unit": result.unit, "lut": result.lut,
                          "macs_linear": result.macs_linear, "macs_fit": result.fit,
                          "samples": result.samples, "store": stored}, indent=2))
        return 0
    print(f"{'predictor':<12} {'RMSE':>12} {'MAPE %':>8} {'±5% %':>7} {'±10% %':>7} {'Spearman':>9}")
    for label, f in (("LUT", result.lut), ("MACs-linear", result.macs_linear)):
        print(f"{label:<12} {f['rmse']:>12,.0f} {f['mape']:>8.2f} {f['within_5pct']:>7.1f} "
              f"{f['within_10pct']:>7.1f} {f['spearman']:>9.3f}")
    print(f"RMSE in {result.unit}; MACs-linear: latency = {result.fit[0]:.4g}·MACs + {result.fit[1]:,.0f} "
          f"(least squares on these {len(result.samples)} networks); figures stored in {stored}")
    return 0
