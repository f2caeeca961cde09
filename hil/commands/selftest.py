"""`tinylab selftest`: check the measurement chain of a board with the calibration firmware."""
from __future__ import annotations

import argparse
import json

from hil.experiments.calibration import CalibrationPlan, calibrate, measurements, provenance_for
from hil.store.option import add_store_argument
from hil.store.results import open_store
from hil.targets.boards import load_board

SUMMARY = "check a board's measurement chain (timer, stack and arena figures) with a calibration firmware"
EXAMPLES = """\
  tinylab selftest --board qemu-f746
  tinylab selftest --board netduinoplus2 --json
  tinylab selftest --board qemu-f412 --block-length 400 --repeats 1000 --runs 3
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = CalibrationPlan()
    parser.add_argument("--board", default="qemu-f746", help="board name or board file (default: qemu-f746)")
    parser.add_argument("--block-length", type=int, default=defaults.block_length,
                        help="instructions in the straight-line block (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=defaults.repeats,
                        help="times the block runs per window (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=2,
                        help="boots to compare for repeatability (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for any reply from the board (default: %(default)s)")
    parser.add_argument("--no-store", action="store_true", help="do not write the figures to the results store")
    add_store_argument(parser)


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    plan = CalibrationPlan(block_length=args.block_length, repeats=args.repeats)
    report, firmware = calibrate(board, plan, runs=args.runs, timeout_s=args.timeout)
    stored_in = None
    if not args.no_store:
        with open_store(args.store) as store:
            store.add(measurements(report, firmware, provenance_for(report)))
            stored_in = str(store.path)

    if args.json:
        print(json.dumps({**report.as_dict(), "store": stored_in}, indent=2))
    else:
        print(f"selftest of {board.name} ({report.backend}; latency in {report.unit})")
        print(f"  firmware: {report.flash_bytes} B flash, {report.static_ram_bytes} B static RAM")
        print(f"  empty window: {report.empty_window:,.2f} {report.unit}")
        for check in report.checks:
            print(f"  {'PASS' if check.passed else 'FAIL'} {check.name:<11} {check.detail}")
        if stored_in:
            print(f"  figures stored in {stored_in}")
    return 0 if report.passed else 1
