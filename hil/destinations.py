"""Where a command writes: its output files and folders, and the results store, declared with its
options and checked once, by the command line, before anything is built or measured.

A command declares an option as a destination with `add_output_argument` (or the store's
`add_store_argument`, hil.store.location); `check_destinations(args)` checks every one the parsed
command declared, so that a path that cannot be written is refused before a run, never after it.
Files are then written with `write_output`, after the run's rows are stored."""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hil.errors import OutputError

DESTINATIONS = "destinations"  # the parsed arguments' attribute that lists a command's destinations
STDOUT = "-"  # an output file named '-' is the standard output


@dataclass(frozen=True)
class Destination:
    """An option whose value is a path the command writes; `check(flag, value)` raises a LabError
    naming what is wrong. `skip_if`: a flag option (such as no_store) that means nothing is written."""

    dest: str
    flag: str
    check: Callable[[str, object], None]
    skip_if: str | None = None
    check_none: bool = False  # whether a value of None (the default location) is checked too


def declare_destination(parser: argparse._ActionsContainer, destination: Destination) -> None:
    """Record `destination` among the parser's (an argument group shares its parser's list)."""
    declared = tuple(parser.get_default(DESTINATIONS) or ())
    parser.set_defaults(**{DESTINATIONS: declared + (destination,)})


def add_output_argument(parser: argparse._ActionsContainer, *flags: str, folder: bool = False,
                        **options: object) -> argparse.Action:
    """`parser.add_argument(*flags, type=Path, **options)`, declared as an output file (or a
    folder, `folder=True`) to check before the command runs."""
    action = parser.add_argument(*flags, **{"type": Path, **options})
    flag = max(flags, key=len)
    declare_destination(parser, Destination(action.dest, flag, check_output_folder if folder else check_output_file))
    return action


def check_destinations(args: argparse.Namespace) -> None:
    """Check every destination the parsed command declared; OutputError or StoreError at the first
    one that cannot be written."""
    for destination in getattr(args, DESTINATIONS, ()):
        if destination.skip_if and getattr(args, destination.skip_if, False):
            continue
        value = getattr(args, destination.dest, None)
        if value is None and not destination.check_none:
            continue
        destination.check(destination.flag, value)


def _refuse(flag: str, path: Path, problem: str) -> OutputError:
    return OutputError(f"{flag} {path}: {problem}; nothing was run")


def creatable(path: Path) -> str | None:
    """Why `path` (which does not exist) cannot be created with its missing folders, or None when
    it can: its nearest existing ancestor must be a folder this process may write into."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        if ancestor.is_symlink():
            return f"{ancestor} is a broken link"
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"no permission to create anything in {ancestor}"
    return None


def check_output_file(flag: str, value: object) -> None:
    """A file to be written: an existing file (or device) that may be written, or a new one whose
    folders exist or can be created."""
    if str(value) == STDOUT:
        return
    path = Path(str(value)).expanduser()
    if path.is_dir():
        raise _refuse(flag, path, "is a folder; give a file name")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise _refuse(flag, path, "no permission to write it")
        return
    problem = creatable(path)
    if problem:
        raise _refuse(flag, path, f"cannot be created: {problem}")


def check_output_folder(flag: str, value: object) -> None:
    """A folder to be written into: an existing writable folder, or one that can be created."""
    path = Path(str(value)).expanduser()
    if path.exists():
        if not path.is_dir():
            raise _refuse(flag, path, "is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise _refuse(flag, path, "no permission to write into it")
        return
    problem = creatable(path)
    if problem:
        raise _refuse(flag, path, f"cannot be created: {problem}")


def write_output(path: Path, write: Callable[[Path], None], what: str = "the output") -> None:
    """`write(path)` after creating its missing folders; an OSError becomes an OutputError naming
    the path (the caller has stored its rows by then)."""
    try:
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
    except OSError as error:
        raise OutputError(f"cannot write {what} to {path}: {error.strerror or error}") from None
