"""The cycle model (hil/cycles): the execution profile agrees with QEMU's count, the disassembly's
classes, the in-order schedule against the cores' documented timings, branch and cache
bookkeeping on real runs, and the unit in run, bench and the store."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hil.cycles.coremodel import CycleModelError, load_core, load_memory_system, memory_systems, model_for, schedule
from hil.cycles.disassembly import decode
from hil.cycles.estimated import ESTIMATED_METRIC, ESTIMATED_UNIT
from hil.cycles.profile import REGIONS
from hil.cycles_validation.validation import PairResult, spearman, summarise, validation_input
from hil.experiments.modelrun import run_model
from hil.experiments.models import default_input, resolve_model
from hil.run.runners import runner_for
from hil.store.results import open_store
from hil.targets.boards import load_board
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu

needs_host_gcc = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                    reason="no host C compiler for the profiler plugin (scripts/install.sh installs gcc)")


def block(*lines: str) -> list:
    """Instructions at consecutive addresses from 'mnemonic operands' lines (all 32-bit)."""
    return [(decode(0x1000 + 4 * i, *(line.split(" ", 1) + [""])[:2]), 4) for i, line in enumerate(lines)]


# --- the disassembly's classes -------------------------------------------------------------------


@pytest.mark.parametrize("mnemonic, operands, kind, conditional", [
    ("bls.n", "8000", "branch", True),  # B with LS, not BL with S
    ("bl", "8000 <f>", "branch", False),
    ("cbz", "r0, 8000", "branch", True),
    ("movs", "r0, #1", "alu", False),  # MOV with S, not MO with VS
    ("smlad", "r0, r1, r2, r0", "dsp_mac", False),
    ("ldrsb.w", "r1, [r2], #1", "load", False),
    ("pop", "{r4, r5, pc}", "load_multiple", False),
    ("vldr", "s14, [r3, #4]", "fp_load", False),
    ("itte", "ge", "it", False),
])
def test_instructions_fall_in_their_timing_class(mnemonic, operands, kind, conditional):
    instruction = decode(0, mnemonic, operands)
    assert (instruction.kind, instruction.conditional) == (kind, conditional)


def test_registers_moved_bytes_and_writeback_are_read_from_the_operands():
    pop = decode(0, "pop", "{r4-r7, pc}")
    assert pop.registers_moved == 5 and pop.writes_pc and pop.bytes_moved == 20
    post = decode(0, "ldr.w", "r1, [r11], #4")
    assert post.writeback and "r11" in post.writes and post.bytes_moved == 4
    assert decode(0, "str.w", "r1, [r2, r3, lsl #2]").register_offset
    assert decode(0, "vldr", "s14, [r3, #4]").writes == ()  # an FP register is not a core register


# --- the schedule against the documented timings --------------------------------------------------


def test_cortex_m4_loads_pipeline_as_its_manual_says():
    m4 = load_core("cortex-m4")
    # DDI 0439D 3.3.2: three independent loads normally take 4 cycles (2 + 1 + 1)
    assert schedule(block("ldr r0, [r1, r5]", "ldr r1, [r2]", "ldr r2, [r3, #4]"), m4) == 4
    # a load whose address is the previous load's result does not pipeline
    assert schedule(block("ldr r0, [r1]", "ldr r2, [r0]"), m4) == 4
    # an address from the preceding data-processing result stalls one cycle
    assert schedule(block("add r1, r1, #4", "ldr r0, [r1]"), m4) == 4
    assert schedule(block("ldm r0, {r1, r2, r3}"), m4) == 4  # 1 + N


def test_cortex_m7_dual_issues_independent_pairs_and_waits_for_results():
    m7 = load_core("cortex-m7")
    assert schedule(block("add r0, r1, r2", "add r3, r4, r5"), m7) == 1
    assert schedule(block("add r0, r1, r2", "add r3, r0, r5"), m7) == 2  # dependent: no pair
    assert schedule(block("smlad r0, r1, r2, r0", "smlad r3, r4, r5, r3"), m7) == 2  # one MAC pipe
    # multiply-accumulates chain on the accumulator every cycle; a multiply result takes two
    assert schedule(block("smlad r0, r1, r2, r0", "smlad r0, r4, r5, r0"), m7) == 2
    assert schedule(block("mul r0, r1, r2", "add r3, r0, r5"), m7) == 3
    assert schedule(block("ldm r0, {r1, r2, r3, r4}"), m7) == 2  # ceil(N / 2)


def test_the_two_cores_differ_where_their_manuals_do():
    code = block("ldr r0, [r1]", "add r2, r2, r0", "ldr r3, [r4]", "add r5, r5, r3")
    assert schedule(code, load_core("cortex-m4")) > schedule(code, load_core("cortex-m7"))


def test_every_timing_number_names_its_source():
    import yaml

    from hil.resources import boards_dir

    for path in list((boards_dir() / "cores").glob("*.yaml")) + list((boards_dir() / "timing").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert data.get("sources"), f"{path.name} cites no source"
        for section in ("classes", "rules", "result_latency", "branch", "multiple"):
            for name, entry in (data.get(section) or {}).items():
                if isinstance(entry, dict) and "cycles" in entry:
                    assert entry.get("source"), f"{path.name}: {section}.{name} has no source"


def test_an_emulated_board_finds_the_real_board_it_stands_for():
    core, memory = model_for("qemu-f746")
    assert (core.name, memory.board, memory.clock_hz) == ("cortex-m7", "nucleo-f746zg", 216_000_000)
    assert model_for("qemu-f746", "m4")[0].name == "cortex-m4"
    with pytest.raises(CycleModelError, match="netduinoplus2 has no timing data"):
        model_for("netduinoplus2")
    with pytest.raises(CycleModelError, match="choose m4, m7 or auto"):
        model_for("qemu-f746", "m0")
    boards = {m.board for m in memory_systems()}
    for system in memory_systems():
        load_board(system.board)  # every memory system is a real board's
        for twin in system.emulated_by:
            assert load_board(twin).core == system.core
    assert {"nucleo-l4r5zi", "nucleo-h743zi", "nucleo-f746zg"} <= boards
    assert load_memory_system("nucleo-h743zi-480mhz").clock_hz == 480_000_000


# --- the validation's arithmetic -----------------------------------------------------------------


def test_spearman_and_the_summary():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    results = [PairResult("s", f"m{i}", "nucleo-l4r5zi", 100_000_000, 10.0 * (i + 1), "here",
                          instructions=800_000 * (i + 1), estimated_cycles=1_100_000 * (i + 1)) for i in range(4)]
    results.append(PairResult("s", "x", "nucleo-l4r5zi", 100_000_000, 5.0, "here", skipped="set X"))
    summary = summarise(results, lambda board: "cortex-m4")
    assert summary.pairs == 4 and summary.cortex_m7_pairs == 0
    assert summary.median_error == pytest.approx(0.1) and summary.median_naive_error == pytest.approx(0.2)
    assert summary.rankings["nucleo-l4r5zi"] == (4, pytest.approx(1.0))
    assert not summary.meets_targets  # too few pairs, none on a Cortex-M7


def test_the_validation_input_is_valid_for_any_input_type():
    import numpy as np

    data = validation_input(64)
    assert len(data) == 64 and np.all(np.abs(np.frombuffer(data, dtype=np.float32)) <= 1.0)
    assert validation_input(7) == validation_input(8)[:7]


def test_validate_without_sources_names_each_variable_and_how_to_get_it(capsys, monkeypatch):
    from hil.cycles_validation.recipes import RECIPES

    for recipe in RECIPES.values():
        for source in recipe.sources:
            monkeypatch.delenv(source.env, raising=False)
    code = main(["cycles", "validate", "--only", "ad01"])
    out = capsys.readouterr().out
    assert code == 1 and "not run: set TINYLAB_" in out and "git clone" in out and "targets NOT met" in out


def test_cycles_models_lists_each_memory_system_and_its_emulated_board(capsys):
    assert main(["cycles", "models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"cortex-m4", "cortex-m7"} <= set(listed["cores"])
    assert any(m["board"] == "nucleo-f746zg" and "qemu-f746" in m["emulated_by"] for m in listed["memory_systems"])


# --- real runs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def profiled_runs():
    """mcunet-tiny on the M7 and M4 twins, each run with the profiler: (board, run, runner)."""
    runs = {}
    source = resolve_model("mcunet-tiny")
    for name in ("qemu-f746", "qemu-f412"):
        board = load_board(name)
        runner = runner_for(board)
        result = run_model(board, source, default_input(source.graph), runner=runner, cycle_model="auto")
        runs[name] = result
    return runs


@needs_arm_gcc
@needs_qemu
@needs_host_gcc
@pytest.mark.parametrize("board", ["qemu-f746", "qemu-f412"])
def test_the_profiled_window_is_qemus_timed_window_within_one_tick(profiled_runs, board):
    run = profiled_runs[board]
    assert run.unit == "instructions" and run.matches_reference
    assert abs(run.cycles.instructions - run.latency) <= run.resolution  # one SysTick tick
    assert run.cycles.cycles > 0 and 0.3 < run.cycles.cpi < 3


@needs_arm_gcc
@needs_qemu
@needs_host_gcc
def test_a_larger_model_is_profiled_within_one_tick_too():
    model = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "kws_ref_model.tflite"
    if not model.exists():
        pytest.skip(f"{model} is absent (../shared is not checked out)")
    board = load_board("qemu-f746")
    source = resolve_model(str(model))
    run = run_model(board, source, default_input(source.graph), cycle_model="m7")
    assert abs(run.cycles.instructions - run.latency) <= run.resolution


@needs_arm_gcc
@needs_qemu
@needs_host_gcc
def test_estimates_stand_beside_the_instruction_count(profiled_runs):
    m7, m4 = profiled_runs["qemu-f746"], profiled_runs["qemu-f412"]
    # the same network: the M4's single issue and the F412's flash make it cost more cycles per instruction
    assert m4.cycles.cpi > m7.cycles.cpi
    summary = m7.summary()
    assert summary["latency_unit"] == "instructions" and summary["latency"] == m7.latency
    detail = summary["estimated_cycles_detail"]
    assert detail["cycle_model"].startswith("cortex-m7 on nucleo-f746zg") and detail["error_bar"]
    assert detail["estimated_cycles"] == round(detail["issue_cycles"] + detail["branch_cycles"] + detail["memory_cycles"])


@needs_arm_gcc
@needs_qemu
@needs_host_gcc
def test_the_store_keeps_the_estimate_as_its_own_metric_and_unit(profiled_runs, private_store):
    from hil.experiments.modelrun import engine_provenance

    run = profiled_runs["qemu-f746"]
    board = load_board("qemu-f746")
    with open_store(private_store) as store:
        store.add(run.measurements(engine_provenance(board, run.backend)))
        rows = store.query()
    latency = [r for r in rows if r.metric == "latency"]
    estimated = [r for r in rows if r.metric == ESTIMATED_METRIC]
    assert [r.unit for r in latency] == ["instructions"] and [r.unit for r in estimated] == [ESTIMATED_UNIT]
    assert estimated[0].value == pytest.approx(run.cycles.cycles)
    assert json.loads(estimated[0].extra)["cycle_model"].startswith("cortex-m7")


@needs_arm_gcc
@needs_qemu
@needs_host_gcc
def test_run_json_gives_instructions_and_estimated_cycles_together(capsys):
    assert main(["run", "mcunet-tiny", "--board", "qemu-f746", "--cycle-model", "auto", "--json", "--no-store"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["latency_unit"] == "instructions" and summary["estimated_cycles"] > 0
    assert summary["estimated_cycles_detail"]["clock_hz"] == 216_000_000


def test_cycle_model_on_a_board_that_measures_cycles_is_refused(capsys):
    code = main(["run", "mcunet-tiny", "--board", "nucleo-f746zg", "--cycle-model", "auto", "--no-store"])
    err = capsys.readouterr().err
    assert code != 0 and "--cycle-model needs an emulated run" in err and "Traceback" not in err


@needs_arm_gcc
@needs_qemu
@needs_host_gcc
def test_the_profiles_caches_and_branches_account_for_every_access_and_branch(tmp_path):
    from hil.cycles.coremodel import estimate
    from hil.cycles.disassembly import disassemble
    from hil.cycles.profile import Profiler
    from hil.experiments.modelrun import build_model_firmware
    from hil.run.target import open_with_input

    board = load_board("qemu-f412")
    source = resolve_model("mcunet-tiny")
    firmware = build_model_firmware(board, source).firmware
    runner = runner_for(board)
    # a data cache over flash only, an instruction cache over flash and RAM
    runner.profiler = Profiler(board, tmp_path, {"dcache": "256:8:32:1", "icache": "1024:32:32:3"})
    data = default_input(source.graph).tobytes()
    with open_with_input(runner, firmware, data) as link:
        report = link.infer(count=2, warmup=1)
    profile = runner.profiler.collect()
    assert len(profile.windows) == 2  # one per timed inference, none for the warm-up
    window = profile.windows[0]
    assert abs(window.instructions - runner.latency(report.ticks_min).value) <= runner.latency(1).resolution
    flash = REGIONS.index("flash")
    hits, misses = window.caches["d"]
    assert hits[flash] + misses[flash] == sum(counts[flash] for counts in window.accesses.values()) > 0
    assert hits[REGIONS.index("ram")] + misses[REGIONS.index("ram")] == 0  # RAM is not in this cache
    assert misses[flash] > 0 and hits[flash] > misses[flash]
    # every execution of a block that ends in a conditional branch was either taken or not
    instructions = disassemble(firmware.elf)
    result = estimate(profile, window, instructions, *model_for("qemu-f412"))
    ends_in_branch = sum(count for block_id, count in window.block_counts.items()
                         if instructions[profile.blocks[block_id].instructions[-1][0]].kind == "branch"
                         or instructions[profile.blocks[block_id].instructions[-1][0]].writes_pc)
    followed = sum(count for (block_id, _next), count in window.edges.items()
                   if instructions[profile.blocks[block_id].instructions[-1][0]].kind == "branch"
                   or instructions[profile.blocks[block_id].instructions[-1][0]].writes_pc)
    assert result.branches_taken + result.branches_not_taken == followed
    assert ends_in_branch - followed <= 1  # only the window's last block has no successor inside it
    assert sum(window.block_counts.values()) > 0 and result.instructions == window.instructions
