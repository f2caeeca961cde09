"""`tinylab serve`: a model's firmware in QEMU, its UART on a TCP port, for any host tool to drive."""
from __future__ import annotations

import argparse
import json
import time

from hil.commands.build import add_model_id_argument, build_model
from hil.errors import LabError, RunnerError
from hil.experiments.models import DEFAULT_MODEL, resolve_model
from hil.interrupts import Terminated, sigterm_as_interrupt
from hil.run.runners.emulator import free_tcp_port
from hil.run.runners.qemu import QemuRunner
from hil.targets.boards import load_board

SUMMARY = "boot a model's firmware in QEMU with its UART on a TCP port of 127.0.0.1, until stopped"
EXAMPLES = """\
  tinylab serve ../shared/models/kws_ref_model.tflite --board qemu-f746 --tcp 5555
  (then, from another shell: any client of socket://127.0.0.1:5555, e.g. the MLPerf Tiny runner
   through pyserial, or: printf 'name%' | nc 127.0.0.1 5555)

  The firmware boots when the first client connects (it sees m-init-done and m-ready); a client
  may leave and another connect. Ctrl-C or SIGTERM stops QEMU.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                        help=f"a .tflite file or a built-in model (default: {DEFAULT_MODEL})")
    parser.add_argument("--board", default="qemu-f746", help="an emulated board (default: qemu-f746)")
    parser.add_argument("--tcp", type=int, required=True, metavar="PORT",
                        help="TCP port on 127.0.0.1 for the UART (0: a free one, printed)")
    parser.add_argument("--optimize", help="gcc -O level without the dash (default: the board's)")
    add_model_id_argument(parser)


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if not board.emulated:
        raise LabError(f"board {board.name} is not emulated: 'serve' boots QEMU boards only; "
                       f"a real board's UART is already there for other tools (flash it with 'tinylab build')")
    if not 0 <= args.tcp <= 65535:
        raise LabError(f"--tcp {args.tcp}: not a TCP port")
    source = resolve_model(args.model)
    firmware = build_model(board, source, args.model_id, args.optimize)
    port = args.tcp or free_tcp_port()
    runner = QemuRunner(board)
    try:
        with sigterm_as_interrupt(), runner.serve(firmware, port) as qemu:
            if args.json:
                print(json.dumps({"model": source.name, "board": board.name, "host": "127.0.0.1", "port": port,
                                  "url": f"socket://127.0.0.1:{port}", "qemu_pid": qemu.process.pid}), flush=True)
            else:
                print(f"serving {source.name} on {board.name}: UART at 127.0.0.1:{port} "
                      f"(socket://127.0.0.1:{port}); Ctrl-C or SIGTERM stops it", flush=True)
            while qemu.process.poll() is None:
                time.sleep(0.2)
            raise RunnerError(f"board {board.name}: {qemu.exit_problem()}")
    except Terminated:  # SIGTERM is how a serving lab is meant to stop: not an error
        if not args.json:
            print("stopped", flush=True)
        return 0
