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
    "lut": "tinylab_cli.lut",
    "nas": "tinylab_cli.nas",
    "nightly": "hil.commands.nightly",
    "tflm": "hil.commands.tflm",
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except TinylabError as error:
        print(f"tinylab {args.command}: error: {error}", file=sys.stderr)
        for note in getattr(error, "__notes__", ()):
            print(f"tinylab {args.command}: {note}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tinylab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
