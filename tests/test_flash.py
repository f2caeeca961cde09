"""Flash as a budget (hil.firmware_build.flash): the widening of weights is chosen by gain per byte and cut, from
measured builds, until the image fits; the image's parts add up; a budget too small for int8
weights is refused with the numbers; the commands take --flash-budget and report the parts."""
from __future__ import annotations

import argparse
import json

import pytest

from conftest import needs_arm_gcc
from engine.codegen.widening import choose_wide, widening_candidates
from engine.errors import DoesNotFitError
from hil.firmware_build.flash import byte_count
from hil.experiments.modelrun import build_model_firmware
from hil.experiments.models import resolve_model
from hil.targets.boards import load_board
from tinylab_cli.main import main


def test_byte_counts():
    assert byte_count("1048576") == byte_count("1,048,576") == byte_count("1M") == byte_count("1024K") == 1 << 20
    assert byte_count("320kib") == 320 * 1024
    for bad in ("", "abc", "12Q", "-5", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            byte_count(bad)


def test_widening_goes_to_the_best_gain_per_byte_first():
    graph = resolve_model("mcunet-tiny").graph
    candidates = widening_candidates(graph)
    assert len(candidates) >= 3
    gains = [c.gain_per_byte for c in candidates]
    assert gains == sorted(gains, reverse=True)
    assert choose_wide(graph, 0) == set()
    assert choose_wide(graph, None) == {p for c in candidates for p in c.positions}
    first = candidates[0]
    assert choose_wide(graph, first.extra_bytes) >= set(first.positions)
    budget = sum(c.extra_bytes for c in candidates) // 2
    chosen = choose_wide(graph, budget)
    assert sum(c.extra_bytes for c in candidates if set(c.positions) <= chosen) <= budget


@needs_arm_gcc
def test_a_tight_budget_cuts_the_widening_until_the_image_fits():
    board, source = load_board("qemu-f746"), resolve_model("mcunet-tiny")
    free = build_model_firmware(board, source)
    assert free.flash.widened > 0 and free.flash.budget == board.flash_bytes
    parts = free.flash
    assert parts.weights + parts.widened + parts.code + parts.lab == parts.total == free.firmware.size.flash
    assert parts.code > 0 and parts.lab > 0
    budget = parts.total - parts.widened // 2  # room for about half of the int16 copies
    tight = build_model_firmware(board, source, flash_budget=budget)
    assert tight.firmware.size.flash <= budget
    assert 0 < tight.flash.widened < parts.widened
    assert tight.flash.weights == parts.weights  # the int8 constants stay whole


@needs_arm_gcc
def test_a_budget_below_the_int8_image_is_refused_with_the_numbers():
    board, source = load_board("qemu-f746"), resolve_model("mcunet-tiny")
    with pytest.raises(DoesNotFitError, match=r"its weights need [\d,]+ B of flash; the flash budget is 20,000 B"):
        build_model_firmware(board, source, flash_budget=20_000)
    with pytest.raises(DoesNotFitError, match=r"its image needs [\d,]+ B with int8 weights .* the budget is 50,000 B"):
        build_model_firmware(board, source, flash_budget=50_000)


@needs_arm_gcc
def test_compile_reports_flash_by_component(tmp_path, capsys):
    assert main(["compile", "mcunet-tiny", "-o", str(tmp_path / "c"), "--flash-budget", "90K", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["flash_budget_bytes"] == 90 * 1024 and summary["board"] == "qemu-f746"
    parts = [summary[k] for k in ("flash_weights_bytes", "flash_widened_weights_bytes", "flash_code_bytes", "flash_lab_bytes")]
    assert sum(parts) == summary["flash_bytes"] <= 90 * 1024
    with pytest.raises(SystemExit) as exit_info:
        main(["compile", "mcunet-tiny", "-o", str(tmp_path / "d"), "--flash-budget", "lots"])
    assert exit_info.value.code == 2 and "'lots' is not a byte count" in capsys.readouterr().err
