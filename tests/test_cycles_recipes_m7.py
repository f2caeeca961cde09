"""The Cortex-M7 validation recipes of the cycle model (TinyEngine's README, STM32H743): refusals
of missing or wrong source folders, and, where TinyEngine's sources are given, a real build of
TinyEngine's code for mcunet-vww1 run on qemu-h743."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from engine.cache import cache_root
from hil.cycles_validation.published import PublishedLatency
from hil.cycles_validation.recipes import RECIPES
from hil.cycles_validation.recipes.pinned import software_versions
from hil.cycles_validation.recipes.sourcetree import SourceFolderError
from hil.cycles_validation.recipes.tinyengine import GENERATOR_PYTHON, TINYENGINE, TINYENGINE_CMSIS

PAIRS_FILE = Path(__file__).resolve().parents[1] / "hil" / "cycles_validation" / "published" / "tinyengine-h743.yaml"
TINYENGINE_SOURCES = (TINYENGINE.source.env, TINYENGINE_CMSIS.source.env, GENERATOR_PYTHON.env)
missing_sources = [env for env in TINYENGINE_SOURCES if not os.environ.get(env)]
README_FLASH_KB = {"mcunet-vww1": 521}  # TinyEngine's README, Flash table, TinyEngine column


def pairs() -> list[PublishedLatency]:
    return [PublishedLatency(**entry) for entry in yaml.safe_load(PAIRS_FILE.read_text())["pairs"]]


def pair_of(recipe: str, model: str) -> PublishedLatency:
    return next(p for p in pairs() if p.recipe == recipe and p.model == model)


def test_every_pair_names_a_registered_recipe_and_the_commit_it_builds() -> None:
    for pair in pairs():
        assert pair.recipe in RECIPES, pair
        versions = software_versions(pair.software)
        assert versions, pair.software
        assert pair.twin == "qemu-h743" and pair.board == "nucleo-h743zi"


def test_an_unset_source_folder_is_refused_by_its_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for env in TINYENGINE_SOURCES:
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("TINYLAB_MCUNET_MODELS_DIR", str(tmp_path))
    pair = pair_of("tinyengine", "mcunet-vww1")
    with pytest.raises(SourceFolderError, match=TINYENGINE.source.env):
        RECIPES["tinyengine"].build(pair, {}, tmp_path / "cache")


def test_a_tree_at_another_commit_is_refused(tmp_path: Path) -> None:
    for name in TINYENGINE.markers:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("/* not TinyEngine at 0363956 */\n")
    with pytest.raises(SourceFolderError, match="not at commit 03639563ebf6"):
        TINYENGINE.locate({TINYENGINE.source.env: tmp_path})


def test_a_pair_for_another_version_is_refused(tmp_path: Path) -> None:
    pair = replace(pair_of("tinyengine", "mcunet-vww1"), software="tinyengine@1234567")
    with pytest.raises(SourceFolderError, match="builds tinyengine@0363956 only"):
        RECIPES["tinyengine"].build(pair, {}, tmp_path)


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.skipif(bool(missing_sources), reason=f"set {', '.join(missing_sources)} (TinyEngine's sources) to build it")
def test_tinyengine_builds_mcunet_vww1_as_published_and_runs_on_the_twin(tmp_path: Path) -> None:
    from hil.run.runners import runner_for
    from hil.run.target import open_with_input

    pair = pair_of("tinyengine", "mcunet-vww1")
    firmware = RECIPES["tinyengine"].build(pair, {}, tmp_path)
    # The published build: TinyEngine's flash for this model is the README's, within 2 %.
    assert abs(firmware.size.flash / 1000 - README_FLASH_KB[pair.model]) < 0.02 * README_FLASH_KB[pair.model]
    again = RECIPES["tinyengine"].build(pair, {}, tmp_path)
    assert again.from_cache and again.digest == firmware.digest

    runner = runner_for(firmware.board)
    with open_with_input(runner, firmware, bytes(80 * 80 * 3)) as link:
        report = link.infer(count=1, warmup=1, timeout_s=300.0)
    latency = runner.latency(report.ticks_min)
    assert latency.unit == "instructions"
    assert report.output_of_loaded_input and len(report.output) == 2
    cycles = pair.latency_ms * 1e-3 * pair.clock_hz
    assert 0.3 < cycles / latency.value < 3.0, (cycles, latency.value)  # a Cortex-M7's plausible CPI


TFLM_SOURCE = "TINYLAB_TFLM_713B6ED_DIR"
# The user's lab cache, read before the test session points TINYLAB_CACHE at a fresh folder: TFLM's
# Makefile takes 20 minutes or more on two cores, so the test reuses a library built there before.
USER_CACHE = cache_root()


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get(TFLM_SOURCE) or not os.environ.get("TINYLAB_MCUNET_MODELS_DIR"),
                    reason=f"set {TFLM_SOURCE} (tflite-micro at 713b6ed, downloads filled) and TINYLAB_MCUNET_MODELS_DIR "
                           "(MCUNet's zoo files) to build TFLM + CMSIS-NN for mcunet-in3")
def test_tflm_with_cmsis_nn_at_713b6ed_runs_mcunet_in3_bit_exact_with_the_oracle(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from engine.oracle import run_tflm
    from hil.cycles_validation.recipes.mcunet_models import model_source
    from hil.run.runners import runner_for
    from hil.run.target import open_with_input

    pair = pair_of("tflm-cmsis-nn", "mcunet-in3")
    monkeypatch.setenv("TINYLAB_CACHE", str(USER_CACHE))
    firmware = RECIPES["tflm-cmsis-nn"].build(pair, {}, USER_CACHE / "cycles")
    value = np.random.default_rng(16).integers(-128, 128, size=(1, 176, 176, 3), dtype=np.int8)
    runner = runner_for(firmware.board)
    with open_with_input(runner, firmware, value.tobytes()) as link:
        report = link.infer(count=1, warmup=1, timeout_s=600.0)
    assert report.output_of_loaded_input and runner.latency(report.ticks_min).unit == "instructions"
    expected = run_tflm(model_source(pair.model, {}).tflite, [value])[0].reshape(-1)
    assert np.array_equal(np.frombuffer(report.output, dtype=np.int8), expected)


def test_the_tflm_workload_gives_an_error_reporter_only_where_the_interpreter_takes_one(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from hil.firmware_build.tflm_baseline_workload import interpreter_needs_error_reporter

    header = tmp_path / "tensorflow/lite/micro/micro_interpreter.h"
    header.parent.mkdir(parents=True)
    header.write_text("  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver,\n"
                      "                   uint8_t* tensor_arena, size_t tensor_arena_size,\n"
                      "                   ErrorReporter* error_reporter,\n"
                      "                   MicroResourceVariables* resource_variables = nullptr);\n")
    assert interpreter_needs_error_reporter(SimpleNamespace(include_dirs=(tmp_path,)))
    header.write_text("  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver,\n"
                      "                   uint8_t* tensor_arena, size_t tensor_arena_size,\n"
                      "                   MicroResourceVariables* resource_variables = nullptr);\n")
    assert not interpreter_needs_error_reporter(SimpleNamespace(include_dirs=(tmp_path,)))
