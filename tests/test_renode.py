"""The Renode runner: its generated .resc script always; a real boot only where renode is installed."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from hil.errors import RunnerError
from hil.experiments.modelrun import run_model
from hil.experiments.models import default_input, resolve_model
from hil.run.runners import RUNNERS, runner_for
from hil.run.runners.renode import RenodeRunner, RenodeScript, renode_command, uart_peripheral
from hil.targets.boards import load_board

from conftest import needs_arm_gcc

needs_renode = pytest.mark.skipif(shutil.which("renode") is None, reason="renode is not on the PATH")


def test_renode_is_a_registered_backend():
    assert RUNNERS["renode"] is RenodeRunner
    runner = runner_for(load_board("nucleo-f767zi"), backend="renode")
    assert isinstance(runner, RenodeRunner) and runner.backend == "renode" and runner.unit == "instructions"


def test_the_script_boots_the_platform_with_the_uart_on_a_socket(tmp_path):
    board = load_board("nucleo-f767zi")
    elf = tmp_path / "firmware.elf"
    lines = RenodeScript(board, elf, 4321).text().splitlines()
    assert 'mach create "nucleo-f767zi"' in lines
    assert "machine LoadPlatformDescription @platforms/boards/nucleo_f767zi.repl" in lines
    assert f"sysbus LoadELF @{elf}" in lines
    assert "sysbus.cpu PerformanceInMips 216" in lines  # one cycle of the board's clock = one instruction
    terminal = lines.index('emulation CreateServerSocketTerminal 4321 "term" false')
    assert lines[terminal + 1] == "connector Connect sysbus.usart3 term"  # the ST-LINK VCP: USART3
    assert lines[-1] == "start"
    assert not any("LoadBinary" in line for line in lines)


def test_the_script_preloads_the_input_after_the_elf(tmp_path):
    board = load_board("disco-f746ng")
    lines = RenodeScript(board, tmp_path / "fw.elf", 5000, tmp_path / "in.bin", 0x20001234).text().splitlines()
    load = lines.index(f"sysbus LoadBinary @{tmp_path / 'in.bin'} 0x20001234")
    assert lines.index(f"sysbus LoadELF @{tmp_path / 'fw.elf'}") < load < lines.index("start")
    assert "connector Connect sysbus.usart1 term" in lines  # the Discovery's VCP: USART1


def test_uart_names_and_refusals(tmp_path):
    board = load_board("nucleo-f767zi")
    uart4 = dataclasses.replace(board, uart=dataclasses.replace(board.uart, base=0x40004C00))
    assert uart_peripheral(uart4) == "sysbus.uart4"
    with pytest.raises(RunnerError, match="no 'renode' section"):
        RenodeScript(load_board("nucleo-f746zg"), tmp_path / "fw.elf", 1).text()
    with pytest.raises(RunnerError, match="no Renode name"):
        uart_peripheral(load_board("qemu-f746"))
    with pytest.raises(RunnerError, match="spaces"):
        RenodeScript(board, Path("/tmp/with space/fw.elf"), 1).text()


@pytest.mark.skipif(shutil.which("renode") is not None, reason="renode is installed")
def test_without_renode_the_error_says_so(tmp_path):
    with pytest.raises(RunnerError, match="renode is not on the PATH"):
        renode_command(tmp_path / "x.resc")


@needs_renode
@needs_arm_gcc
def test_a_model_runs_in_renode_and_matches_tflm():
    board = load_board("nucleo-f767zi")
    source = resolve_model("mcunet-tiny")
    result = run_model(board, source, default_input(source.graph), runner=RenodeRunner(board, timeout_s=120))
    assert result.backend == "renode" and result.unit == "instructions"
    assert result.matches_reference and np.array_equal(result.output, result.reference)
