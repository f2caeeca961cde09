"""Run firmware on a physical board: flash it with pyOCD through the board's debug probe, then talk
to it over the probe's virtual COM port with pyserial. Latency is in DWT cycles.

Two halves, kept apart: `DebugSession` (pyOCD: flash, halt at reset, preload the input, release)
and `BoardRunner.console` (pyserial: open the port, start the target, wait for `m-ready`). The
console half works on any pyserial URL, so it runs against QEMU's `socket://` or `loop://` too.
Every pyOCD call runs with a deadline, so that a probe that stops answering cannot hang the lab.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import serial

from hil.firmware_build.firmware import INPUT_TARGET_SYMBOL, Firmware, symbol_address
from hil.errors import LabError, RunnerError
from hil.run.protocol import DeviceLink
from hil.run.runners.base import Runner
from hil.run.runners.port_holders import is_device_path, port_holders
from hil.run.socket_port import open_url
from hil.run.transcript import Transcript
from hil.targets.boards import list_boards
from hil.targets.boardspec import BoardSpec
from hil.targets.probes import AttachedProbe, find_attached_probes

PROGRAM_TIMEOUT_S = 180.0  # erasing and writing a whole 2 MB flash on a slow probe
PROBE_ENV = "TINYLAB_PROBE"  # a probe's unique id, for the CLI (the pytest plugin has --probe)
PORT_ENV = "TINYLAB_PORT"  # a serial port, for the CLI (the pytest plugin has --port)
# USB ids of the probes whose virtual COM port carries the board's UART.
PROBE_USB_IDS = {
    (0x0483, 0x374B): "ST-LINK/V2-1",
    (0x0483, 0x3752): "ST-LINK/V2-1",
    (0x0483, 0x374E): "STLINK-V3",
    (0x0483, 0x374F): "STLINK-V3",
    (0x0483, 0x3753): "STLINK-V3",
    (0x0483, 0x3754): "STLINK-V3",
    (0x0D28, 0x0204): "DAPLink",
}
_STM32_PART = re.compile(r"^(stm32[a-z]\d{3}[a-z0-9]{2})")

_T = TypeVar("_T")
log = logging.getLogger(__name__)


def with_deadline(board: str | None, step: str, seconds: float, work: Callable[[], _T]) -> _T:
    """Run `work` in a worker thread and wait at most `seconds` for it. A step that overruns is
    a RunnerError naming the board and the step (the stuck thread is left behind, as a daemon)."""
    who = f"board {board}: " if board else ""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # noqa: BLE001 - handed over to the caller below
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"tinylab-{step}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise RunnerError(f"{who}{step} did not finish within {seconds:g} s; is the probe still "
                          f"plugged in and the board powered?")
    if "error" in outcome:
        error = outcome["error"]
        assert isinstance(error, BaseException)
        if isinstance(error, (LabError, KeyboardInterrupt, SystemExit)):
            raise error
        raise _explain(who, step, error) from error
    return outcome.get("value")  # type: ignore[return-value]


def _explain(who: str, step: str, error: BaseException) -> RunnerError:
    """A pyOCD exception as a RunnerError that says what to do (`who`: "board NAME: " or "")."""
    try:
        from pyocd.core import exceptions
    except ImportError:  # pragma: no cover - pyOCD is a dependency
        return RunnerError(f"{who}{step} failed: {type(error).__name__}: {error}")
    if isinstance(error, exceptions.TargetSupportError):
        return RunnerError(f"{who}{step} failed: {error}")
    if isinstance(error, exceptions.ProbeDisconnected):
        return RunnerError(f"{who}the debug probe went away during {step} ({error}); "
                           f"check its USB cable")
    if isinstance(error, exceptions.TransferError):
        return RunnerError(f"{who}{step} failed: the probe could not reach the target "
                           f"({error}); is the board powered, and not held in reset?")
    return RunnerError(f"{who}{step} failed: {type(error).__name__}: {error}")


def pack_hint(target: str) -> str:
    """The `pyocd pack install` command for a target type (the part number without its package)."""
    match = _STM32_PART.match(target)
    return f"pyocd pack install {match.group(1) if match else target}"


def check_target_support(board: BoardSpec) -> None:
    """Refuse a board whose pyOCD target type pyOCD does not know: neither built in nor in an
    installed CMSIS pack (the same lookup pyOCD's Board does when it connects)."""
    if board.pyocd_target is None:
        raise RunnerError(f"board {board.name} has no pyocd_target: it cannot be flashed with pyOCD")
    from pyocd.target import TARGET, normalise_target_type_name
    from pyocd.target.pack.pack_target import ManagedPacks

    name = normalise_target_type_name(board.pyocd_target)
    if name not in TARGET:
        ManagedPacks.populate_target(name)  # reads the packs installed by `pyocd pack install`
    if name not in TARGET:
        raise RunnerError(
            f"board {board.name}: pyOCD does not know the target type '{board.pyocd_target}' (it is "
            f"not built in, and no installed CMSIS pack provides it); install its pack once with "
            f"`{pack_hint(board.pyocd_target)}` (needs the internet), then run again")


def describe_probes(probes: list[AttachedProbe]) -> str:
    if not probes:
        return "none"
    return "; ".join(f"{p.unique_id} ({p.description or p.vendor or 'unknown probe'}"
                     + (f", board {p.board}" if p.board else "") + ")" for p in probes)


def no_probe_message(board: BoardSpec) -> str:
    return (f"board {board.name}: no debug probe attached (pyOCD sees none). Connect the board's "
            f"debug USB port (ST-LINK or DAPLink) to this host; on Linux the probe also needs "
            f"pyOCD's udev rules for USB access. `tinylab boards` (or `pyocd list`) lists the probes "
            f"pyOCD sees")


def choose_probe(board: BoardSpec, wanted: str | None, probes: list[AttachedProbe]) -> AttachedProbe:
    """The probe to use for `board`: the one asked for (by unique id), else the only one attached,
    else the only one whose board id is this board's."""
    if wanted:
        matching = [p for p in probes if p.unique_id.lower() == wanted.lower()]
        if not matching:
            raise RunnerError(f"board {board.name}: debug probe {wanted} is not attached; pyOCD "
                              f"sees: {describe_probes(probes)}")
        return matching[0]
    if not probes:
        raise RunnerError(no_probe_message(board))
    if len(probes) == 1:
        probe = probes[0]
        if probe.board is not None and probe.board != board.name:
            raise RunnerError(f"board {board.name}: the only probe attached, {probe.unique_id}, is on "
                              f"a {probe.board} (board id {probe.board_id}), not a {board.name}")
        return probe
    ours = [p for p in probes if p.board == board.name]
    if len(ours) == 1:
        return ours[0]
    raise RunnerError(f"board {board.name}: several debug probes are attached and none is chosen: "
                      f"{describe_probes(probes)}. Choose one with --probe ID (pytest), "
                      f"{PROBE_ENV}=ID, or a hardware map (`tinylab boards --write-map FILE`)")


def probe_serial_port(probe_id: str) -> str | None:
    """The serial port whose USB serial number is the probe's unique id (ST-LINK, DAPLink)."""
    from serial.tools import list_ports

    mine = [p for p in list_ports.comports()
            if p.serial_number and p.serial_number.lower() == probe_id.lower()]
    return mine[0].device if len(mine) == 1 else None


def find_serial_port(board: str, probe_id: str) -> str:
    """The virtual COM port of probe `probe_id`: the port whose USB serial number is the probe's
    unique id, else the only ST-LINK/DAPLink port on this host."""
    from serial.tools import list_ports

    found = probe_serial_port(probe_id)
    if found is not None:
        return found
    ports = list_ports.comports()
    probe_ports = [p for p in ports if (p.vid, p.pid) in PROBE_USB_IDS]
    if len(probe_ports) == 1:
        return probe_ports[0].device
    seen = ", ".join(f"{p.device} ({p.description})" for p in ports) or "none"
    problem = ("no serial port of an ST-LINK or DAPLink" if not probe_ports
               else "several probe serial ports and none with the probe's serial number")
    raise RunnerError(f"board {board}: cannot tell which serial port is probe {probe_id}'s: "
                      f"{problem} (ports on this host: {seen}); give it with --port (pytest), "
                      f"{PORT_ENV}=PORT, or in the hardware map")


def refuse_busy_port(url: str, board: str) -> None:
    """RunnerError naming the processes that hold the device `url` open, if any: they would read
    the board's replies (a lock keeps out only the programs that take it too)."""
    if not is_device_path(url):
        return
    holders = port_holders(url)
    if holders:
        raise RunnerError(f"board {board}: serial port {url} is held open by "
                          f"{', '.join(map(str, holders))}; close it there (a terminal, another test run?) "
                          f"and run again")


def open_serial_port(url: str, board: str, baud: int = 115200) -> serial.SerialBase:
    """Open a serial port (a device, `socket://HOST:PORT`, `loop://`) for the protocol, locked
    against other users. A missing or busy port (locked, or held open by another process) is a
    RunnerError with the OS error or the holder."""
    refuse_busy_port(url, board)
    try:
        return open_url(url, baudrate=baud, timeout=0.05, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as error:
        reason = str(error)
        if "lock" in reason or getattr(error, "errno", None) == 16:  # EBUSY
            hint = "it is in use by another program (a terminal, another test run?)"
        elif getattr(error, "errno", None) == 2:
            hint = "is the board plugged in? `python -m serial.tools.list_ports` lists the ports"
        elif getattr(error, "errno", None) == 13:
            hint = "no permission: on Linux, add yourself to the 'dialout' group"
        else:
            hint = ""
        raise RunnerError(f"board {board}: cannot open serial port {url}: {reason}"
                          + (f" ({hint})" if hint else "")) from None


class DebugSession:
    """One pyOCD session on one probe: flash, halt at reset, write memory, release. Every call
    has a deadline; `close()` is safe to call twice."""

    def __init__(self, board: BoardSpec, probe_id: str, timeout_s: float) -> None:
        self.board = board
        self.timeout_s = timeout_s
        self.session = None
        self.session = self._step("connecting to the target", lambda: self._connect(probe_id))

    def _step(self, step: str, work: Callable[[], _T], seconds: float | None = None) -> _T:
        return with_deadline(self.board.name, step, seconds or self.timeout_s, work)

    def _connect(self, probe_id: str):  # -> pyocd Session
        from pyocd.core import exceptions
        from pyocd.core.helpers import ConnectHelper

        try:
            # (It prints a line of its own when no probe matches; no redirection of sys.stdout
            # here, since a worker stuck past its deadline would keep it redirected.)
            session = ConnectHelper.session_with_chosen_probe(
                blocking=False, unique_id=probe_id, target_override=self.board.pyocd_target,
                auto_open=False)
        except exceptions.TargetSupportError:
            raise RunnerError(f"board {self.board.name}: pyOCD does not know the target type "
                              f"'{self.board.pyocd_target}'; install its CMSIS pack with "
                              f"`{pack_hint(self.board.pyocd_target or '')}`") from None
        if session is None:
            raise RunnerError(f"board {self.board.name}: debug probe {probe_id} is not attached "
                              f"(pyOCD found no probe with that unique id)")
        try:
            session.open()
        except BaseException:
            session.close()
            raise
        return session

    @property
    def target(self):  # -> pyocd SoCTarget
        assert self.session is not None, "the session is closed"
        return self.session.board.target

    def program(self, elf: Path) -> None:
        from pyocd.flash.file_programmer import FileProgrammer

        self._step("flashing", lambda: FileProgrammer(self.session).program(str(elf), file_format="elf"),
                   max(PROGRAM_TIMEOUT_S, self.timeout_s))

    def reset_and_halt(self) -> None:
        self._step("resetting the target", self.target.reset_and_halt)

    def write(self, address: int, data: bytes) -> None:
        self._step(f"writing {len(data)} B at {address:#010x}",
                   lambda: self.target.write_memory_block8(address, list(data)))

    def release(self) -> None:
        """Let the halted target run from its reset vector, and give the probe back."""
        self._step("starting the target", self.target.resume)
        self.close()

    def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            self._step("closing the debug session", session.close)

    def __enter__(self) -> DebugSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.close()
        except RunnerError:
            if exc_info[0] is None:
                raise


class BoardRunner(Runner):
    backend = "hardware"
    unit = "cycles"
    can_preload = True  # written at the firmware's lab_input_target by the probe, before the target starts

    def __init__(self, board: BoardSpec, *, timeout_s: float = 30.0, probe: str | None = None,
                 port: str | None = None) -> None:
        super().__init__(board, timeout_s=timeout_s)
        self.probe = probe or os.environ.get(PROBE_ENV) or None
        self.port = port or os.environ.get(PORT_ENV) or None

    def ticks_per_unit(self) -> float:
        return 1.0  # the DWT counts CPU cycles

    def attached_probe(self) -> AttachedProbe:
        """The probe this runner uses (asks pyOCD which are attached)."""
        probes = with_deadline(self.board.name, "listing debug probes", self.timeout_s,
                               lambda: find_attached_probes(list_boards()))
        return choose_probe(self.board, self.probe, probes)

    @contextmanager
    def open(self, firmware: Firmware, preload: bytes | None = None) -> Iterator[DeviceLink]:
        if self.port:
            refuse_busy_port(self.port, self.board.name)  # before the probe is asked for anything
        probe = self.attached_probe()
        with_deadline(self.board.name, "looking up the target type", self.timeout_s,
                      lambda: check_target_support(self.board))
        port = self.port or find_serial_port(self.board.name, probe.unique_id)
        address = symbol_address(firmware.elf, INPUT_TARGET_SYMBOL) if preload is not None else None
        with self.debug_session(probe.unique_id) as debug:
            self._flash_unless_held(debug, firmware, probe.unique_id)
            debug.reset_and_halt()
            if preload is not None and address is not None:
                debug.write(address, preload)
            try:
                with self.console(port, start=debug.release) as link:
                    self.target.booted(firmware)
                    yield link
            finally:
                self.target.released(keeps_firmware=True)

    def debug_session(self, probe_id: str) -> DebugSession:
        """A pyOCD session on the probe (flash, reset and halt, write memory, release)."""
        return DebugSession(self.board, probe_id, self.timeout_s)

    def _flash_unless_held(self, debug: DebugSession, firmware: Firmware, probe_id: str) -> None:
        """Flash `firmware` unless the target already holds it (same digest, flashed by this runner)."""
        if self.target.holds(firmware):
            self.transcript.note(f"the target holds {firmware.elf.name} (digest {firmware.digest}): not reflashed")
            log.info("board %s: already holds %s, not reflashed", self.board.name, firmware.digest)
            return
        self.transcript.note(f"probe {probe_id} flashes {firmware.elf.name} (digest {firmware.digest})")
        log.info("board %s: flashing %s through probe %s", self.board.name, firmware.elf, probe_id)
        self.target.lost()  # until the flash is done, what the target holds is unknown
        debug.program(firmware.elf)
        self.target.flashed(firmware)

    @contextmanager
    def console(self, url: str, start: Callable[[], None] | None = None) -> Iterator[DeviceLink]:
        """Open the board's serial port, run `start` (release the target from reset), and yield
        the link once the firmware says `m-ready`. The port is closed on the way out."""
        port = open_serial_port(url, self.board.name, self.board.uart.baud)
        with serial_link(port, self.board.name, timeout_s=self.timeout_s, start=start,
                         transcript=self.transcript) as link:
            yield link


@contextmanager
def serial_link(port: serial.SerialBase, board: str, *, timeout_s: float,
                start: Callable[[], None] | None = None,
                transcript: Transcript | None = None) -> Iterator[DeviceLink]:
    """An open port as a booted DeviceLink: drop stale input, `start` the device, wait for boot."""
    try:
        port.reset_input_buffer()
        if start is not None:
            start()
        link = DeviceLink(port, board, timeout_s=timeout_s, transcript=transcript)
        link.wait_boot()
        yield link
    finally:
        port.close()
