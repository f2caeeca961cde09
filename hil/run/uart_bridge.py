"""The UART of a served firmware (`tinylab serve`), offered to other tools: one connection to
QEMU's TCP serial port, held for the whole session, bridged to a pseudo-terminal (for tools that
open a serial port by path, as the MLPerf Tiny runner does with `serial.Serial(path)`) or to a TCP
port of 127.0.0.1 (one client at a time; pyserial's `socket://`).

The boot banner (`m-init-done`, `m-ready`) is read here before any client is served, so that a
client's first command gets its own reply first. Bytes from the firmware while no client is there
(a reply to a client that left) are dropped; a pty's client flushes its input when it opens."""
from __future__ import annotations

import errno
import os
import selectors
import socket
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NoReturn, Protocol

from hil.errors import LabError, RunnerError

BOOT_TIMEOUT_S = 30.0
BANNER_END = b"m-ready"
POLL_S = 0.2


def read_banner(uart: socket.socket, health: Callable[[], str | None], timeout_s: float = BOOT_TIMEOUT_S) -> list[str]:
    """The firmware's boot lines up to its first `m-ready` (QEMU starts the guest when this
    connection is made)."""
    pending = b""
    deadline = time.monotonic() + timeout_s
    uart.settimeout(POLL_S)
    while True:
        lines = [line.strip() for line in pending.split(b"\n")]
        if BANNER_END in lines:
            uart.settimeout(None)
            banner = lines[: lines.index(BANNER_END) + 1]
            return [line.decode("ascii", errors="replace") for line in banner if line]
        try:
            chunk = uart.recv(4096)
        except socket.timeout:
            chunk = None
        if chunk == b"":
            raise RunnerError(f"the firmware's UART closed during boot: {health() or 'QEMU left'}")
        pending += chunk or b""
        problem = health()
        if problem:
            raise RunnerError(problem)
        if time.monotonic() > deadline:
            seen = pending.decode("ascii", errors="replace")[-300:] or "nothing"
            raise RunnerError(f"no m-ready from the firmware within {timeout_s:g} s of boot; it sent: {seen}")


class Front(Protocol):
    """Where clients reach the UART."""

    where: str

    def register(self, selector: selectors.BaseSelector) -> None: ...
    def on_ready(self, key: selectors.SelectorKey, selector: selectors.BaseSelector) -> bytes | None: ...
    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...


@dataclass
class PtyFront:
    """A pseudo-terminal whose slave is reached at `link` (a symbolic link to /dev/pts/N). The
    bridge keeps the slave open itself, raw, so that clients may come and go."""

    link: Path
    master: int = field(init=False)
    slave: int = field(init=False)

    def __post_init__(self) -> None:
        if self.link.is_symlink() and str(os.readlink(self.link)).startswith("/dev/pts/") and not self.link.exists():
            self.link.unlink()  # left by a serve that was killed: its pty is gone
        elif self.link.exists() or self.link.is_symlink():
            raise LabError(f"--pty {self.link}: the path exists; name a new one (it becomes a link to the pty)")
        if not self.link.parent.is_dir():
            raise LabError(f"--pty {self.link}: folder {self.link.parent} does not exist")
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        try:
            self.link.symlink_to(os.ttyname(self.slave))
        except OSError as error:
            self.close()
            raise LabError(f"--pty {self.link}: cannot create the link ({error.strerror})") from None

    @property
    def where(self) -> str:
        return str(self.link)

    @property
    def device(self) -> str:
        return os.ttyname(self.slave)

    def register(self, selector: selectors.BaseSelector) -> None:
        selector.register(self.master, selectors.EVENT_READ, "client")

    def on_ready(self, key: selectors.SelectorKey, selector: selectors.BaseSelector) -> bytes | None:
        try:
            return os.read(self.master, 4096)
        except BlockingIOError:
            return None

    def send(self, data: bytes) -> None:
        try:
            os.write(self.master, data)
        except BlockingIOError:
            pass  # the tty's buffer is full: nobody reads it; a client flushes it when it opens

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link.is_symlink():
            self.link.unlink()


@dataclass
class TcpFront:
    """A TCP port of 127.0.0.1 for one client at a time."""

    port: int
    listener: socket.socket = field(init=False)
    client: socket.socket | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind(("127.0.0.1", self.port))
        except OSError as error:
            self.listener.close()
            if error.errno == errno.EADDRINUSE:
                raise LabError(f"--tcp {self.port}: the port is in use on 127.0.0.1") from None
            raise LabError(f"--tcp {self.port}: {error.strerror}") from None
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]

    @property
    def where(self) -> str:
        return f"127.0.0.1:{self.port}"

    def register(self, selector: selectors.BaseSelector) -> None:
        selector.register(self.listener, selectors.EVENT_READ, "listener")

    def on_ready(self, key: selectors.SelectorKey, selector: selectors.BaseSelector) -> bytes | None:
        if key.data == "listener":
            client, _ = self.listener.accept()
            if self.client is not None:
                client.close()  # one client at a time
                return None
            self.client = client
            selector.register(client, selectors.EVENT_READ, "client")
            return None
        assert self.client is not None
        try:
            data = self.client.recv(4096)
        except OSError:
            data = b""
        if not data:
            selector.unregister(self.client)
            self.client.close()
            self.client = None
            return None
        return data

    def send(self, data: bytes) -> None:
        if self.client is None:
            return  # a reply to a client that left
        try:
            self.client.sendall(data)
        except OSError:
            pass  # it left; its end is seen on the next read

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.listener.close()


class UartBridge:
    """Copies bytes between the firmware's UART (a connected socket) and a Front, until stopped or
    the firmware's side closes."""

    def __init__(self, uart: socket.socket, front: Front, health: Callable[[], str | None]) -> None:
        self.uart = uart
        self.front = front
        self.health = health
        self.selector = selectors.DefaultSelector()
        self.selector.register(uart, selectors.EVENT_READ, "uart")
        front.register(self.selector)

    def run(self) -> NoReturn:
        """Bridge until QEMU stops (a RunnerError saying why) or an exception (a signal) ends it."""
        while True:
            for key, _ in self.selector.select(POLL_S):
                if key.data == "uart":
                    data = self.uart.recv(4096)
                    if not data:
                        raise RunnerError(f"the firmware's UART closed: {self.health() or 'QEMU left'}")
                    self.front.send(data)
                else:
                    data = self.front.on_ready(key, self.selector)
                    if data:
                        self.uart.sendall(data)
            problem = self.health()
            if problem:
                raise RunnerError(problem)

    def close(self) -> None:
        self.selector.close()
        self.front.close()
        self.uart.close()
