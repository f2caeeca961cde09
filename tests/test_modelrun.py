"""Models end to end: engine -> firmware -> QEMU, output bit-exact with TFLite Micro."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.export import export_tflite
from engine.hostbuild import run_generated_on_host
from engine.oracle import run_tflm
from engine.quantize import quantize_input, quantize_model
from engine.torch_models import TinyMobileNetConfig
from engine.zoo import seeded_model, synthetic_images
from hil.experiments.modelrun import build_model_firmware, run_model
from hil.experiments.models import ModelSource, default_input, resolve_model
from hil.run.runners import runner_for
from hil.store.results import open_store
from hil.targets.boards import load_board
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu

pytestmark = [needs_arm_gcc, needs_qemu]

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
SHARED = sorted(SHARED_MODELS.glob("*.tflite")) if SHARED_MODELS.is_dir() else []
needs_shared = pytest.mark.skipif(not SHARED, reason=f"no shared models at {SHARED_MODELS}")


def test_default_model_runs_and_matches_tflm(private_store, capsys):
    assert main(["run", "--board", "qemu-f746", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "mcunet-tiny" and result["matches_reference"] is True
    assert result["latency_unit"] == "instructions" and result["latency"] > 100_000
    assert result["peak_sram_bytes"] == result["model_static_bytes"] + result["stack_high_water_bytes"]
    assert result["model_static_bytes"] >= result["arena_planned_bytes"] and result["input_staged"] is True
    assert result["peak_sram_bytes"] + result["lab_overhead_bytes"] == result["static_ram_bytes"] + result["stack_high_water_bytes"]
    assert 0 < result["arena_touched_bytes"] <= result["arena_planned_bytes"]
    with open_store(private_store) as store:
        rows = {r.metric: r for r in store.query(model="mcunet-tiny")}
    assert rows["latency"].value == result["latency"] and rows["latency"].unit == "instructions"
    assert rows["peak_sram"].value == result["peak_sram_bytes"]
    assert rows["lab_overhead"].value == result["lab_overhead_bytes"] and rows["lab_overhead"].unit == "bytes"
    transcript = Path(json.loads(rows["latency"].extra)["transcript"])
    assert transcript == private_store.parent / "transcripts" / f"{rows['latency'].run_id}.txt"
    said = transcript.read_text()
    assert "QEMU boots" in said and "> infer 1 1%" in said and "< m-ready" in said


def test_bench_without_models_benchmarks_the_default_one(private_store, capsys):
    assert main(["bench", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["model"] for r in runs] == ["mcunet-tiny"] and runs[0]["matches_reference"]


def test_a_torch_model_matches_tflm_on_host_and_under_qemu():
    config = TinyMobileNetConfig(stages=((1, 8, 1, 1, 3), (4, 12, 2, 2, 5)), input_size=20, stem_channels=6, num_classes=4)
    images = synthetic_images(config, 8, seed=5)
    graph = quantize_model(seeded_model(config, seed=3), images, name="test-torch", pool="AVERAGE_POOL_2D")
    tflite = export_tflite(graph)
    value = quantize_input(graph, images[:1].numpy())
    expected = run_tflm(tflite, [value])[0]
    assert np.array_equal(run_generated_on_host(graph, [value])[0], expected)
    result = run_model(load_board("qemu-f412"), ModelSource("test-torch", tflite, _graph=graph), value)
    assert np.array_equal(result.output, expected) and result.matches_reference


@needs_shared
def test_input_and_output_round_trip(tmp_path, capsys):
    model = SHARED_MODELS / "kws_ref_model.tflite"
    source = resolve_model(str(model))
    value = default_input(source.graph, seed=7)
    np.save(tmp_path / "x.npy", value)
    assert main(["run", str(model), "--board", "qemu-f746", "--input", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "y.npy"), "--no-store"]) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), run_tflm(model.read_bytes(), [value])[0])


@needs_shared
def test_input_sent_over_the_uart_gives_the_same_output():
    board = load_board("qemu-f746")
    source = resolve_model(str(SHARED_MODELS / "micro_speech_quantized.tflite"))
    value = default_input(source.graph, seed=3)
    firmware = build_model_firmware(board, source).firmware
    with runner_for(board).open(firmware) as link:
        link.load_input(value.tobytes())  # db load N% / db HEX% lines
        over_uart = link.infer(1, 0).results
    assert np.array_equal(np.array(over_uart, dtype=np.int8), run_tflm(source.tflite, [value])[0].ravel())


@needs_shared
@pytest.mark.parametrize("board", ["qemu-f746", "qemu-f412"])
@pytest.mark.parametrize("model", SHARED, ids=lambda p: p.stem)
def test_shared_models_match_tflm_on_the_emulated_boards(model, board):
    source = resolve_model(str(model))
    result = run_model(load_board(board), source, default_input(source.graph))
    assert result.matches_reference, f"{model.stem} on {board}: output differs from TFLM"
    assert result.unit == "instructions" and result.latency > 0
    assert result.arena_touched <= result.arena_planned


def test_bench_compare_prints_ratios_against_portable_kernels_and_tflm(private_store, capsys):
    assert main(["bench", "--compare", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["comparisons"]
    assert row["model"] == "mcunet-tiny" and row["matches_reference"]
    assert row["latency_ratio"] == row["latency"] / row["latency_portable"] < 1
    assert row["engine_sram_bytes"] == row["peak_sram_bytes"] >= row["arena_bytes"] + row["stack_high_water_bytes"]
    assert row["flash_bytes"] > 0 and row["flash_portable_bytes"] > 0
    assert row["sram_vs_tflm_activations"] == row["engine_sram_bytes"] / row["tflm_activation_bytes"]
    assert row["arena_bytes"] >= row["arena_lower_bound_bytes"]
    with open_store(private_store) as store:
        engines = {r.engine for r in store.query(model="mcunet-tiny", metric="latency")}
        tflm = store.query(model="mcunet-tiny", metric="tflm_arena")
    assert engines == {"tinylab", "tinylab-portable"}
    assert tflm[0].value == row["tflm_arena_bytes"] and tflm[0].backend == "host"
