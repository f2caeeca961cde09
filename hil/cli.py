"""The `tinylab` command line: one sub-command per module in `hil.commands`."""
from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from engine.errors import EngineError
from hil.errors import LabError

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
    "lut": "hil.commands.lut",
    "nightly": "hil.commands.nightly",
}


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinylab",
        description="tinylab: compile int8 networks for Cortex-M, run them on boards or QEMU, "
        "and measure latency and memory.",
        epilog="Run 'tinylab COMMAND --help' for a command's options and an example.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
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
    except (LabError, EngineError) as error:
        print(f"tinylab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tinylab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
