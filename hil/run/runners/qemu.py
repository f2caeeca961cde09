"""Boot firmware in qemu-system-arm with -icount shift=0 (one instruction is one nanosecond of
virtual time), its UART on a free TCP port of 127.0.0.1, opened through pyserial's socket://."""
from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import serial

from hil.build.firmware import INPUT_TARGET_SYMBOL, Firmware, symbol_address
from hil.build.toolchain import require_qemu
from hil.errors import RunnerError
from hil.run.protocol import DeviceLink
from hil.run.runners.base import Runner

CONNECT_TIMEOUT_S = 15.0
PORT_ATTEMPTS = 5
NS_PER_INSTRUCTION = 1.0  # -icount shift=0

log = logging.getLogger(__name__)


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_inode(port: int) -> int | None:
    """The socket inode listening on 127.0.0.1:`port`, read from /proc/net/tcp (no connection is
    made: QEMU's first client is the one that sees the boot); None when nothing listens there.
    Off Linux: 0, meaning "assume something listens, owner unknown"."""
    try:
        table = Path("/proc/net/tcp").read_text()
    except OSError:
        return 0
    wanted = f"0100007F:{port:04X}"
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
            return int(fields[9])
    return None


def tcp_listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port` (off Linux: True, assume so)."""
    return listening_inode(port) is not None


def owns_socket(pid: int, inode: int) -> bool:
    """Whether process `pid` holds socket `inode` (True where /proc cannot tell)."""
    if inode == 0:
        return True
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return True
    wanted = f"socket:[{inode}]"
    for fd in fds:
        try:
            if fd.readlink().as_posix() == wanted:
                return True
        except OSError:
            continue
    return False


def _die_with_parent() -> None:
    """In the child before exec: QEMU gets SIGKILL if the lab process dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class QemuProcess:
    """One qemu-system-arm process serving its UART on a TCP port; always cleaned up by stop()."""

    program = "QEMU"  # how errors name the emulator (the Renode runner reuses this class)

    def __init__(self, command: list[str], port: int) -> None:
        self.port = port
        self.command = command
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def output(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()

    def exit_problem(self) -> str | None:
        """None while QEMU runs; otherwise what it said when it exited."""
        code = self.process.poll()
        if code is None:
            return None
        said = self.output()
        return f"{self.program} exited with code {code}" + (f": {said[-400:]}" if said else "")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._stderr.close()


class QemuRunner(Runner):
    backend = "qemu"
    unit = "instructions"
    can_preload = True  # through QEMU's generic loader device
    last_process: QemuProcess | None = None  # the QEMU most recently started, for inspection

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
        )

    @contextmanager
    def open(self, firmware: Firmware, preload: bytes | None = None) -> Iterator[DeviceLink]:
        with tempfile.TemporaryDirectory(prefix="tinylab-qemu-") as scratch:
            preload_file = None
            if preload is not None:
                preload_file = Path(scratch) / "input.bin"
                preload_file.write_bytes(preload)
            with self._session(firmware, preload_file) as link:
                yield link

    @contextmanager
    def serve(self, firmware: Firmware, port: int, preload: bytes | None = None) -> Iterator[QemuProcess]:
        """Start QEMU with the UART on 127.0.0.1:`port` for any client, without connecting to it:
        the firmware boots when the first client connects, and a client that leaves can come
        back. Yields once the port is listening; leaving the context stops QEMU."""
        with tempfile.TemporaryDirectory(prefix="tinylab-qemu-") as scratch:
            preload_file = None
            if preload is not None:
                preload_file = Path(scratch) / "input.bin"
                preload_file.write_bytes(preload)
            qemu = QemuProcess(self.qemu_command(firmware.elf, port, preload_file), port)
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
        last_problem = ""
        for _ in range(PORT_ATTEMPTS):
            tcp_port = free_tcp_port()
            qemu = QemuProcess(self.qemu_command(elf, tcp_port, preload), tcp_port)
            self.last_process = qemu
            try:
                return qemu, self._connect(qemu)
            except RunnerError as error:
                qemu.stop()
                last_problem = str(error)
                if "in use" not in last_problem:
                    raise
            except BaseException:
                qemu.stop()
                raise
        raise RunnerError(f"board {self.board.name}: no free TCP port for QEMU's UART: {last_problem}")

    def _connect(self, qemu: QemuProcess) -> serial.SerialBase:
        """Connect once our QEMU listens: another lab process may have picked the same port in the
        meantime, and its QEMU would take this client as its own."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            problem = qemu.exit_problem()
            if problem:
                raise RunnerError(f"board {self.board.name}: {problem}")
            inode = listening_inode(qemu.port)
            if inode is None or not owns_socket(qemu.process.pid, inode):
                # Not listening yet, or another process's listener: ours will then fail to bind
                # and exit with "Address already in use", which _start retries on another port.
                if time.monotonic() > deadline:
                    raise RunnerError(
                        f"board {self.board.name}: QEMU did not open its UART on 127.0.0.1:{qemu.port} "
                        f"within {CONNECT_TIMEOUT_S:g} s"
                    )
                time.sleep(0.02)
                continue
            try:
                return serial.serial_for_url(f"socket://127.0.0.1:{qemu.port}", timeout=0.05)
            except serial.SerialException:
                if time.monotonic() > deadline:
                    raise RunnerError(
                        f"board {self.board.name}: QEMU did not open its UART on 127.0.0.1:{qemu.port} "
                        f"within {CONNECT_TIMEOUT_S:g} s"
                    ) from None
                time.sleep(0.05)
