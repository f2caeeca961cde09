"""The host side of the MLPerf Tiny protocol as the official runner speaks it, written from the
protocol alone (no hil code): commands end with '%', replies are lines up to 'm-ready', inputs go
in `db` lines of at most 31 bytes. Over a TCP socket or a serial port opened by path."""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import serial

REPO = Path(__file__).resolve().parents[1]
RUNNER_CHUNK_BYTES = 31  # the runner's DUT.load sends at most 31 bytes per `db` line
RESULTS = re.compile(r"^m-results-\[([^]]+)\]$")


class MlperfHost:
    """Lines, commands, loads; subclasses say how bytes go and come."""

    timeout_s = 60.0

    def __init__(self) -> None:
        self.pending = b""

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _read(self) -> bytes:
        """What has arrived (b"" after a short wait with nothing)."""
        raise NotImplementedError

    def line(self) -> str:
        deadline = time.monotonic() + self.timeout_s
        while b"\n" not in self.pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"no complete line within {self.timeout_s} s; got {self.pending[-200:]!r}")
            self.pending += self._read()
        raw, self.pending = self.pending.split(b"\n", 1)
        return raw.decode("ascii").strip()

    def send(self, command: str) -> list[str]:
        self._write(f"{command}%".encode("ascii"))
        lines = []
        while (line := self.line()) != "m-ready":
            if line:
                lines.append(line)
        return lines

    def load(self, data: bytes) -> list[str]:
        assert self.send(f"db load {len(data)}") == [f"m-[Expecting {len(data)} bytes]"]
        reply: list[str] = []
        for start in range(0, len(data), RUNNER_CHUNK_BYTES):
            reply = self.send(f"db {data[start:start + RUNNER_CHUNK_BYTES].hex()}")
        return reply

    @staticmethod
    def results(lines: list[str]) -> list[str]:
        """The `m-results-[...]` values as printed."""
        return next(m for m in map(RESULTS.match, lines) if m).group(1).split(",")

    @staticmethod
    def output(lines: list[str]) -> bytes:
        """The raw output bytes of `m-lab-output-[HEX]`."""
        return bytes.fromhex(next(line[len("m-lab-output-["):-1] for line in lines if line.startswith("m-lab-output-[")))


class SocketHost(MlperfHost):
    def __init__(self, port: int) -> None:
        super().__init__()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=0.1)

    def _write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self) -> bytes:
        try:
            chunk = self.sock.recv(4096)
        except socket.timeout:
            return b""
        if not chunk:
            raise ConnectionError("the device closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


class SerialHost(MlperfHost):
    """As the runner opens a port: `serial.Serial(path, baud, timeout=0.1)`, input flushed."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.port = serial.Serial(str(path), 115200, timeout=0.1)
        self.port.reset_input_buffer()

    def _write(self, data: bytes) -> None:
        self.port.write(data)

    def _read(self) -> bytes:
        return self.port.read(1) + self.port.read(self.port.in_waiting)

    def close(self) -> None:
        self.port.close()


@contextmanager
def served(*args: str) -> Iterator[dict]:
    """`tinylab serve ARGS --json` in a process of its own: yields what it printed when ready,
    then stops it with SIGTERM and checks it exited 0."""
    server = subprocess.Popen([sys.executable, "-m", "tinylab_cli", "serve", *args, "--json"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line, server.stderr.read()
        yield json.loads(line)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=20)
        finally:
            if server.poll() is None:
                server.kill()
    assert code == 0, server.stderr.read()
