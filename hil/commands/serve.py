"""`tinylab serve`: a model's firmware in QEMU, its UART on a pseudo-terminal or a TCP port, for any
host tool to drive (the MLPerf Tiny runner through `tinylab mlperf-runner`)."""
from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

from hil.commands.build import add_model_id_argument, build_model, model_id_for
from hil.errors import LabError
from hil.experiments.models import DEFAULT_MODEL, resolve_model
from hil.interrupts import Terminated, sigterm_as_interrupt
from hil.run.runners.emulator import free_tcp_port
from hil.run.runners.qemu import QemuRunner
from hil.run.uart_bridge import Front, PtyFront, TcpFront, UartBridge, read_banner
from hil.targets.boards import load_board

SUMMARY = "boot a model's firmware in QEMU with its UART on a pseudo-terminal or a TCP port, until stopped"
EXAMPLES = """\
  tinylab serve ../shared/models/vww_96_int8.tflite --pty /tmp/dut
  (then, from another shell: any tool that opens /tmp/dut as a serial port, e.g. pyserial's
   serial.Serial("/tmp/dut"), or the MLPerf Tiny runner: tinylab mlperf-runner --port /tmp/dut ...)
  tinylab serve ../shared/models/kws_ref_model.tflite --board qemu-f746 --tcp 5555
  (a client of socket://127.0.0.1:5555, one at a time, or: printf 'name%' | nc 127.0.0.1 5555)

  The firmware boots at once; its boot banner is read here, so a client's first command gets its
  own reply first. Clients may leave and come back: the firmware keeps its state. The MLPerf Tiny
  reference models get their ids (vww01, kws01, ic01, ad01) and input conversions without
  --model-id. Ctrl-C or SIGTERM stops QEMU.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                        help=f"a .tflite file or a built-in model (default: {DEFAULT_MODEL})")
    parser.add_argument("--board", default="qemu-f746", help="an emulated board (default: qemu-f746)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", type=Path, metavar="PATH",
                       help="make a pseudo-terminal reached at PATH (a link to /dev/pts/N, removed on exit)")
    where.add_argument("--tcp", type=int, metavar="PORT",
                       help="TCP port on 127.0.0.1 for the UART (0: a free one, printed)")
    parser.add_argument("--optimize", help="gcc -O level without the dash (default: the board's)")
    add_model_id_argument(parser)


def _front(args: argparse.Namespace) -> Front:
    return PtyFront(args.pty) if args.pty is not None else TcpFront(args.tcp)


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if not board.emulated:
        raise LabError(f"board {board.name} is not emulated: 'serve' boots QEMU boards only; "
                       f"a real board's UART is already there for other tools (flash it with 'tinylab build')")
    if args.tcp is not None and not 0 <= args.tcp <= 65535:
        raise LabError(f"--tcp {args.tcp}: not a TCP port")
    source = resolve_model(args.model)
    model_id = model_id_for(source, args.model_id)
    # The pty or the port first, so that a path or port that cannot be had is refused before the
    # build; a client that comes early waits until the bridge runs.
    front: Front | None = _front(args)
    try:
        firmware = build_model(board, source, args.model_id, args.optimize)
        with sigterm_as_interrupt(), QemuRunner(board).serve(firmware, free_tcp_port()) as qemu:
            uart = socket.create_connection(("127.0.0.1", qemu.port), timeout=10)
            banner = read_banner(uart, qemu.exit_problem)
            bridge = UartBridge(uart, front, qemu.exit_problem)
            info = {"model": source.name, "model_id": model_id, "board": board.name,
                    "input_conversion": firmware.input_wire.kind, "anomaly_score": firmware.input_wire.anomaly_score,
                    "banner": banner, "qemu_pid": qemu.process.pid}
            if isinstance(front, PtyFront):
                info.update(pty=str(front.link), device=front.device)
            else:
                info.update(host="127.0.0.1", port=front.port, url=f"socket://127.0.0.1:{front.port}")
            if args.json:
                print(json.dumps(info), flush=True)
            else:
                conversion = {"raw": "int8 bytes as sent", "uint8": "uint8 minus 128",
                              "float32": "float32 quantised on the device"}[firmware.input_wire.kind]
                url = f" (socket://{front.where})" if isinstance(front, TcpFront) else f" ({front.device})"
                print(f"serving {source.name} as {model_id} on {board.name}: UART at {front.where}{url}; "
                      f"input: {conversion}{'; results: one anomaly score' if firmware.input_wire.anomaly_score else ''}; "
                      f"booted ({', '.join(banner)}); Ctrl-C or SIGTERM stops it", flush=True)
            try:
                bridge.run()
            finally:
                bridge.close()
                front = None
    except Terminated:  # SIGTERM is how a serving lab is meant to stop: not an error
        if not args.json:
            print("stopped", flush=True)
        return 0
    finally:
        if front is not None:
            front.close()
