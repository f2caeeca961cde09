"""`tinylab boards`: the board files, and the debug probes attached to this host."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from hil.destinations import add_output_argument
from hil.errors import LabError, RunnerError
from hil.targets.boards import list_boards, load_board
from hil.targets.boardspec import BoardSpec
from hil.targets.hardware_map import map_from_probes, write_hardware_map
from hil.targets.probes import AttachedProbe, find_attached_probes

SUMMARY = "list the board files and the debug probes attached to this host"
EXAMPLES = """\
  tinylab boards                      # every board, then the attached probes
  tinylab boards nucleo-f746zg        # one board
  tinylab boards --no-probes          # skip the USB scan
  tinylab boards --json
  tinylab boards --write-map lab.yaml # a hardware map of the attached boards (pytest --hardware-map)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="BOARD",
                        help="only these boards (names from boards/, or paths of .yaml files)")
    parser.add_argument("--no-probes", action="store_true",
                        help="do not look for debug probes (no USB scan)")
    add_output_argument(parser, "--write-map", metavar="FILE",
                        help="write a hardware map (YAML) of the attached probes, matched to board "
                        "files by board id, for `pytest --hardware-map FILE`")


def run(args: argparse.Namespace) -> int:
    if args.write_map is not None:
        return write_map(args)
    boards = [load_board(name) for name in args.names] if args.names else list_boards()
    probes: list[AttachedProbe] = []
    probe_error: str | None = None
    if not args.no_probes:
        try:
            # Match probes against every board file, even when only some are listed.
            probes = find_attached_probes(list_boards() if args.names else boards)
        except RunnerError as error:
            probe_error = str(error)
    if args.json:
        print(json.dumps({
            "boards": [board_json(board) for board in boards],
            "probes": [asdict(probe) for probe in probes],
            "probe_error": probe_error,
        }, indent=2))
        return 0
    print(board_table(boards))
    if not args.no_probes:
        print()
        print(probe_lines(probes, probe_error))
    return 0


def write_map(args: argparse.Namespace) -> int:
    """`--write-map FILE`: the attached probes that match a board file, with their serial ports."""
    from hil.run.runners.board import probe_serial_port

    if args.no_probes or args.names:
        raise LabError("--write-map maps every attached probe: give it without --no-probes and "
                       "without board names")
    probes = find_attached_probes(list_boards())
    # A port only where its USB serial number names the probe; else the runner finds it later.
    hardware_map, unmatched = map_from_probes(probes, list_boards(), probe_serial_port)
    path = write_hardware_map(args.write_map, hardware_map)
    if args.json:
        print(json.dumps({
            "hardware_map": str(path),
            "boards": [entry.as_yaml() for entry in hardware_map.entries],
            "unmatched_probes": [asdict(probe) for probe in unmatched],
        }, indent=2))
        return 0
    if not probes:
        print(f"No debug probes attached: wrote an empty hardware map to {path}")
    else:
        print(f"Wrote a hardware map of {len(hardware_map.entries)} board(s) to {path}")
        for entry in hardware_map.entries:
            print(f"  {entry.board.name:<16} probe {entry.probe}  port {entry.port or '(found at run time)'}")
    for probe in unmatched:
        why = (f"board id {probe.board_id} is in no board file" if probe.board_id
               else "it does not tell its board id")
        print(f"  left out probe {probe.unique_id} ({probe.description or probe.vendor}): {why}")
    return 0


def board_json(board: BoardSpec) -> dict[str, Any]:
    data = asdict(board)
    data["path"] = str(board.path)
    data["pyocd_board_ids"] = list(board.pyocd_board_ids)
    data["emulated"] = board.emulated
    data["backend"] = board.backend
    return data


def board_table(boards: list[BoardSpec]) -> str:
    header = ("BOARD", "CORE", "CLOCK", "SRAM", "FLASH", "BACKEND", "RUNS ON")
    rows = [header]
    for board in boards:
        runs_on = (f"QEMU {board.qemu.machine}" if board.qemu is not None
                   else f"pyOCD {board.pyocd_target}")
        rows.append((
            board.name,
            board.core,
            f"{board.clock_hz / 1e6:g} MHz",
            f"{board.sram_bytes / 1024:g} KB",
            f"{board.flash_bytes / 1024:g} KB",
            board.backend,
            runs_on,
        ))
    return _align(rows, right=frozenset({2, 3, 4}))


def probe_lines(probes: list[AttachedProbe], error: str | None) -> str:
    if error is not None:
        return f"Debug probes: not listed ({error})"
    if not probes:
        return "Debug probes: none attached"
    rows = [("PROBE", "DESCRIPTION", "BOARD ID", "BOARD FILE")]
    for probe in probes:
        if probe.board is not None:
            board = probe.board
        elif probe.board_id is not None:
            board = "(no board file has this id)"
        else:
            board = "(board id unknown)"
        rows.append((probe.unique_id, probe.description or probe.vendor, probe.board_id or "-",
                     board))
    return "Debug probes:\n" + _align(rows, indent="  ")


def _align(rows: list[tuple[str, ...]], right: frozenset[int] = frozenset(),
           indent: str = "") -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.rjust(width) if i in right else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)
