"""Boot firmware in qemu-system-arm with -icount shift=0 (one instruction is one nanosecond of
virtual time), its UART on a free TCP port of 127.0.0.1, opened through pyserial's socket://."""
from __future__ import annotations

import logging
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol

import serial

from hil.firmware_build.firmware import INPUT_TARGET_SYMBOL, Firmware, symbol_address
from hil.firmware_build.toolchain import require_qemu
from hil.errors import RunnerError
from hil.run.protocol import DeviceLink
from hil.run.runners.base import Runner
from hil.run.runners.emulator import (EmulatorProcess, connect_uart, listening_inode, owns_socket, preload_file,
                                      start_on_free_port, tcp_listening)

CONNECT_TIMEOUT_S = 15.0
NS_PER_INSTRUCTION = 1.0  # -icount shift=0

log = logging.getLogger(__name__)


class QemuPlugin(Protocol):
    """Something that adds arguments to each QEMU a runner starts, such as hil.cycles' profiler
    (which loads its TCG plugin)."""

    def qemu_arguments(self, elf: Path) -> list[str]: ...


class QemuProcess(EmulatorProcess):
    """One qemu-system-arm process serving its UART on a TCP port; always cleaned up by stop()."""

    program = "QEMU"


class QemuRunner(Runner):
    backend = "qemu"
    unit = "instructions"
    can_preload = True  # through QEMU's generic loader device
    last_process: QemuProcess | None = None  # the QEMU most recently started, for inspection
    profiler: QemuPlugin | None = None  # when set (hil.cycles.profile.Profiler), every QEMU started writes a profile

    def ticks_per_unit(self) -> float:
        # SysTick runs on the CPU clock of virtual time; an instruction takes NS_PER_INSTRUCTION ns.
        return self.board.clock_hz * NS_PER_INSTRUCTION / 1e9

    def qemu_command(self, elf: Path, port: int, preload: Path | None = None) -> list[str]:
        """QEMU serving the UART on 127.0.0.1:`port`; the guest starts once a client connects."""
        spec = self.board.qemu
        if spec is None:
            raise RunnerError(f"board {self.board.name} is not an emulated board (no 'qemu' section)")
        return [
            require_qemu(),
            "-machine", spec.machine,
            "-cpu", spec.cpu,
            "-display", "none",
            "-monitor", "none",
            "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
            "-icount", "shift=0",
            "-no-reboot",
            "-kernel", str(elf),
        ] + (
            ["-device", f"loader,file={preload},addr={symbol_address(elf, INPUT_TARGET_SYMBOL):#x},force-raw=on"]
            if preload is not None
            else []
        ) + (self.profiler.qemu_arguments(elf) if self.profiler is not None else [])

    @contextmanager
    def open(self, firmware: Firmware, preload: bytes | None = None) -> Iterator[DeviceLink]:
        with tempfile.TemporaryDirectory(prefix="tinylab-qemu-") as scratch:
            with self._session(firmware, preload_file(Path(scratch), preload)) as link:
                yield link

    @contextmanager
    def serve(self, firmware: Firmware, port: int, preload: bytes | None = None) -> Iterator[QemuProcess]:
        """Start QEMU with the UART on 127.0.0.1:`port` for any client, without connecting to it:
        the firmware boots when the first client connects, and a client that leaves can come
        back. Yields once the port is listening; leaving the context stops QEMU."""
        with tempfile.TemporaryDirectory(prefix="tinylab-qemu-") as scratch:
            qemu = QemuProcess(self.qemu_command(firmware.elf, port, preload_file(Path(scratch), preload)), port)
            self.last_process = qemu
            try:
                self._wait_listening(qemu)
                yield qemu
            finally:
                qemu.stop()

    def _wait_listening(self, qemu: QemuProcess) -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not tcp_listening(qemu.port):
            problem = qemu.exit_problem()
            if problem:
                raise RunnerError(f"board {self.board.name}: {problem}")
            if time.monotonic() > deadline:
                raise RunnerError(
                    f"board {self.board.name}: QEMU did not listen on 127.0.0.1:{qemu.port} within {CONNECT_TIMEOUT_S:g} s"
                )
            time.sleep(0.05)

    @contextmanager
    def _session(self, firmware: Firmware, preload: Path | None) -> Iterator[DeviceLink]:
        qemu, port = self._start(firmware.elf, preload)
        self.transcript.note(f"QEMU boots {firmware.elf.name} (digest {firmware.digest})"
                             + (" with the input preloaded" if preload is not None else ""))
        log.info("board %s: QEMU boots %s", self.board.name, firmware.elf)
        try:
            link = DeviceLink(port, self.board.name, timeout_s=self.timeout_s, health=qemu.exit_problem,
                              transcript=self.transcript)
            link.wait_boot()
            self.target.booted(firmware)
            yield link
        finally:
            self.target.released(keeps_firmware=False)  # no flash: the next open boots anew
            try:
                port.close()
            finally:
                qemu.stop()

    def _start(self, elf: Path, preload: Path | None) -> tuple[QemuProcess, serial.SerialBase]:
        """Start QEMU on a free port and connect; retry on a port taken in the meantime."""

        def launch(port: int) -> QemuProcess:
            self.last_process = QemuProcess(self.qemu_command(elf, port, preload), port)
            return self.last_process

        return start_on_free_port(self.board.name, launch, self._connect)

    def _connect(self, qemu: QemuProcess) -> serial.SerialBase:
        """Connect once our QEMU listens: another lab process may have picked the same port in the
        meantime, and its QEMU would take this client as its own. Until then the port is not
        listening yet, or another process's listener has it: ours will then fail to bind and exit
        with "Address already in use", which _start retries on another port."""
        return connect_uart(self.board.name, qemu, CONNECT_TIMEOUT_S, 0.05, ready=_owns_its_listener)


def _owns_its_listener(qemu: EmulatorProcess) -> bool:
    inode = listening_inode(qemu.port)
    return inode is not None and owns_socket(qemu.process.pid, inode)
