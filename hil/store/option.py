"""The shared `--store URL` option: where a command writes its rows, checked (hil.destinations)
before the command measures anything."""
from __future__ import annotations

import argparse
import os

from hil.destinations import Destination, creatable, declare_destination
from hil.errors import StoreError
from hil.store.location import STORE_ENV, SUPPORTED_LOCATIONS, resolve_store_path
from hil.store.results import open_store


def check_store_location(flag: str, location: str | os.PathLike[str] | None) -> None:
    """Refuse, before a command measures anything, a store it could not write its rows to: a bad
    URL, a folder, a file that is not a tinylab store, or a path that cannot be created."""
    path = resolve_store_path(location)
    shown = f"{flag} {location}" if location is not None else f"the results store {path}"
    if path.is_dir():
        raise StoreError(f"{shown}: is a folder, not a SQLite file; nothing was run")
    if path.exists():
        try:
            with open_store(path):
                return
        except StoreError as error:
            raise StoreError(f"{error}; nothing was run") from None
    problem = creatable(path)
    if problem:
        raise StoreError(f"{shown}: cannot be created: {problem}; nothing was run")


def add_store_argument(parser: argparse._ActionsContainer, written: bool = True) -> None:
    """Add the shared `--store URL` option (resolved later by `open_store(args.store)`); where the
    command writes to the store (`written`), it is checked before the command runs, unless
    --no-store."""
    parser.add_argument(
        "--store", metavar="URL", default=None,
        help=f"results store: {SUPPORTED_LOCATIONS} (default: ${STORE_ENV}, "
        "else results/lab.sqlite in a checkout, $XDG_DATA_HOME/tinylab/lab.sqlite when installed)")
    if written:
        declare_destination(parser, Destination("store", "--store", check_store_location, skip_if="no_store",
                                                check_none=True))
