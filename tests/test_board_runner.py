"""The board runner without a board: pyOCD's real API with no probe attached, pyserial's real
ports, and the runner's serial side driven over QEMU (socket://) and pyserial's loop://."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from hil.firmware_build.firmware import Firmware, build_firmware
from hil.errors import ProtocolError, RunnerError
from hil.experiments.calibration import CalibrationPlan
from hil.run.runners import runner_for
from hil.run.runners.board import (
    BoardRunner,
    DebugSession,
    check_target_support,
    choose_probe,
    find_serial_port,
    open_serial_port,
    serial_link,
    with_deadline,
)
from hil.run.runners.emulator import free_tcp_port
from hil.run.runners.qemu import QemuProcess, QemuRunner
from hil.targets.boards import list_boards, load_board
from hil.targets.hardware_map import HardwareMapEntry
from hil.targets.probes import AttachedProbe, find_attached_probes
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu

NUCLEO = "nucleo-f746zg"


@pytest.fixture(scope="module")
def no_probes() -> None:
    """These tests need a host with no debug probe attached (pyOCD is asked, for real)."""
    probes = find_attached_probes(list_boards())
    if probes:
        pytest.skip(f"debug probes are attached: {[p.unique_id for p in probes]}")


def fake_elf_firmware(board_name: str) -> Firmware:
    board = load_board(board_name)
    return Firmware(board, Path("/nonexistent/firmware.elf"), None, "0" * 32, "O2", "none")


# --- the pyOCD side, with no probe attached ----------------------------------------------------

def test_hardware_boards_get_the_board_runner():
    runner = runner_for(load_board(NUCLEO))
    assert isinstance(runner, BoardRunner)
    assert (runner.backend, runner.unit, runner.can_preload) == ("hardware", "cycles", True)
    assert runner.ticks_per_unit() == 1 and str(runner.latency(12345)) == "12,345 cycles"


def test_runner_for_a_hardware_map_entry_carries_its_probe_and_port():
    entry = HardwareMapEntry(load_board(NUCLEO), "0670FF3136", "/dev/ttyACM7")
    runner = runner_for(entry)
    assert isinstance(runner, BoardRunner) and (runner.probe, runner.port) == ("0670FF3136", "/dev/ttyACM7")
    assert runner_for(load_board(NUCLEO), probe="AB12").probe == "AB12"
    assert isinstance(runner_for(HardwareMapEntry(load_board("qemu-f746"))), QemuRunner)
    with pytest.raises(RunnerError, match=r"board qemu-f746: its 'qemu' runner takes no probe or "
                                          r"serial port"):
        runner_for(load_board("qemu-f746"), port="/dev/ttyACM7")


def test_no_probe_attached_is_a_clear_error(no_probes):
    runner = BoardRunner(load_board(NUCLEO), timeout_s=20)
    started = time.monotonic()
    with pytest.raises(RunnerError) as caught:
        with runner.open(fake_elf_firmware(NUCLEO)):
            pass
    message = str(caught.value)
    assert message.startswith(f"board {NUCLEO}: no debug probe attached (pyOCD sees none)")
    assert "Connect the board's debug USB port" in message and "tinylab boards" in message
    assert time.monotonic() - started < 15


def test_a_chosen_probe_that_is_not_attached_is_named(no_probes):
    runner = BoardRunner(load_board(NUCLEO), probe="0670FF3136", timeout_s=20)
    with pytest.raises(RunnerError, match=r"board nucleo-f746zg: debug probe 0670FF3136 is not "
                                          r"attached; pyOCD sees: none"):
        runner.attached_probe()


def test_pyocd_session_without_the_probe_is_a_clear_error(no_probes):
    # ConnectHelper.session_with_chosen_probe itself, with a unique id nothing matches.
    with pytest.raises(RunnerError, match=r"board nucleo-f412zg: debug probe 0670FF3136 is not "
                                          r"attached \(pyOCD found no probe with that unique id\)"):
        DebugSession(load_board("nucleo-f412zg"), "0670FF3136", timeout_s=20)


def test_the_probe_can_be_chosen_by_environment(monkeypatch):
    monkeypatch.setenv("TINYLAB_PROBE", "ABC123")
    monkeypatch.setenv("TINYLAB_PORT", "/dev/ttyACM7")
    runner = BoardRunner(load_board(NUCLEO))
    assert (runner.probe, runner.port) == ("ABC123", "/dev/ttyACM7")
    assert BoardRunner(load_board(NUCLEO), probe="X", port="Y").probe == "X"


@needs_arm_gcc
def test_selftest_on_a_board_without_its_probe_fails_cleanly(no_probes, capsys):
    assert main(["selftest", "--board", NUCLEO, "--no-store"]) == 2
    captured = capsys.readouterr()
    assert f"tinylab selftest: error: board {NUCLEO}: no debug probe attached" in captured.err
    assert "Traceback" not in captured.err + captured.out


def probe(unique_id: str, board: str | None, board_id: str | None = None) -> AttachedProbe:
    return AttachedProbe(unique_id, "STM32 STLink", "STMicroelectronics", board_id, board)


def test_choosing_among_several_probes():
    board = load_board(NUCLEO)
    mine, other = probe("AAA1", NUCLEO, "0816"), probe("BBB2", "nucleo-f412zg", "0826")
    assert choose_probe(board, None, [other, mine]) == mine
    assert choose_probe(board, "bbb2", [other, mine]) == other  # asked for: case does not matter
    with pytest.raises(RunnerError, match=r"several debug probes are attached and none is chosen: "
                                          r"AAA1 .*; BBB2 .*--probe ID"):
        choose_probe(board, None, [probe("AAA1", None), probe("BBB2", None)])
    with pytest.raises(RunnerError, match="the only probe attached, BBB2, is on a nucleo-f412zg"):
        choose_probe(board, None, [other])


def test_a_target_without_its_pack_gets_the_install_command():
    board = load_board(NUCLEO)  # stm32f746zgtx: in the STM32F7xx_DFP pack, not built in
    from pyocd.target import TARGET
    from pyocd.target.pack.pack_target import ManagedPacks

    ManagedPacks.populate_target("stm32f746zgtx")
    if "stm32f746zgtx" in TARGET:
        pytest.skip("the STM32F7 pack is installed on this host")
    with pytest.raises(RunnerError) as caught:
        check_target_support(board)
    message = str(caught.value)
    assert "pyOCD does not know the target type 'stm32f746zgtx'" in message
    assert "`pyocd pack install stm32f746zg`" in message
    made_up = dataclasses.replace(board, pyocd_target="stm32f999zztx")
    with pytest.raises(RunnerError, match="`pyocd pack install stm32f999zz`"):
        check_target_support(made_up)
    check_target_support(load_board("nucleo-f412zg"))  # stm32f412xg is built into pyOCD


def test_a_pyocd_step_that_hangs_is_cut_off():
    started = time.monotonic()
    with pytest.raises(RunnerError, match=r"board b: flashing did not finish within 0.2 s"):
        with_deadline("b", "flashing", 0.2, lambda: time.sleep(3))
    assert time.monotonic() - started < 1


def test_pyocd_errors_are_explained():
    from pyocd.core.exceptions import ProbeDisconnected, TransferError

    def fail(error: Exception):
        def work() -> None:
            raise error
        return work

    with pytest.raises(RunnerError, match=r"board b: resetting the target failed: the probe could "
                                          r"not reach the target \(swd\); is the board powered"):
        with_deadline("b", "resetting the target", 5, fail(TransferError("swd")))
    with pytest.raises(RunnerError, match="the debug probe went away during flashing"):
        with_deadline("b", "flashing", 5, fail(ProbeDisconnected("gone")))
    assert with_deadline("b", "adding", 5, lambda: 1 + 1) == 2


# --- the serial side: real pyserial ports -------------------------------------------------------

def test_a_missing_serial_port_is_a_clear_error():
    with pytest.raises(RunnerError) as caught:
        open_serial_port("/dev/ttyTINYLAB-absent", NUCLEO)
    message = str(caught.value)
    assert message.startswith(f"board {NUCLEO}: cannot open serial port /dev/ttyTINYLAB-absent: ")
    assert "No such file or directory" in message and "is the board plugged in?" in message


def test_a_busy_serial_port_is_a_clear_error():
    controller, device = os.openpty()
    try:
        name = os.ttyname(device)
        first = open_serial_port(name, NUCLEO)
        try:
            with pytest.raises(RunnerError, match=rf"board {NUCLEO}: cannot open serial port {name}: "
                                                  r".*lock.*\(it is in use by another program"):
                open_serial_port(name, NUCLEO)
        finally:
            first.close()
        open_serial_port(name, NUCLEO).close()  # free again
    finally:
        os.close(controller)
        os.close(device)


def test_the_probe_port_not_found_says_how_to_give_it():
    from serial.tools import list_ports

    if any((p.vid, p.pid) == (0x0483, 0x374B) for p in list_ports.comports()):
        pytest.skip("an ST-LINK serial port is present")
    with pytest.raises(RunnerError, match=r"board nucleo-f746zg: cannot tell which serial port is "
                                          r"probe 0670FF3136's: .*--port \(pytest\), TINYLAB_PORT"):
        find_serial_port(NUCLEO, "0670FF3136")


def test_the_serial_side_over_loop_boots_and_reports_a_silent_board():
    port = open_serial_port("loop://", NUCLEO)
    port.write(b"stale bytes from before the reset\r\n")
    started = []

    def start() -> None:  # what releasing the target from reset makes the firmware print
        started.append(True)
        port.write(b"m-init-done\r\nm-ready\r\n")

    with serial_link(port, NUCLEO, timeout_s=0.3, start=start) as link:
        assert started == [True]
        # loop:// echoes "name%" back: no complete line, as from a board that does not answer.
        with pytest.raises(ProtocolError, match=r"board nucleo-f746zg, command 'name%': no "
                                                r"complete reply within 0.3 s; received: name%"):
            link.command("name")
    assert not port.is_open


def test_a_board_that_never_boots_times_out_and_closes_its_port():
    runner = BoardRunner(load_board(NUCLEO), timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(ProtocolError, match=r"command '\(boot\)': no complete reply within 0.3 s; "
                                            r"received: nothing"):
        with runner.console("loop://"):
            pass
    assert time.monotonic() - started < 3


def qmp(port: int, *commands: str) -> None:
    """Send QMP commands to a QEMU (its monitor protocol), waiting for each reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        stream = connection.makefile("rwb")
        json.loads(stream.readline())  # the greeting
        for command in commands:
            stream.write(json.dumps({"execute": command}).encode() + b"\n")
            stream.flush()
            while True:
                reply = json.loads(stream.readline())
                if "return" in reply or "error" in reply:
                    assert "error" not in reply, reply
                    break


def when_listening(open_it, deadline_s: float = 10.0):
    limit = time.monotonic() + deadline_s
    while True:
        try:
            return open_it()
        except (RunnerError, OSError):
            if time.monotonic() > limit:
                raise
            time.sleep(0.05)


@contextmanager
def halted_qemu(board_name: str):
    """QEMU started halted (-S), like a target the probe holds at its reset vector: yields the
    UART's socket:// URL and a function that lets it run (QMP `cont`)."""
    board = load_board(board_name)
    firmware = build_firmware(board, CalibrationPlan().sources())
    uart, monitor = free_tcp_port(), free_tcp_port()
    command = [a.replace("wait=on", "wait=off") for a in QemuRunner(board).qemu_command(firmware.elf, uart)]
    command += ["-S", "-qmp", f"tcp:127.0.0.1:{monitor},server=on,wait=off"]
    qemu = QemuProcess(command, uart)
    try:
        when_listening(lambda: qmp(monitor, "qmp_capabilities"))
        yield f"socket://127.0.0.1:{uart}", lambda: qmp(monitor, "qmp_capabilities", "cont")
        assert qemu.exit_problem() is None
    finally:
        qemu.stop()


@needs_arm_gcc
@needs_qemu
def test_the_serial_side_over_qemu_socket_talks_the_protocol():
    """The runner's console: open the port, release the target, wait for m-ready, talk."""
    with halted_qemu("qemu-f746") as (url, release):
        runner = BoardRunner(load_board("qemu-f746"), timeout_s=10)
        with runner.console(url, start=release) as link:
            assert link.command("name") == ["m-name-dut-[tinylab qemu-f746]"]
            link.load_input(bytes(range(64)))
            link.select("touch")
            report = link.infer(count=1, warmup=1)
            assert report.arena_touched == 300 and report.ticks_min > 0
            assert runner.latency(report.ticks_min).unit == "cycles"
            port = link.port
        assert not port.is_open


@needs_arm_gcc
@needs_qemu
def test_a_target_never_released_is_a_boot_timeout_over_qemu_socket():
    with halted_qemu("netduinoplus2") as (url, release):
        runner = BoardRunner(load_board("netduinoplus2"), timeout_s=0.5)
        with pytest.raises(ProtocolError, match=r"board netduinoplus2, command '\(boot\)': no "
                                                r"complete reply within 0.5 s; received: nothing"):
            with runner.console(url):
                pass
        port = open_serial_port(url, "netduinoplus2")  # the port is free again: go on by hand
        with serial_link(port, "netduinoplus2", timeout_s=10, start=release) as link:
            assert link.command("name") == ["m-name-dut-[tinylab netduinoplus2]"]


# --- the target lifecycle: a board is flashed once per firmware ---------------------------------

class QmpProbe:
    """Stands in for pyOCD's session on the one part there is no board for: the probe. QEMU's
    monitor halts, resets and starts the emulated target; `program` only notes the ELF."""

    def __init__(self, monitor: int, programmed: list[Path]) -> None:
        self.monitor, self.programmed = monitor, programmed

    def program(self, elf: Path) -> None:
        self.programmed.append(elf)

    def reset_and_halt(self) -> None:
        qmp(self.monitor, "qmp_capabilities", "stop", "system_reset")

    def release(self) -> None:
        qmp(self.monitor, "qmp_capabilities", "cont")

    def __enter__(self) -> QmpProbe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class RunnerOnQemuProbe(BoardRunner):
    """The board runner with its probe replaced by QmpProbe: the rest (target-type lookup,
    serial port, boot, protocol, flash-once bookkeeping) is the real code."""

    def __init__(self, board, monitor: int, uart_url: str) -> None:
        super().__init__(board, timeout_s=10, probe="QEMU0001", port=uart_url)
        self.monitor, self.programmed = monitor, []

    def attached_probe(self) -> AttachedProbe:
        return probe("QEMU0001", self.board.name)

    def debug_session(self, probe_id: str) -> QmpProbe:
        return QmpProbe(self.monitor, self.programmed)


@needs_arm_gcc
@needs_qemu
def test_the_board_runner_flashes_a_firmware_once_and_reflashes_another():
    board = load_board("qemu-f746")
    firmware = build_firmware(board, CalibrationPlan().sources())
    other = build_firmware(board, CalibrationPlan().sources(), optimize="Os")
    assert other.digest != firmware.digest
    uart, monitor = free_tcp_port(), free_tcp_port()
    command = [a.replace("wait=on", "wait=off") for a in QemuRunner(board).qemu_command(firmware.elf, uart)
               if a != "-no-reboot"]  # a monitor's system_reset must reset, not end QEMU
    qemu = QemuProcess(command + ["-S", "-qmp", f"tcp:127.0.0.1:{monitor},server=on,wait=off"], uart)
    try:
        when_listening(lambda: qmp(monitor, "qmp_capabilities"))
        # stm32f412xg: a target type built into pyOCD, so that the real lookup passes.
        runner = RunnerOnQemuProbe(dataclasses.replace(board, pyocd_target="stm32f412xg"), monitor,
                                   f"socket://127.0.0.1:{uart}")
        assert runner.target.state.value == "off"
        for _ in range(3):
            with runner.open(firmware) as link:
                assert runner.target.state.value == "ready" and runner.target.digest == firmware.digest
                assert link.command("name") == ["m-name-dut-[tinylab qemu-f746]"]
            assert runner.target.state.value == "flashed"
        assert runner.programmed == [firmware.elf] and runner.target.flashes == 1
        with runner.open(other):
            pass
        assert runner.programmed == [firmware.elf, other.elf] and runner.target.digest == other.digest
        said = runner.transcript.text()
        assert said.count("not reflashed") == 2 and said.count("flashes") == 2
        assert qemu.exit_problem() is None
    finally:
        qemu.stop()
