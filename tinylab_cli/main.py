"""The `tinylab` command line: the table of sub-commands, the parser and `main()`.

Most commands are modules of `hil.commands`; `lut` and `nas` need the search (`nas`) and live in
this package. Without `nas` only the commands that need it are unavailable."""
from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import Callable

from engine.errors import TinylabError
from hil.destinations import check_destinations
from hil.interrupts import sigterm_as_interrupt, stop_status

# The one table of sub-commands: name -> module. Each module defines SUMMARY, EXAMPLES,
# add_arguments(parser) and run(args) -> exit code.
COMMANDS: dict[str, str] = {
    "boards": "hil.commands.boards",
    "selftest": "hil.commands.selftest",
    "compile": "hil.commands.compile",
    "run": "hil.commands.run",
    "bench": "hil.commands.bench",
    "results": "hil.commands.results",
    "report": "hil.commands.report",
    "mlperf": "hil.commands.mlperf",
    "build": "hil.commands.build",
    "serve": "hil.commands.serve",
    "mlperf-runner": "hil.commands.mlperf_runner",
    "mlperf-dataset": "hil.commands.mlperf_dataset",
    "lut": "tinylab_cli.lut",
    "nas": "tinylab_cli.nas",
    "nightly": "hil.commands.nightly",
    "tflm": "hil.commands.tflm",
    "cycles": "hil.commands.cycles",
}
# Commands that need a package above the lab: name -> that package. Where it cannot be imported,
# the command is listed as unavailable and refuses to run; every other command works.
NEEDS: dict[str, str] = {
    "lut": "nas",
    "nas": "nas",
}


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def missing_package(name: str) -> str | None:
    """Why the package command `name` needs cannot be imported, or None when it can (or it needs none)."""
    package = NEEDS.get(name)
    if package is None:
        return None
    try:
        importlib.import_module(package)
    except ImportError as error:
        return f"it needs the {package!r} package, which cannot be imported here ({error})"
    return None


def _refuse(why: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise TinylabError(f"unavailable: {why}; the other commands work without it")

    return run


def _add_unavailable(sub: argparse._SubParsersAction, name: str, why: str) -> None:
    summary = f"unavailable: {why}"
    p = sub.add_parser(name, help=summary, description=summary)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("ignored", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(handler=_refuse(why))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinylab",
        description="tinylab: compile int8 networks for Cortex-M, run them on boards or QEMU, "
        "and measure latency and memory.",
        epilog="Run 'tinylab COMMAND --help' for a command's options and an example.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        why = missing_package(name)
        if why is not None:
            _add_unavailable(sub, name, why)
            continue
        module = _command_module(name)
        p = sub.add_parser(
            name,
            help=module.SUMMARY,
            description=module.SUMMARY,
            epilog="example:\n" + module.EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
    return parser


def describe_os_error(error: OSError) -> str:
    """An OSError that no command turned into a message of its own: what failed, on which file."""
    files = [name for name in (error.filename, error.filename2) if name is not None]
    return (error.strerror or str(error)) + (f": {' -> '.join(map(str, files))}" if files else "")


def main(argv: list[str] | None = None) -> int:
    """Parse, check every path the command writes (hil.destinations), run it. A TinylabError, or an
    OSError no command explained, is one message and exit 2; Ctrl-C and SIGTERM stop it cleanly
    (exit 130 and 143)."""
    args = build_parser().parse_args(argv)
    try:
        with sigterm_as_interrupt():
            check_destinations(args)
            return int(args.handler(args) or 0)
    except (TinylabError, OSError) as error:
        said = describe_os_error(error) if isinstance(error, OSError) else str(error)
        print(f"tinylab {args.command}: error: {said}", file=sys.stderr)
        for note in getattr(error, "__notes__", ()):
            print(f"tinylab {args.command}: {note}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        said, status = stop_status(stop)
        print(f"tinylab {args.command}: {said}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
