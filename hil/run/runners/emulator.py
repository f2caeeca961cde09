"""What the emulators' runners (QEMU, Renode) share: an emulator process serving the board's UART on
a TCP port of 127.0.0.1, started on a free port (another one when it was taken in the meantime),
and the input to preload written to a file the emulator loads."""
from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import serial

from hil.errors import RunnerError
from hil.run.socket_port import open_url

PORT_ATTEMPTS = 5

P = TypeVar("P", bound="EmulatorProcess")


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
    """In the child before exec: the emulator gets SIGKILL if the lab process dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class EmulatorProcess:
    """One emulator process serving the board's UART on a TCP port; always cleaned up by stop()."""

    program = "the emulator"  # how errors name it: QemuProcess and RenodeProcess say which

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
        """None while the emulator runs; otherwise what it said when it exited."""
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


def connect_uart(board: str, process: EmulatorProcess, timeout_s: float, retry_s: float,
                 ready: Callable[[EmulatorProcess], bool] | None = None) -> serial.SerialBase:
    """Connect to the UART `process` serves on its port, once `ready(process)` where given, within
    `timeout_s` (trying again every `retry_s`); RunnerError when it exits first or is too late."""
    deadline = time.monotonic() + timeout_s

    def too_late() -> RunnerError:
        return RunnerError(f"board {board}: {process.program} did not open its UART on 127.0.0.1:{process.port} "
                           f"within {timeout_s:g} s")

    while True:
        problem = process.exit_problem()
        if problem:
            raise RunnerError(f"board {board}: {problem}")
        if ready is not None and not ready(process):
            if time.monotonic() > deadline:
                raise too_late()
            time.sleep(0.02)
            continue
        try:
            return open_url(f"socket://127.0.0.1:{process.port}", timeout=0.05)
        except serial.SerialException:
            if time.monotonic() > deadline:
                raise too_late() from None
            time.sleep(retry_s)


def start_on_free_port(board: str, launch: Callable[[int], P],
                       connect: Callable[[P], serial.SerialBase]) -> tuple[P, serial.SerialBase]:
    """`launch(port)` an emulator on a free TCP port and `connect` to its UART; where the port was
    taken in the meantime (the error says "in use"), try another one, PORT_ATTEMPTS times in all."""
    last_problem, program = "", "the emulator"
    for _ in range(PORT_ATTEMPTS):
        process = launch(free_tcp_port())
        program = process.program
        try:
            return process, connect(process)
        except RunnerError as error:
            process.stop()
            last_problem = str(error)
            if "in use" not in last_problem:
                raise
        except BaseException:
            process.stop()
            raise
    raise RunnerError(f"board {board}: no free TCP port for {program}'s UART: {last_problem}")


def preload_file(scratch: Path, preload: bytes | None) -> Path | None:
    """The input to preload as a file in `scratch` (emulators load files), or None without one."""
    if preload is None:
        return None
    path = scratch / "input.bin"
    path.write_bytes(preload)
    return path
