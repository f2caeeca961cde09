"""`tinylab results`: show the newest measurements in the results store, or export them as CSV."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from hil.destinations import add_output_argument
from hil.errors import StoreError
from hil.store.location import resolve_store_path
from hil.store.option import add_store_argument
from hil.store.measurement import BACKENDS, normalize_timestamp
from hil.store.results import open_store
from hil.store.results_format import format_table, write_csv

SUMMARY = "show the newest measurements in the results store, or export them as CSV"
EXAMPLES = """\
  tinylab results --model kws --board qemu-f746 --metric latency
  tinylab results --backend hardware --since 2025-01-31 --limit 50
  tinylab results --model 'kws%' --csv kws.csv      # % matches anything
  tinylab results --json --limit 5
"""

DEFAULT_LIMIT = 20


def _date(text: str) -> str:
    try:
        return normalize_timestamp(text, naive_is_utc=True)
    except StoreError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_argument(parser, written=False)
    parser.add_argument("--model", help="only this model (%% matches anything)")
    parser.add_argument("--board", help="only this board (%% matches anything)")
    parser.add_argument("--metric", help="only this metric: latency, peak_sram, flash, ...")
    parser.add_argument("--backend", choices=BACKENDS, help="only this backend")
    parser.add_argument("--since", metavar="DATE", type=_date,
                        help="only measurements at or after DATE (ISO-8601; UTC unless a zone "
                        "is given)")
    parser.add_argument("--limit", metavar="N", type=_limit, default=None,
                        help=f"at most N rows, newest first (default {DEFAULT_LIMIT}; --csv "
                        "exports every selected row unless --limit is given)")
    add_output_argument(parser, "--csv", type=str, metavar="FILE",
                        help="export the selected rows as CSV to FILE ('-' for standard output)")


def run(args: argparse.Namespace) -> int:
    path = resolve_store_path(args.store)
    filters = dict(model=args.model, board=args.board, metric=args.metric, backend=args.backend,
                   since=args.since)
    if args.csv is not None:
        limit = args.limit
    else:
        limit = args.limit or DEFAULT_LIMIT

    if not path.exists():  # reading a store that is not there creates nothing
        rows, total, matching = [], 0, 0
    else:
        with open_store(str(path)) as store:
            rows = store.query(**filters, limit=limit)
            total = store.count()
            matching = store.count(**filters)

    if args.csv is not None:
        if args.csv == "-":
            write_csv(rows, sys.stdout)
            return 0
        try:
            with open(args.csv, "w", newline="", encoding="utf-8") as stream:
                write_csv(rows, stream)
        except OSError as error:
            raise StoreError(f"cannot write {args.csv}: {error.strerror or error}") from None
        if args.json:
            print(json.dumps({"csv": args.csv, "rows": len(rows), "store": str(path)}))
        else:
            print(f"wrote {len(rows)} measurements from {path} to {args.csv}")
        return 0

    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return 0
    if total == 0:
        print(f"the results store at {path} has no measurements yet")
        return 0
    if not rows:
        print(f"no measurements in {path} match the filters ({total} in all)")
        return 0
    print(format_table(rows))
    print(f"\n{len(rows)} of {matching} matching measurements (newest first; {total} in {path})")
    return 0
