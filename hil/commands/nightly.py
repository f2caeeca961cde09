"""`tinylab nightly`: the standard suite on the configured boards, stored and reported; exits
non-zero, naming them, when something regressed or stopped matching the reference."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from hil.destinations import add_output_argument
from hil.experiments.nightly import KERNEL_SETS, SHARED_MODELS, run_suite, suite_models
from hil.commands.bench import add_tflm_dir_argument
from hil.progress import ProgressBar
from hil.store.option import add_store_argument
from hil.store.results import open_store
from hil.targets.boards import load_board

SUMMARY = "run the standard suite on the boards, store it, write the report; non-zero exit on a regression"
EXAMPLES = f"""\
  tinylab nightly                                   # every model found, on qemu-f746 and qemu-f412
  tinylab nightly --boards qemu-f746 --models-dir ~/models -o /srv/www/tinylab
  tinylab nightly mcunet-tiny --kernels portable     # a deliberately slower build: exits 1, naming it
  tinylab nightly --boards qemu-f746 qemu-f412 --tflm-dir M7-REF --tflm-dir M7-CMSIS --tflm-dir M4-REF --tflm-dir M4-CMSIS
The suite: the project's own models, {SHARED_MODELS} when present, and every --models-dir.
Exit status: 0 all well, 1 something regressed, stopped matching TFLite Micro or failed, 2 bad usage.
"""
DEFAULT_BOARDS = ["qemu-f746", "qemu-f412"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*",
                        help="run only these (.tflite files or built-in models) instead of the standard suite")
    parser.add_argument("--boards", nargs="+", default=DEFAULT_BOARDS, metavar="BOARD",
                        help=f"boards to run on (default: {' '.join(DEFAULT_BOARDS)})")
    parser.add_argument("--models-dir", action="append", type=Path, default=[], metavar="DIR",
                        help="also every .tflite file in DIR (repeatable)")
    parser.add_argument("--kernels", choices=KERNEL_SETS, default="optimized",
                        help="which kernels build our engine (default: optimized; portable is the slow baseline)")
    add_tflm_dir_argument(parser)
    add_output_argument(parser, "-o", "--output", folder=True, default=None, metavar="DIR",
                        help="where the report goes (default: results/reports in a checkout, "
                        "$XDG_DATA_HOME/tinylab/reports when installed)")
    add_store_argument(parser)


def run(args: argparse.Namespace) -> int:
    from hil.commands.report import DEFAULT_DIR
    from hil.report.report import make_report

    boards = [load_board(name) for name in args.boards]
    models = suite_models(args.models_dir, standard=not args.models, chosen=args.models)
    bar = None if args.json else ProgressBar(len(boards) * len(models), "nightly")
    with open_store(args.store) as store:
        result = run_suite(boards, models, store, kernels=args.kernels, tflm_dirs=args.tflm_dir,
                           progress=bar.advance if bar else None)
        stored = str(store.path)
    written = make_report(args.output or DEFAULT_DIR, store=stored)
    problems = result.problems()
    if args.json:
        print(json.dumps({
            "ok": result.ok, "store": stored, "report": str(written.index), "problems": problems,
            "outcomes": [{"model": o.model, "board": o.board, "status": o.status, "detail": o.detail}
                         for o in result.outcomes],
        }, indent=2))
    else:
        measured = sum(o.status == "measured" for o in result.outcomes)
        skipped = [o for o in result.outcomes if o.status == "skipped"]
        print(f"{measured} model/board pairs measured, {len(skipped)} skipped, {len(result.failures)} failed; "
              f"figures stored in {stored}; report {written.index}")
        for outcome in skipped:
            print(f"skipped {outcome.model} on {outcome.board}: {outcome.detail}")
        for line in problems:
            print(line)
        print("nightly: all well" if result.ok else f"nightly: {len(problems)} problem(s)")
    return 0 if result.ok else 1
