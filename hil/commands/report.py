"""`tinylab report`: a static HTML page of the results store's figures, tables and trends."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from hil.destinations import add_output_argument
from hil.errors import StoreError
from hil.report.report import FIGURE_FORMATS, make_report
from hil.resources import results_dir
from hil.store.option import add_store_argument
from hil.store.measurement import normalize_timestamp

SUMMARY = "write a static HTML report (figures, tables, trends, regressions) from the results store"
EXAMPLES = """\
  tinylab report                                   # results/reports/index.html
  tinylab report -o /tmp/report --board qemu-f746 --since 2025-01-31
  tinylab report --format svg --check              # SVG figures; check them in headless Chromium
"""

DEFAULT_DIR = results_dir() / "reports"  # next to the default store; not committed


def _date(text: str) -> str:
    try:
        return normalize_timestamp(text, naive_is_utc=True)
    except StoreError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_output_argument(parser, "-o", "--output", folder=True, metavar="DIR", default=DEFAULT_DIR,
                        help="folder to write index.html and figures/ into (default: results/reports in a checkout, "
                        "$XDG_DATA_HOME/tinylab/reports when installed)")
    parser.add_argument("--since", metavar="DATE", type=_date,
                        help="only measurements at or after DATE (ISO-8601; UTC unless a zone is given)")
    parser.add_argument("--board", help="only this board (%% matches anything)")
    parser.add_argument("--model", help="only this model (%% matches anything); selecting models also "
                        "shows latency-table runs, which are left out otherwise")
    parser.add_argument("--format", choices=FIGURE_FORMATS, default="png", help="figure format (default: png)")
    parser.add_argument("--check", action="store_true",
                        help="open the page in headless Chromium and fail unless every figure loaded")
    add_store_argument(parser, written=False)


def run(args: argparse.Namespace) -> int:
    written = make_report(args.output, store=args.store, since=args.since, board=args.board, model=args.model,
                          image_format=args.format)
    check = None
    if args.check:
        from hil.report.browser import check_page

        check = check_page(written.index, written.index.parent / "screenshot.png")
    data = written.data
    if args.json:
        print(json.dumps({
            "index": str(written.index), "figures": [str(p) for p in written.figures],
            "sections": [s.title for s in data.sections], "measurements": data.measurements,
            "searches": [s.run_id for s in data.searches],
            "regressions": [r.describe() for r in data.regressions],
            "check": None if check is None else {"images": check.total, "loaded": check.loaded,
                                                 "screenshot": str(check.screenshot)},
        }, indent=2))
    else:
        print(f"wrote {written.index} ({len(written.figures)} figures, {len(data.sections)} model/board sections, "
              f"{len(data.searches)} NAS searches, {data.measurements} measurements from {data.store})")
        for regression in data.regressions:
            print(f"regression: {regression.describe()}")
        if check is not None:
            print(f"checked in headless Chromium: {check.loaded} of {check.total} figures loaded; "
                  f"screenshot {check.screenshot}")
    return 0
