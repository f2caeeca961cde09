"""The QEMU runner with real qemu-system-arm: calibration, failures, clean-up, concurrency."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hil.firmware_build.firmware import WorkloadSources, build_firmware
from hil.errors import ProtocolError
from hil.experiments.calibration import CalibrationPlan, calibrate
from hil.run.runners.qemu import QemuRunner
from hil.run.runners.target_state import TargetState
from hil.run.target import each_input, open_with_input
from hil.store.results import open_store
from hil.targets.boards import load_board
from tinylab_cli.main import main

from conftest import EMULATED_BOARDS, needs_arm_gcc, needs_qemu

pytestmark = [needs_arm_gcc, needs_qemu]

HANG = """
#include <stddef.h>
#include "lab.h"
static void hang(void) { for (;;) { __asm volatile("nop"); } }
static const workload_t spin = {"spin", NULL, 0, NULL, 0, NULL, 0, hang};
const workload_t *const lab_workloads[] = {&spin};
const uint32_t lab_workload_count = 1;
void lab_workloads_init(void) {}
"""


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.mark.parametrize("board_name", EMULATED_BOARDS)
def test_selftest_matches_the_known_counts(board_name):
    report, _ = calibrate(load_board(board_name), CalibrationPlan(), runs=2)
    assert report.unit == "instructions"
    assert abs(report.block_measured - report.block_expected_instructions) <= report.resolution
    assert abs(report.stack_measured - report.stack_expected) <= 16
    assert report.arena_touched == report.arena_expected
    assert report.repeatable and report.raw_ticks[0] == report.raw_ticks[1]
    assert report.passed


def test_selftest_command_json_is_stable_and_stored(private_store, capsys):
    outputs = []
    for _ in range(2):
        assert main(["selftest", "--board", "qemu-f746", "--json"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    first, second = outputs
    assert first["passed"] and first["unit"] == "instructions"
    assert first["block_measured"] == second["block_measured"]
    assert first["stack_measured"] == second["stack_measured"]
    assert abs(first["block_measured"] - first["block_expected_instructions"]) <= first["resolution"]
    with open_store(private_store) as store:
        rows = store.query(model="calibration", metric="latency")
    assert len(rows) == 2 and {r.unit for r in rows} == {"instructions"}
    assert rows[0].value == first["block_measured"] and rows[0].backend == "qemu"


def test_a_wrong_block_length_would_be_caught():
    """The check can fail: claim one instruction more per block than the firmware runs."""
    board = load_board("qemu-f746")
    report, _ = calibrate(board, CalibrationPlan(), runs=1)
    off_by = CalibrationPlan().repeats  # one instruction per repeat
    assert abs(report.block_measured - (report.block_expected_instructions + off_by)) > report.resolution


def test_silent_firmware_times_out_and_leaves_no_qemu(tmp_path):
    board = load_board("qemu-f746")
    # A UART at the wrong address: the firmware runs but nothing reaches the host.
    mute = dataclasses.replace(board, uart=dataclasses.replace(board.uart, base=0x40005000))
    firmware = build_firmware(mute, WorkloadSources(files={"table.c": HANG}), cache_dir=tmp_path)
    runner = QemuRunner(mute, timeout_s=1.5)
    started = time.monotonic()
    with pytest.raises(ProtocolError, match=r"board qemu-f746, command '\(boot\)': no complete reply within 1.5 s"):
        with runner.open(firmware):
            pass
    assert time.monotonic() - started < 10
    assert runner.last_process is not None and process_gone(runner.last_process.process.pid)


def test_hanging_inference_times_out_and_leaves_no_qemu(tmp_path):
    board = load_board("qemu-f746")
    firmware = build_firmware(board, WorkloadSources(files={"table.c": HANG}), cache_dir=tmp_path)
    runner = QemuRunner(board, timeout_s=3.0)
    with pytest.raises(ProtocolError, match=r"command 'infer 1 0%': no complete reply within 3 s; received: m-warmup-start-0"):
        with runner.open(firmware) as link:
            link.infer(1, 0)
    assert process_gone(runner.last_process.process.pid)


def test_qemu_killed_mid_run_is_a_clear_error(tmp_path):
    board = load_board("qemu-f746")
    firmware = build_firmware(board, WorkloadSources(files={"table.c": HANG}), cache_dir=tmp_path)
    runner = QemuRunner(board, timeout_s=20)
    with runner.open(firmware) as link:
        pid = runner.last_process.process.pid
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
        started = time.monotonic()
        with pytest.raises(ProtocolError, match="connection was lost|QEMU exited"):
            link.infer(1, 0)
        assert time.monotonic() - started < 10
    assert process_gone(pid)


def test_ctrl_c_leaves_no_qemu(tmp_path):
    board = load_board("qemu-f746")
    firmware = build_firmware(board, WorkloadSources(files={"table.c": HANG}), cache_dir=tmp_path)
    # Ctrl-C in a terminal raises KeyboardInterrupt; a pytest -n worker ignores SIGINT, and so
    # would its child without the first line.
    script = textwrap.dedent(f"""
        import signal; signal.signal(signal.SIGINT, signal.default_int_handler)
        from pathlib import Path
        from hil.firmware_build.firmware import Firmware
        from hil.run.runners.qemu import QemuRunner
        from hil.targets.boards import load_board
        board = load_board("qemu-f746")
        firmware = Firmware(board, Path({str(firmware.elf)!r}), None, "x", "O2", "hang")
        runner = QemuRunner(board, timeout_s=60)
        with runner.open(firmware) as link:
            print(runner.last_process.process.pid, flush=True)
            link.infer(1, 0)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    qemu_pid = int(child.stdout.readline())
    child.send_signal(signal.SIGINT)
    child.wait(timeout=15)
    assert "KeyboardInterrupt" in child.stderr.read()
    deadline = time.monotonic() + 5
    while not process_gone(qemu_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(qemu_pid)


def test_several_runs_at_once_on_different_ports():
    board = load_board("qemu-f746")
    results, errors = [], []

    def one() -> None:
        try:
            results.append(calibrate(board, CalibrationPlan(), runs=1)[0])
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 3
    assert len({r.block_measured for r in results}) == 1 and all(r.passed for r in results)


class QemuWithoutPreload(QemuRunner):
    """QEMU as a backend that cannot place the input before boot: every input goes as db lines."""

    can_preload = False


def test_each_input_boots_once_per_input_when_preloading_else_once_with_db_lines():
    board = load_board("qemu-f746")
    firmware = build_firmware(board, CalibrationPlan().sources())
    inputs = [bytes([k]) * 64 for k in range(3)]
    for runner, boots in ((QemuRunner(board, timeout_s=10), 3), (QemuWithoutPreload(board, timeout_s=10), 1)):
        pids = []
        for link in each_input(runner, firmware, inputs):
            assert runner.target.state is TargetState.READY and runner.target.digest == firmware.digest
            pids.append(runner.last_process.process.pid)
            assert link.name() == "tinylab qemu-f746"
        assert len(set(pids)) == boots and runner.target.state is TargetState.OFF  # QEMU has no flash
        said = runner.transcript.text()
        assert said.count("QEMU boots") == boots
        assert said.count("> db preloaded 64%") == (3 if runner.can_preload else 0)
        assert said.count("> db load 64%") == (0 if runner.can_preload else 3)


def test_open_with_input_loads_it_and_reload_input_repeats_the_way():
    board = load_board("qemu-f746")
    firmware = build_firmware(board, CalibrationPlan().sources())
    runner = QemuWithoutPreload(board, timeout_s=10)
    with open_with_input(runner, firmware, bytes(range(64))) as link:
        link.reload_input()
    assert runner.transcript.text().count("> db load 64%") == 2
