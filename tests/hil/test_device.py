"""The hardware-in-the-loop suite: run it against any board by changing only `--board`.

    pytest tests/hil --board qemu-f746          # QEMU (the default board)
    pytest tests/hil --board nucleo-f746zg      # a physical board: flashed through its probe
    pytest tests/hil --hardware-map lab.yaml    # every board of a map, once each

It uses only the tinylab plugin's fixtures: `dut` is a booted device (the calibration firmware),
`board` its BoardSpec. On a physical board whose probe is not attached every test is skipped.
"""
from __future__ import annotations

import re

import pytest

from hil.errors import ProtocolError
from hil.store.results import open_store

FIGURE = re.compile(r"^m-lab-([a-z-]+)-\[(.*)\]$")
EMULATED = ("qemu-f746", "qemu-f412", "qemu-h743", "netduinoplus2")


def figures(lines: list[str]) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in map(FIGURE.match, lines) if m}


def ticks(dut, workload: str) -> int:
    dut.command(f"select {workload}")
    return int(figures(dut.command("infer 1 1"))["ticks-min"])


def test_the_device_boots_and_names_itself(dut, board):
    assert dut.command("name") == [f"m-name-dut-[tinylab {board.name}]"]


def test_profile_reports_the_board_timer_and_clock(dut, board):
    info = figures(dut.command("profile"))
    assert info["timer"] == board.timer
    assert int(info["clock-hz"]) == board.clock_hz
    assert info["workloads"].split(",") == ["empty", "block", "stack", "touch"]


def test_a_reply_can_be_awaited_line_by_line(dut, board):
    dut.send("name")
    assert dut.expect(r"^m-name-dut-\[tinylab (.+)\]$").group(1) == board.name
    dut.expect(r"^m-ready$", timeout=5)


def test_an_unknown_command_is_an_error_and_the_device_goes_on(dut, board):
    with pytest.raises(ProtocolError, match=r"e-\[unknown command: bogus\]"):
        dut.command("bogus")
    assert dut.command("name") == [f"m-name-dut-[tinylab {board.name}]"]


def test_an_input_is_loaded_over_the_uart_and_an_oversized_one_refused(dut):
    capacity = 64  # the calibration firmware's input buffer
    assert dut.command(f"db load {capacity}") == [f"m-[Expecting {capacity} bytes]"]
    assert dut.command(f"db {bytes(range(capacity // 2)).hex()}") == []
    assert dut.command(f"db {bytes(range(capacity // 2)).hex()}") == ["m-load-done"]
    with pytest.raises(ProtocolError, match="more bytes than the input buffer holds"):
        dut.command(f"db load {capacity + 1}")


def test_memory_figures_match_the_calibration_workloads(dut):
    dut.command("select touch")
    assert int(figures(dut.command("infer 1 1"))["arena-touched"]) == 300
    dut.command("select stack")
    reply = figures(dut.command("infer 1 1"))
    depth = int(reply["stack-high-water"]) - int(reply["stack-at-call"])
    assert abs(depth - (20 + 256)) <= 16


@pytest.mark.board(*EMULATED)
def test_qemu_counts_the_block_to_the_instruction(dut):
    block = dut.runner.latency(ticks(dut, "block") - ticks(dut, "empty"))
    assert block.unit == "instructions"
    assert abs(block.value - (500 * (200 + 2) + 2)) <= block.resolution


@pytest.mark.hardware
def test_the_cycle_counter_counts_cycles(dut):
    block = dut.runner.latency(ticks(dut, "block") - ticks(dut, "empty"))
    assert block.unit == "cycles"
    instructions = 500 * (200 + 2) + 2
    assert 0.3 * instructions < block.value < 4 * instructions  # cycles per instruction


def test_the_default_model_loaded_in_place_matches_tflm(dut, board):
    """No staging copy: the input goes straight into the model's slot in its arena (preloaded by
    QEMU's loader or the probe), and the lab's statics are counted apart from the model's."""
    run = dut.run("mcunet-tiny", input_staging=False, store=False)
    assert run.matches_reference and not run.input_staged
    assert run.peak_sram + run.lab_overhead == run.static_ram + run.stack_high_water
    assert run.model_static_ram >= run.arena_planned and "lab_input_buffer" not in run.lab_objects


def test_the_default_model_matches_tflm_and_is_stored(dut, board, request):
    run = dut.run("mcunet-tiny")
    assert run.matches_reference, f"output {run.output} differs from TFLM's {run.reference}"
    assert run.board == board.name and run.backend == board.backend
    assert run.unit == ("instructions" if board.emulated else "cycles") and run.latency > 0
    assert run.peak_sram <= board.sram_bytes and run.flash <= board.flash_bytes
    assert 0 < run.arena_touched <= run.arena_planned
    with open_store() as store:
        rows = {row.metric: row for row in store.query(model="mcunet-tiny", board=board.name)
                if row.test_id == request.node.nodeid}
    assert rows["latency"].value == run.latency and rows["latency"].unit == run.unit
    assert rows["matches_reference"].value == 1.0
    # The device still answers afterwards: the calibration firmware is booted again.
    assert dut.command("name") == [f"m-name-dut-[tinylab {board.name}]"]
