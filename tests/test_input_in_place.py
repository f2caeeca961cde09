"""One copy of the input: where the board has no room for a staging copy, the input goes straight
into the model's slot in the arena (real firmware, real QEMU, checked against TFLM); where it has,
the staging copy is the lab's overhead, not the model's peak SRAM."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

from engine import synth
from engine.compiler import compile_graph
from engine.errors import DoesNotFitError
from engine.export import export_tflite
from engine.oracle import run_tflm
from hil.firmware_build.firmware import INPUT_TARGET_SYMBOL, STAGING_BUFFER_SYMBOL
from hil.firmware_build.inputgen import generated_input, generated_value
from hil.firmware_build.inputplacement import HARNESS_STATIC_BYTES, choose_input_staging
from hil.firmware_build.model_workload import model_static_ram
from hil.errors import ProtocolError
from hil.experiments.mlperf import run_mlperf
from hil.experiments.modelrun import build_model_firmware, engine_provenance, run_model
from hil.experiments.models import ModelSource, default_input, resolve_model
from hil.run.runners import runner_for
from hil.targets.boards import load_board

from conftest import needs_arm_gcc, needs_qemu

pytestmark = [needs_arm_gcc, needs_qemu]

BOARDS = Path(__file__).resolve().parents[1] / "boards"
COMMAND_BUFFER_BYTES = 513  # main.c.j2: COMMAND_CAPACITY + 1


@pytest.fixture(scope="module")
def small_board(tmp_path_factory):
    """qemu-f746 with 24 KB of SRAM: room for mcunet-tiny's arena, the harness and the minimum
    stack, none for a staging copy of its 6,912-byte input as well."""
    text = (BOARDS / "qemu-f746.yaml").read_text()
    text = re.sub(r"^name: .*$", "name: qemu-f746-24k", text, flags=re.M)
    text = re.sub(r"^sram_bytes: .*$", "sram_bytes: 24576", text, flags=re.M)
    text = text.replace("ram:   {origin: 0x20000000, length: 0x50000}", "ram:   {origin: 0x20000000, length: 0x6000}")
    path = tmp_path_factory.mktemp("boards") / "qemu-f746-24k.yaml"
    path.write_text(text)
    return load_board(path)


@pytest.fixture(scope="module")
def model():
    source = resolve_model("mcunet-tiny")
    value = default_input(source.graph, seed=4)
    return source, value, run_tflm(source.tflite, [value])[0]


@pytest.fixture(scope="module")
def in_place_run(small_board, model):
    source, value, _ = model
    return run_model(small_board, source, value)


@pytest.fixture(scope="module")
def staged_run(model):
    source, value, _ = model
    return run_model(load_board("qemu-f746"), source, value)


def ram_symbols(elf: Path) -> dict[str, tuple[int, int, str]]:
    """name -> (address, size, nm type) of the ELF's data symbols, from arm-none-eabi-nm."""
    listing = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    symbols = {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "bBdD":
            symbols[fields[3]] = (int(fields[0], 16), int(fields[1], 16), fields[2])
    return symbols


def section_of(elf: Path, address: int) -> str:
    with open(elf, "rb") as stream:
        for section in ELFFile(stream).iter_sections():
            if section["sh_flags"] & 2 and section["sh_addr"] <= address < section["sh_addr"] + section["sh_size"]:
                return section.name
    return ""


def symbol_value(elf: Path, name: str) -> int:
    with open(elf, "rb") as stream:
        (symbol,) = ELFFile(stream).get_section_by_name(".symtab").get_symbol_by_name(name)
        return symbol["st_value"]


def test_the_host_decides_where_the_input_goes(small_board, model):
    compiled = compile_graph(model[0].graph)
    assert choose_input_staging(load_board("qemu-f746"), compiled) is True
    assert choose_input_staging(small_board, compiled) is False
    assert choose_input_staging(load_board("qemu-f746"), compiled, wanted=False) is False
    with pytest.raises(DoesNotFitError, match=r"no room for a staging copy of its input: arena and model statics "
                                              r"14,592 \+ staging copy 6,912 \+ harness [\d,]+ \+ minimum stack 8,192 "
                                              r"= [\d,]+ B, against 24,576 B of SRAM on qemu-f746-24k"):
        choose_input_staging(small_board, compiled, wanted=True)


def test_without_room_the_input_is_loaded_in_place_and_matches_tflm(in_place_run, small_board, model):
    run = in_place_run
    source, value, _ = model
    assert run.matches_reference and not run.input_staged
    built = build_model_firmware(small_board, source)
    firmware, compiled = built.firmware, built.compiled  # the same build, from the cache
    symbols = ram_symbols(firmware.elf)
    assert STAGING_BUFFER_SYMBOL not in symbols
    arena_address, arena_size, _ = symbols["model_arena"]
    assert arena_size == run.arena_planned == compiled.plan.arena_bytes
    assert section_of(firmware.elf, arena_address) == ".noinit"  # start-up must not clear a preload
    assert symbol_value(firmware.elf, INPUT_TARGET_SYMBOL) == arena_address + compiled.generated.input_offset
    # the model's part, from nm: its arena and whatever else its generated file allocates
    model_bytes = sum(size for name, (_, size, _) in symbols.items() if name.startswith("model_") and name != "model_workload")
    assert run.model_static_ram == model_bytes >= run.arena_planned
    assert run.peak_sram == run.model_static_ram + run.stack_high_water
    assert run.peak_sram + run.lab_overhead == run.static_ram + run.stack_high_water
    assert run.static_ram == firmware.size.static_ram == firmware.size.data + firmware.size.bss
    # the lab keeps no copy of the input: its command buffer and the first inference's output
    assert run.lab_objects["command"] == COMMAND_BUFFER_BYTES
    assert run.lab_objects["first_output"] == 12  # the 10-byte output, in whole words
    assert COMMAND_BUFFER_BYTES < run.lab_overhead < compiled.generated.input_bytes
    summary = run.summary()
    assert (summary["peak_sram_bytes"], summary["lab_overhead_bytes"], summary["input_staged"]) == \
        (run.peak_sram, run.lab_overhead, False)


def test_with_room_the_staging_copy_is_lab_overhead_not_peak_sram(staged_run, in_place_run, model, private_store):
    run = staged_run
    source, _, _ = model
    built = build_model_firmware(load_board("qemu-f746"), source)
    firmware, compiled = built.firmware, built.compiled
    symbols = ram_symbols(firmware.elf)
    staging_address, staging_size, _ = symbols[STAGING_BUFFER_SYMBOL]
    assert run.matches_reference and run.input_staged
    assert staging_size == compiled.generated.input_bytes == run.lab_objects[STAGING_BUFFER_SYMBOL]
    assert symbol_value(firmware.elf, INPUT_TARGET_SYMBOL) == staging_address
    assert section_of(firmware.elf, symbols["model_arena"][0]) == ".bss"
    assert run.model_static_ram == in_place_run.model_static_ram  # the same model, whatever the lab keeps
    assert run.peak_sram == run.model_static_ram + run.stack_high_water < run.static_ram
    assert run.peak_sram + run.lab_overhead == run.static_ram + run.stack_high_water
    assert run.lab_overhead >= staging_size + COMMAND_BUFFER_BYTES
    assert run.lab_overhead - staging_size <= HARNESS_STATIC_BYTES  # the decision's reserve holds
    assert run.arena_touched == in_place_run.arena_touched  # painting around the input slot measures the same
    rows = {r.metric: r for r in run.measurements(engine_provenance(load_board("qemu-f746"), run.backend))}
    assert rows["lab_overhead"].value == run.lab_overhead and rows["lab_overhead"].unit == "bytes"
    assert json.loads(rows["lab_overhead"].extra)["objects"][STAGING_BUFFER_SYMBOL] == staging_size
    assert rows["peak_sram"].value == run.peak_sram


def test_the_harness_reserve_covers_a_real_board_build(model):
    source = model[0]
    board = load_board("nucleo-f746zg")  # the DWT timer and the STM32 USART driver
    built = build_model_firmware(board, source)
    firmware, compiled = built.firmware, built.compiled
    split = model_static_ram(firmware, compiled)
    assert firmware.input_staged
    assert split.lab_bytes - compiled.generated.input_bytes <= HARNESS_STATIC_BYTES


def test_db_streamed_input_without_preload_and_the_generator_reproduced_on_the_host(small_board, model):
    source, value, reference = model
    firmware = build_model_firmware(small_board, source).firmware
    with runner_for(small_board).open(firmware) as link:  # no preload: db lines into the slot
        profile = link.profile()
        link.load_input(value.tobytes())
        loaded = link.infer(1, 0)
        again = link.infer(1, 0)  # nothing loaded since: the generator's input, seed 1
        raw, _ = link.results()
        with pytest.raises(ProtocolError, match="more bytes than the model's input holds"):
            link.command(f"db load {value.nbytes + 1}")
        with pytest.raises(ProtocolError, match="an inference has used the input slot since boot"):
            link.load_input(value.tobytes(), preloaded=True)
    assert profile["staging-bytes"] == "0"
    assert (loaded.output_inference, loaded.output_input) == (1, "loaded")
    assert loaded.output == reference.tobytes()
    assert (again.output_inference, again.output_input) == (1, "generated")
    assert again.output == run_tflm(source.tflite, [generated_value(1, value)])[0].tobytes() != loaded.output
    assert raw == again.output  # results% reports the same inference


def _window_figures(link, data: bytes) -> tuple[tuple, tuple, list[bytes]]:
    """`infer 3 2` on the preloaded input, then `infer 3 0` on the same input sent as db lines."""
    link.load_input(data, preloaded=True)
    warm = link.infer(3, 2)
    link.load_input(data)
    cold = link.infer(3, 0)
    figures = [(r.ticks_total, r.ticks_min, r.ticks_max, r.stack_high_water, r.arena_touched) for r in (warm, cold)]
    assert [(r.output_inference, r.output_input) for r in (warm, cold)] == [(1, "loaded"), (1, "loaded")]
    return figures[0], figures[1], [warm.output, cold.output]


def test_windows_of_several_inferences_report_the_first_and_tick_the_same_every_boot(small_board, model):
    source, value, reference = model
    firmware = build_model_firmware(small_board, source).firmware
    runner = runner_for(small_board)
    boots = []
    for _ in range(2):
        with runner.open(firmware, preload=value.tobytes()) as link:
            boots.append(_window_figures(link, value.tobytes()))
    (warm, cold, outputs), again = boots[0], boots[1]
    assert outputs == [reference.tobytes()] * 2 and again[2] == outputs  # the first inference's output, bit-exact
    assert (warm, cold) == (again[0], again[1])  # deterministic: the generated inputs are the same every boot
    assert warm[0] >= 3 * warm[1] and warm[2] >= warm[1] > 0


@pytest.mark.parametrize("graph", [
    synth.fully_connected_model(np.random.default_rng(1), (1, 24), 2, "NONE", True),  # a 2-byte output
    synth.dequantize_model(np.random.default_rng(2), (1, 3)),  # a float32 output, 12 bytes
], ids=["int8x2", "float32x3"])
def test_small_and_float_outputs_are_kept_and_reported_in_place(graph):
    board = load_board("qemu-f746")
    source = ModelSource(graph.name, export_tflite(graph), _graph=graph)
    value = default_input(graph, seed=9)
    run = run_model(board, source, value, input_staging=False, warmup=2)
    assert not run.input_staged and run.matches_reference
    assert run.lab_objects["first_output"] >= graph.tensors[graph.outputs[0]].nbytes


def test_mlperf_performance_and_accuracy_without_a_staging_copy(small_board, model, tmp_path):
    source, _, _ = model
    truth = []
    for seed in range(2):
        value = default_input(source.graph, seed=seed)
        (tmp_path / f"img{seed}.bin").write_bytes(value.tobytes())
        truth.append(f"img{seed}.bin, 10, {int(np.argmax(run_tflm(source.tflite, [value])[0]))}")
    (tmp_path / "y_labels.csv").write_text("\n".join(truth) + "\n")
    result = run_mlperf(small_board, source, tmp_path, window_s=0.02, warmup=1)
    assert result.accuracy.matches_reference == 2 and result.accuracy.value == 1.0
    assert len(result.performance.per_window) == 5 and len(set(result.performance.per_window)) == 1


def test_the_generator_is_seeded_per_inference():
    first, second = generated_input(1, 64), generated_input(2, 64)
    assert len(first) == 64 and first != second and generated_input(1, 64) == first
    assert generated_input(1, 4) == first[:4]
    with pytest.raises(ValueError, match="ordinal 0"):
        generated_input(0, 4)
