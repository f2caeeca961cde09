"""hil.experiments.dut.Dut from plain Python, without pytest's fixtures: real QEMU behind it."""
from __future__ import annotations

from hil.experiments.dut import Dut
from hil.targets.boards import load_board
from hil.targets.hardware_map import HardwareMapEntry

from conftest import needs_arm_gcc, needs_qemu


@needs_arm_gcc
@needs_qemu
def test_a_dut_is_a_context_manager_that_boots_talks_and_stops():
    with Dut(load_board("qemu-f746"), timeout_s=10) as dut:
        assert dut.command("name") == ["m-name-dut-[tinylab qemu-f746]"]
        dut.send("name")
        assert dut.expect(r"m-name-dut-\[(.*)\]").group(1) == "tinylab qemu-f746"
        process = dut.runner.last_process
        assert process is not None and process.process.poll() is None
    assert process.process.poll() is not None  # QEMU stopped on the way out
    said = dut.transcript.text()
    assert "> name%" in said and "< m-name-dut-[tinylab qemu-f746]" in said


def test_a_dut_takes_a_hardware_map_entry_with_its_probe_and_port():
    entry = HardwareMapEntry(load_board("nucleo-f746zg"), "0670FF3136", "/dev/ttyACM7")
    dut = Dut(entry)  # nothing is opened before boot()
    assert (dut.runner.backend, dut.runner.probe, dut.runner.port) == ("hardware", "0670FF3136", "/dev/ttyACM7")
