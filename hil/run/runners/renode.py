"""Boot firmware in Renode on the board file's platform (`renode.platform`), its UART on a TCP port
of 127.0.0.1 through Renode's server socket terminal, opened through pyserial's socket://.

Renode is a functional simulator: it counts instructions, not cycles. The generated script sets
the CPU's PerformanceInMips to the board's clock in MHz, so that one cycle of the board's clock in
Renode's virtual time is one instruction, and the DWT cycle counter (where the platform has one,
at the board's clock) counts instructions. Latencies are stored as instructions."""
from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import serial

from hil.firmware_build.firmware import INPUT_TARGET_SYMBOL, Firmware, symbol_address
from hil.errors import ProtocolError, RunnerError
from hil.run.protocol import READY, DeviceLink
from hil.run.runners.base import Runner
from hil.run.runners.emulator import EmulatorProcess, connect_uart, preload_file, start_on_free_port
from hil.targets.boardspec import BoardSpec

RENODE = "renode"
TERMINAL = "term"
CONNECT_TIMEOUT_S = 60.0  # Renode (a .NET program) takes a while to start
HANDSHAKE_EVERY_S = 1.0
UART_PREFIXES = {4: "uart", 5: "uart", 7: "uart", 8: "uart"}  # the STM32 UARTs without an S


def require_renode() -> str:
    path = shutil.which(RENODE)
    if path is None:
        raise RunnerError("renode is not on the PATH (https://renode.io: install its package or portable build)")
    return path


def uart_peripheral(board: BoardSpec) -> str:
    """Renode's name of the board's UART in the platform: sysbus.usart3, sysbus.uart4, ..."""
    usart = board.uart.stm32
    if usart is None:
        raise RunnerError(f"board {board.name}: no Renode name for its {board.uart.kind} UART at {board.uart.base:#x}")
    return f"sysbus.{UART_PREFIXES.get(usart.number, 'usart')}{usart.number}"


def _path(path: Path) -> str:
    text = str(path)
    if any(c.isspace() for c in text) or '"' in text:
        raise RunnerError(f"Renode scripts cannot name a path with spaces or quotes: {text}")
    return f"@{text}"


@dataclass(frozen=True)
class RenodeScript:
    """The .resc script that boots one firmware: platform, ELF, optional preloaded input, UART
    terminal on a TCP port, and start."""

    board: BoardSpec
    elf: Path
    port: int
    preload: Path | None = None
    preload_address: int | None = None

    def text(self) -> str:
        board = self.board
        if board.renode is None:
            raise RunnerError(f"board {board.name} has no 'renode' section (renode.platform) in {board.path}")
        lines = [
            f"# tinylab: {board.name} in Renode; UART on 127.0.0.1:{self.port}",
            f'mach create "{board.name}"',
            f"machine LoadPlatformDescription @{board.renode.platform}",
            f"sysbus.cpu PerformanceInMips {max(1, round(board.clock_hz / 1e6))}",
            f"sysbus LoadELF {_path(self.elf)}",
        ]
        if self.preload is not None:
            if self.preload_address is None:
                raise RunnerError("a preloaded input needs the address of the firmware's lab_input_target")
            lines.append(f"sysbus LoadBinary {_path(self.preload)} {self.preload_address:#x}")
        lines += [
            f'emulation CreateServerSocketTerminal {self.port} "{TERMINAL}" false',
            f"connector Connect {uart_peripheral(board)} {TERMINAL}",
            "start",
        ]
        return "\n".join(lines) + "\n"


def renode_command(script: Path) -> list[str]:
    """Renode headless (no GUI, no monitor on stdin), running the script."""
    _path(script)  # refuses spaces and quotes
    return [require_renode(), "--disable-xwt", "--hide-monitor", "--plain", str(script)]


class RenodeProcess(EmulatorProcess):
    program = "Renode"


class RenodeRunner(Runner):
    backend = "renode"
    unit = "instructions"
    can_preload = True  # sysbus LoadBinary before start

    def ticks_per_unit(self) -> float:
        return 1.0  # the DWT at the board's clock, with PerformanceInMips = clock MHz

    @contextmanager
    def open(self, firmware: Firmware, preload: bytes | None = None) -> Iterator[DeviceLink]:
        require_renode()
        with tempfile.TemporaryDirectory(prefix="tinylab-renode-") as scratch:
            renode, port = self._start(firmware, Path(scratch), preload_file(Path(scratch), preload))
            try:
                self.transcript.note(f"Renode boots {firmware.elf.name} (digest {firmware.digest})")
                link = DeviceLink(port, self.board.name, timeout_s=self.timeout_s, health=renode.exit_problem,
                                  transcript=self.transcript)
                self._handshake(link)
                yield link
            finally:
                try:
                    port.close()
                finally:
                    renode.stop()

    def _start(self, firmware: Firmware, scratch: Path, preload: Path | None) -> tuple[RenodeProcess, serial.SerialBase]:
        """Start Renode on a free port and connect; retry on a port taken in the meantime."""
        address = symbol_address(firmware.elf, INPUT_TARGET_SYMBOL) if preload is not None else None

        def launch(port: int) -> RenodeProcess:
            script = scratch / "tinylab.resc"
            script.write_text(RenodeScript(self.board, firmware.elf, port, preload, address).text())
            return RenodeProcess(renode_command(script), port)

        return start_on_free_port(self.board.name, launch, self._connect)

    def _connect(self, renode: RenodeProcess) -> serial.SerialBase:
        return connect_uart(self.board.name, renode, CONNECT_TIMEOUT_S, 0.2)

    def _handshake(self, link: DeviceLink) -> None:
        """Renode starts the firmware before we connect, so its boot banner may be gone: send
        `name%` until the device answers, then drop whatever else was queued."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            link.port.write(b"name%")
            link.port.flush()
            try:
                while not link.read_line("name% (handshake)", HANDSHAKE_EVERY_S).startswith("m-name-dut-"):
                    pass
                while link.read_line("name% (handshake)", HANDSHAKE_EVERY_S) != READY:
                    pass
                break
            except ProtocolError as error:
                if time.monotonic() > deadline or "no complete reply" not in str(error):
                    raise  # out of time, or Renode exited or dropped the connection
        try:  # a second reply, when the firmware saw two of our name% commands
            while True:
                link.read_line("name% (handshake)", 0.3)
        except ProtocolError:
            pass
