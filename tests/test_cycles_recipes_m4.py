"""The Cortex-M4 validation pairs: MLPerf Tiny's v0.5 reference submission (TFLM 2.3.1 + CMSIS-NN,
hil/cycles_validation/recipes/tflm_reference.py) and OctoML's v1.0 microTVM submissions
(hil/cycles_validation/recipes/microtvm.py) rebuilt for qemu-l4r5, and their published latencies
(hil/cycles_validation/published/mlperf-tiny.yaml). The builds and runs need the fetched sources and skip
naming their environment variables where they are not set."""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from hil.cycles_validation.published import PublishedLatency
from hil.cycles_validation.recipes import RECIPES
from hil.cycles_validation.recipes.microtvm import CMSIS_5, MICROTVM_NATIVE, RESULTS_V1_0, read_project
from hil.cycles_validation.recipes.sourcetree import SourceFolderError
from hil.cycles_validation.recipes.tflm_reference import RESULTS_V0_5, TFLM_2_3_TREE, TFLM_REFERENCE
from hil.targets.boards import load_board

PAIRS_FILE = Path(__file__).resolve().parent.parent / "hil/cycles_validation/published/mlperf-tiny.yaml"
SOURCES = {env: os.environ.get(env) for env in (RESULTS_V1_0.env, CMSIS_5.env)}
needs_sources = pytest.mark.skipif(
    not all(SOURCES.values()),
    reason=f"set {RESULTS_V1_0.env} (mlcommons/tiny_results_v1.0) and {CMSIS_5.env} (CMSIS_5 at 51263182)")
REFERENCE_SOURCES = {env: os.environ.get(env) for env in (TFLM_2_3_TREE.env, RESULTS_V0_5.env, CMSIS_5.env)}
needs_reference_sources = pytest.mark.skipif(
    not all(REFERENCE_SOURCES.values()),
    reason=f"set {TFLM_2_3_TREE.env} (mlcommons/tiny at 5b637a6), {RESULTS_V0_5.env} "
           f"(mlcommons/tiny_results_v0.5) and {CMSIS_5.env} (CMSIS_5 at 51263182)")
needs_tools = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                                 reason="arm-none-eabi-gcc or qemu-system-arm is not installed")


def published_pairs() -> list[PublishedLatency]:
    return [PublishedLatency(**entry) for entry in yaml.safe_load(PAIRS_FILE.read_text())["pairs"]]


def ad01_pair(recipe: str = MICROTVM_NATIVE.name) -> PublishedLatency:
    return next(p for p in published_pairs() if p.model == "ad01" and p.recipe == recipe)


def test_every_published_pair_names_a_recipe_and_an_emulated_cortex_m4_twin():
    pairs = published_pairs()
    recipes = ("mlperf-reference-tflm", "octoml-microtvm-native", "octoml-microtvm-cmsis-nn")
    assert len(pairs) == 12
    assert {(p.recipe, p.model) for p in pairs} == {(r, m) for r in recipes for m in ("ad01", "kws01", "ic01", "vww01")}
    for pair in pairs:
        assert pair.recipe in RECIPES
        twin = load_board(pair.twin)
        assert twin.emulated and twin.core == "cortex-m4"
        assert pair.clock_hz == 120_000_000 and 1.0 < pair.latency_ms < 1000.0
        assert "results.txt line" in pair.source
        assert load_board(pair.board).clock_hz == pair.clock_hz and not load_board(pair.board).emulated


def test_a_missing_source_folder_names_its_environment_variable(monkeypatch):
    monkeypatch.delenv(RESULTS_V1_0.env, raising=False)
    with pytest.raises(SourceFolderError, match=RESULTS_V1_0.env) as error:
        MICROTVM_NATIVE.project(ad01_pair(), {})
    assert "git clone" in str(error.value)


def test_a_folder_that_is_not_the_results_repository_is_refused(tmp_path):
    with pytest.raises(SourceFolderError, match="is not mlcommons/tiny_results_v1.0.*CMakeLists.txt"):
        MICROTVM_NATIVE.project(ad01_pair(), {RESULTS_V1_0.env: tmp_path})
    with pytest.raises(SourceFolderError, match="is not a folder"):
        MICROTVM_NATIVE.project(ad01_pair(), {RESULTS_V1_0.env: tmp_path / "absent"})


def test_an_unknown_model_is_refused_with_the_ones_the_recipe_has():
    pair = PublishedLatency("x", "mcunet-in3", "nucleo-l4r5zi", "qemu-l4r5", 1.0, 120_000_000, "", MICROTVM_NATIVE.name)
    with pytest.raises(SourceFolderError, match="no project for model 'mcunet-in3'.*ad01"):
        MICROTVM_NATIVE.project(pair, {})


def test_a_project_without_its_build_definitions_is_refused(tmp_path):
    (tmp_path / "include").mkdir()
    (tmp_path / "CMakeLists.txt").write_text("set(ENABLE_CMSIS TRUE)\n")
    (tmp_path / "include/tvmgen_default.h").write_text("struct tvmgen_default_inputs {\n  void* input_1;\n};\n")
    (tmp_path / "include/output_data.h").write_text("const size_t output_data_len = 2;\nint8_t output_data[] = {0, 0};\n")
    with pytest.raises(SourceFolderError, match="one output"):
        read_project(tmp_path)


@needs_sources
@needs_tools
def test_ad01_builds_from_the_submission_and_runs_on_qemu_l4r5(tmp_path):
    from hil.run.runners import runner_for
    from hil.run.target import open_with_input

    pair = ad01_pair()
    folders = {env: Path(value) for env, value in SOURCES.items()}
    firmware = RECIPES[pair.recipe].build(pair, folders, tmp_path)
    assert firmware.board.name == "qemu-l4r5" and not firmware.from_cache
    assert firmware.size.flash > 200_000  # the model's weights, as TVM generated them
    again = RECIPES[pair.recipe].build(pair, folders, tmp_path)
    assert again.from_cache and again.elf == firmware.elf

    data = np.linspace(-1.0, 1.0, 640, dtype=np.float32).tobytes()
    runner = runner_for(firmware.board, timeout_s=120)
    with open_with_input(runner, firmware, data) as link:
        report = link.infer(count=2, warmup=1)
    assert report.ticks_min == report.ticks_max  # instruction counts are deterministic
    latency = runner.latency(report.ticks_min)
    assert latency.unit == "instructions"
    # the published 11.7 ms at 120 MHz is 1.4 M cycles: a Cortex-M4 retires at most one instruction a cycle
    assert 100_000 < latency.value < pair.latency_ms * 1e-3 * pair.clock_hz
    output = np.frombuffer(report.output, dtype=np.float32)
    assert output.shape == (640,) and all(math.isfinite(v) for v in output) and np.any(output != 0.0)


def test_the_reference_recipe_refuses_a_v0_5_folder_without_its_submission(tmp_path, monkeypatch):
    monkeypatch.setenv(TFLM_2_3_TREE.env, str(tmp_path))
    with pytest.raises(SourceFolderError, match=f"{TFLM_2_3_TREE.env}=.*is not mlcommons/tiny at 5b637a6.*micro_interpreter.cc"):
        TFLM_REFERENCE.inputs(ad01_pair(TFLM_REFERENCE.name), {})


@needs_reference_sources
@needs_tools
def test_the_v0_5_reference_ad01_builds_and_is_bit_exact_with_the_tflm_oracle(tmp_path):
    from engine.oracle import run_tflm
    from hil.run.runners import runner_for
    from hil.run.target import open_with_input

    pair = ad01_pair(TFLM_REFERENCE.name)
    folders = {env: Path(value) for env, value in REFERENCE_SOURCES.items()}
    _, submission, _ = TFLM_REFERENCE.inputs(pair, folders)
    assert submission.arena_bytes == 10 * 1024 and "FullyConnected" in submission.ops
    firmware = RECIPES[pair.recipe].build(pair, folders, tmp_path)
    value = np.random.default_rng(1).integers(-128, 128, (1, 640), dtype=np.int8)
    runner = runner_for(firmware.board, timeout_s=120)
    with open_with_input(runner, firmware, value.tobytes()) as link:
        report = link.infer(count=2, warmup=1)
    assert report.ticks_min == report.ticks_max
    latency = runner.latency(report.ticks_min)
    assert 100_000 < latency.value < pair.latency_ms * 1e-3 * pair.clock_hz
    expected = run_tflm(submission.model, [value])[0]
    assert np.array_equal(np.frombuffer(report.output, dtype=np.int8).reshape(expected.shape), expected)
