"""The host side of the firmware's line protocol (MLPerf Tiny conventions plus `m-lab-` lines).

Commands end with `%`; the device answers with `m-` lines (or `e-` for an error) and `m-ready`.
Every read has a deadline; a missing, erroneous or garbled reply raises ProtocolError naming the
board, the command and what came back."""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import serial

from hil.errors import ProtocolError
from hil.run.transcript import Transcript

READY = "m-ready"
BOOT_QUIET_S = 3.0  # silence at boot after which the device is asked whether it is there
NAME_COMMAND = "name%"
NAME_REPLY = "m-name-"
LAB_FIGURE = re.compile(r"^m-lab-([a-z-]+)-\[(.*)\]$")
LAP = re.compile(r"^m-lap-us-([0-9]+)$")
RESULTS = re.compile(r"^m-results-\[(.*)\]$")
HEX_CHUNK_BYTES = 200  # 400 hex digits: a command well inside the firmware's 512-character buffer

log = logging.getLogger(__name__)


class Port(Protocol):
    """What the link needs of a pyserial port (a real one, socket:// or loop://)."""

    timeout: float | None

    @property
    def in_waiting(self) -> int: ...
    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes) -> int | None: ...
    def flush(self) -> None: ...


# Where the input of the inference whose output is reported came from (`m-lab-output-input-[...]`).
LOADED_INPUTS = ("staged", "loaded")  # the bytes the host loaded (a staging copy of them, or in place)
GENERATED_INPUT = "generated"  # the firmware's input generator (hil.firmware_build.inputgen), seeded with the ordinal
NO_INPUT = "none"  # nothing loaded: whatever the input held


@dataclass(frozen=True)
class InferenceReport:
    """What one `infer N W%` measured: timer ticks (in the board's timer unit) and memory.

    `output` is the raw output bytes (`m-lab-output-[HEX]`) of one inference of the command:
    inference number `output_inference` (1: the first, warm-ups included), whose input came from
    `output_input` (LOADED_INPUTS, GENERATED_INPUT or NO_INPUT). With a staging copy of the input
    that is the last inference; without one, the first (the one that ran on the loaded input).
    `results` are the same bytes as int8 values; `values` are the MLPerf Tiny `m-results-[...]`
    numbers (that output dequantised), `lap_us` the two `m-lap-us-` timestamps."""

    count: int
    warmup: int
    ticks_total: int
    ticks_min: int
    ticks_max: int
    stack_high_water: int
    stack_at_call: int
    arena_touched: int
    checksum: str
    output: bytes = b""
    values: tuple[float, ...] = ()
    lap_us: tuple[int, ...] = ()
    output_inference: int = 0
    output_input: str = NO_INPUT

    @property
    def output_of_loaded_input(self) -> bool:
        """Whether the reported output is that of an inference on the bytes the host loaded."""
        return self.output_input in LOADED_INPUTS

    @property
    def results(self) -> tuple[int, ...]:
        """The raw output bytes as int8 values."""
        return tuple(int(v) for v in np.frombuffer(self.output, dtype=np.int8))


class DeviceLink:
    """A connected device: sends commands and parses replies, with a deadline on every read.
    Every line sent and received goes to `transcript` (a fresh one unless given)."""

    def __init__(
        self,
        port: Port,
        board: str,
        *,
        timeout_s: float = 10.0,
        health: Callable[[], str | None] | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.port = port
        self.board = board
        self.transcript = transcript if transcript is not None else Transcript()
        self.timeout_s = timeout_s
        self._health = health or (lambda: None)
        self._pending = b""
        self._received: list[str] = []  # the lines of the exchange in progress, for errors
        self._last_input: tuple[bytes, bool] | None = None  # what load_input loaded last, and how
        port.timeout = 0.05

    # ---- lines ----
    def read_line(self, during: str, timeout_s: float | None = None) -> str:
        """The next non-empty line, without its line ending."""
        limit = timeout_s if timeout_s is not None else self.timeout_s
        return self._next_line(during, time.monotonic() + limit, limit)

    def _next_line(self, during: str, deadline: float, limit: float) -> str:
        while True:
            while b"\n" in self._pending:
                raw, self._pending = self._pending.split(b"\n", 1)
                line = raw.decode("ascii", errors="replace").strip()
                if line:
                    self.transcript.received(line)
                    log.debug("%s < %s", self.board, line)
                    return line
            try:
                # One byte (waiting up to the port timeout), then whatever else has arrived.
                chunk = self.port.read(1)
                if chunk:
                    chunk += self.port.read(self.port.in_waiting)
            except (serial.SerialException, OSError) as error:
                raise self._error(during, f"the connection was lost ({error})") from None
            if chunk:
                self._pending += chunk
                continue
            if time.monotonic() > deadline:
                raise self._error(during, f"no complete reply within {limit:g} s")
            problem = self._health()
            if problem:
                raise self._error(during, problem)

    def read_until_ready(self, during: str, timeout_s: float | None = None) -> list[str]:
        """Lines up to (not including) `m-ready`. An `e-` line or a line that is neither `m-` nor
        `e-` is an error."""
        limit = timeout_s if timeout_s is not None else self.timeout_s
        deadline = time.monotonic() + limit
        lines: list[str] = []
        self._received = lines
        while True:
            line = self._next_line(during, deadline, limit)
            if line == READY:
                return lines
            lines.append(line)
            if line.startswith("e-"):
                self._drain_to_ready(during, deadline, limit)
                raise self._error(during, f"the device reported an error: {line}")
            if not line.startswith("m-"):
                raise self._error(during, f"garbled reply {line!r}")

    def _drain_to_ready(self, during: str, deadline: float, limit: float) -> None:
        """After an `e-` line: skip to `m-ready` so that the next command starts clean."""
        try:
            while self._next_line(during, deadline, limit) != READY:
                pass
        except ProtocolError:
            pass

    def _error(self, during: str, problem: str) -> ProtocolError:
        received = list(self._received)
        partial = self._pending.decode("ascii", errors="replace")
        seen = "; ".join(received + ([partial] if partial else [])) or "nothing"
        if partial:
            self.transcript.received(f"{partial.strip()} (an incomplete line)")
        self.transcript.note(f"error during {during!r}: {problem}")
        log.info("board %s, command %r: %s", self.board, during, problem)
        return ProtocolError(f"board {self.board}, command {during!r}: {problem}; received: {seen[-600:]}")

    # ---- commands ----
    def wait_boot(self, timeout_s: float | None = None) -> list[str]:
        """The boot banner's `m-` lines, up to the first `m-ready`.

        A banner can be cut at its start: a board reset before the port opened, or QEMU (rarely,
        under load) dropping what the guest writes as the first client connects. So at boot a
        line that is not an `m-` or `e-` line (the tail of a cut line) is skipped, and a device
        that has said nothing for BOOT_QUIET_S is asked its name: one waiting for commands
        answers, and its answer (not a late banner's `m-ready`) ends the wait."""
        limit = timeout_s if timeout_s is not None else self.timeout_s
        started = time.monotonic()
        deadline = started + limit
        ask_at: float | None = started + BOOT_QUIET_S if limit > BOOT_QUIET_S else None
        asked = answered = False
        lines: list[str] = []
        self._received = lines
        while True:
            try:
                line = self._next_line("(boot)", min(deadline, ask_at or deadline), limit)
            except ProtocolError as error:
                if ask_at is None or lines or self._pending or "no complete reply" not in str(error):
                    raise
                ask_at, asked = None, True
                self._send("(boot)", NAME_COMMAND)
                continue
            if line == READY:
                if answered or not asked:
                    return [text for text in lines if text.startswith("m-")]
                continue  # a late banner's end: the answer to the question is still to come
            lines.append(line)
            answered = answered or line.startswith(NAME_REPLY)
            if line.startswith("e-"):
                self._drain_to_ready("(boot)", deadline, limit)
                raise self._error("(boot)", f"the device reported an error: {line}")

    def _send(self, during: str, wire: str) -> None:
        self.transcript.sent(wire)
        log.debug("%s > %s", self.board, wire)
        try:
            self.port.write(wire.encode("ascii"))
            self.port.flush()
        except (serial.SerialException, OSError) as error:
            raise self._error(during, f"could not send {wire!r} ({error})") from None

    def send(self, text: str) -> None:
        """Send `text%` without reading the reply."""
        self._send(f"{text}%", f"{text}%")

    def command(self, text: str, timeout_s: float | None = None) -> list[str]:
        """Send `text%` and return the reply lines before `m-ready`."""
        wire = f"{text}%"
        self._send(wire, wire)
        return self.read_until_ready(wire, timeout_s)

    def profile(self) -> dict[str, str]:
        """`profile%` as a dict: profile, model, and each `m-lab-` figure."""
        lines = self.command("profile")
        info: dict[str, str] = {}
        for line in lines:
            match = LAB_FIGURE.match(line)
            if match:
                info[match.group(1)] = match.group(2)
            elif line.startswith("m-profile-["):
                info["profile"] = line[len("m-profile-[") : -1]
            elif line.startswith("m-model-["):
                info["model"] = line[len("m-model-[") : -1]
        return info

    def select(self, workload: str) -> None:
        self.command(f"select {workload}")

    def load_input(self, data: bytes, preloaded: bool = False) -> None:
        """`db load N%` then `db HEX%` in chunks, until the device says `m-load-done`. With
        `preloaded`, the runner has already placed the bytes: `db preloaded N%` only."""
        self._last_input = (data, preloaded)
        if preloaded:
            if "m-load-done" not in self.command(f"db preloaded {len(data)}"):
                raise self._error(f"db preloaded {len(data)}%", "no m-load-done in the reply")
            return
        reply = self.command(f"db load {len(data)}")
        if not any(line == f"m-[Expecting {len(data)} bytes]" for line in reply):
            raise self._error(f"db load {len(data)}%", "no 'm-[Expecting N bytes]' in the reply")
        done = False
        for start in range(0, len(data), HEX_CHUNK_BYTES):
            reply = self.command(f"db {data[start:start + HEX_CHUNK_BYTES].hex()}")
            done = "m-load-done" in reply
        if not done:
            raise self._error("db HEX%", f"the device did not confirm all {len(data)} bytes (no m-load-done)")

    def reload_input(self) -> None:
        """Load the last input again, the way it was loaded (`db preloaded N%` again for a
        preloaded one, whose bytes the firmware still holds in its staging copy)."""
        if self._last_input is None:
            raise ProtocolError(f"board {self.board}: no input was loaded to load again")
        self.load_input(*self._last_input)

    def name(self) -> str:
        """`name%`: the device's name from `m-name-dut-[NAME]`."""
        for line in self.command("name"):
            if line.startswith("m-name-dut-[") and line.endswith("]"):
                return line[len("m-name-dut-[") : -1]
        raise self._error("name%", "no m-name-dut-[...] in the reply")

    def results(self) -> tuple[bytes, tuple[float, ...]]:
        """`results%`: the raw bytes and `m-results-[...]` numbers of the output the last `infer`
        reported (the same inference as its InferenceReport's)."""
        lines = self.command("results")
        figures = {m.group(1): m.group(2) for m in map(LAB_FIGURE.match, lines) if m}
        return self._output(figures, "results%"), self._values(lines, "results%")

    def _output(self, figures: dict[str, str], wire: str) -> bytes:
        try:
            return bytes.fromhex(figures["output"])
        except KeyError:
            raise self._error(wire, "the reply lacks m-lab-output") from None
        except ValueError:
            raise self._error(wire, f"m-lab-output is not hex: {figures['output'][:80]!r}") from None

    def _values(self, lines: list[str], wire: str) -> tuple[float, ...]:
        line = next((m.group(1) for m in map(RESULTS.match, lines) if m), None)
        if line is None:
            raise self._error(wire, "the reply lacks m-results")
        try:
            return tuple(float(v) for v in line.split(",")) if line else ()
        except ValueError as error:
            raise self._error(wire, f"m-results holds a value that is not a number ({error})") from None

    def infer(self, count: int = 1, warmup: int = 1, timeout_s: float | None = None) -> InferenceReport:
        wire = f"infer {count} {warmup}"
        lines = self.command(wire, timeout_s)
        figures = {m.group(1): m.group(2) for m in map(LAB_FIGURE.match, lines) if m}
        has_results = any(RESULTS.match(line) for line in lines)
        needed = ("ticks-total", "ticks-min", "ticks-max", "stack-high-water", "stack-at-call", "arena-touched",
                  "output-inference", "output-input", "checksum", "output")
        missing = [name for name in needed if name not in figures]
        if missing or not has_results or "m-infer-done" not in lines:
            what = ", ".join(missing + ([] if has_results else ["m-results"]) + ([] if "m-infer-done" in lines else ["m-infer-done"]))
            raise self._error(f"{wire}%", f"the reply lacks {what}")
        try:
            return InferenceReport(
                count=count,
                warmup=warmup,
                ticks_total=int(figures["ticks-total"]),
                ticks_min=int(figures["ticks-min"]),
                ticks_max=int(figures["ticks-max"]),
                stack_high_water=int(figures["stack-high-water"]),
                stack_at_call=int(figures["stack-at-call"]),
                arena_touched=int(figures["arena-touched"]),
                checksum=figures["checksum"],
                output=self._output(figures, f"{wire}%"),
                values=self._values(lines, f"{wire}%"),
                lap_us=tuple(int(m.group(1)) for m in map(LAP.match, lines) if m),
                output_inference=int(figures["output-inference"]),
                output_input=figures["output-input"],
            )
        except ValueError as error:
            raise self._error(f"{wire}%", f"a figure is not a number ({error})") from None
