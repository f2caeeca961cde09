"""The latency lookup table: layer keys of a space, prediction, refusal, and a build on QEMU."""
from __future__ import annotations

import io
import json
import random
from dataclasses import replace

import numpy as np

import pytest
import torch

from engine.torch_models import Stage
from hil.errors import LabError
from hil.progress import ProgressBar
from hil.store.results import open_store
from hil.targets.boards import load_board
from nas.layers import network_layers, space_layers
from nas.lut import LatencyTable, LutError, default_table_path, load_table, predict, predict_flash, save_table
from nas.lutkey import LatencyKey, current_key
from nas.measure import error_figures, macs_fit, macs_held_out, measure_layer, spearman
from nas.space import SPACES
from tinylab_cli.lut import measuring_jobs
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu

TINY = SPACES["tiny"]
KEY = LatencyKey(board="qemu-f746", kernels="optimized", kernel_library="a1b2c3d4", code_generator="e5f6",
                 toolchain="gcc 12", compile_flags=("-mcpu=cortex-m7", "-mthumb", "-O2"))


def test_keys_are_readable_and_cover_every_sampled_network():
    keys = space_layers(TINY)
    assert 10 <= len(keys) <= 20
    assert "mbconv-in:8x8x16-out:16-e:6-k:5-s:1-res" in keys
    assert "conv-in:32x32x3-out:8-k:3-s:2" in keys and "pool-in:4x4x32" in keys and "fc-in:32-out:10" in keys
    rng = random.Random(1)
    for space in SPACES.values():
        wanted = space_layers(space)
        for _ in range(50):
            assert all(layer.key in wanted for layer in network_layers(space.sample(rng)))


def test_residual_only_when_stride_1_and_channels_kept():
    config = TINY.config(32, (Stage(6, 16, 1, 2, 5), Stage(6, 16, 1, 1, 5), Stage(4, 24, 1, 2, 3)))
    keys = [layer.key for layer in network_layers(config)]
    assert keys == ["conv-in:32x32x3-out:8-k:3-s:2", "mbconv-in:16x16x8-out:16-e:6-k:5-s:2",
                    "mbconv-in:8x8x16-out:16-e:6-k:5-s:1-res", "mbconv-in:8x8x16-out:24-e:4-k:3-s:2",
                    "conv-in:4x4x24-out:32-k:1-s:1", "pool-in:4x4x32", "fc-in:32-out:10"]


def test_predict_adds_overhead_once_and_names_a_missing_key():
    config = TINY.sample(random.Random(0))
    keys = [layer.key for layer in network_layers(config)]
    table = LatencyTable(KEY, "instructions", overhead=100.0, layers={key: 1000.0 for key in keys})
    assert predict(table, config) == 100.0 + 1000.0 * len(keys)
    del table.layers[keys[1]]
    with pytest.raises(LutError, match=keys[1]):
        predict(table, config)


def test_table_is_refused_for_another_board(tmp_path):
    path = tmp_path / "t.json"
    save_table(LatencyTable(KEY, "instructions", 40.0, {"pool-in:4x4x32": 6000.0}), path)
    assert load_table(path, KEY).layers == {"pool-in:4x4x32": 6000.0}
    with pytest.raises(LutError, match="board 'qemu-f746', not 'qemu-f412'"):
        load_table(path, replace(KEY, board="qemu-f412", compile_flags=("-mcpu=cortex-m4",)))


def test_table_is_refused_naming_each_part_that_changed(tmp_path):
    path = tmp_path / "t.json"
    save_table(LatencyTable(KEY, "instructions", 40.0, {"pool-in:4x4x32": 6000.0}), path)
    with pytest.raises(LutError, match="the kernel library changed: table 'a1b2c3d4', now 'c3d4e5f6'") as refused:
        load_table(path, replace(KEY, kernel_library="c3d4e5f6"))
    assert "code generator" not in str(refused.value) and "flags" not in str(refused.value)
    with pytest.raises(LutError, match="the compile flags changed: table -O2, now -O3"):
        load_table(path, replace(KEY, compile_flags=("-mcpu=cortex-m7", "-mthumb", "-O3")))
    with pytest.raises(LutError, match="the code generator changed.*; the toolchain changed: table 'gcc 12', now 'gcc 13'"):
        load_table(path, replace(KEY, code_generator="ffff", toolchain="gcc 13"))
    with pytest.raises(LutError, match="the kernel set changed: table 'optimized', now 'portable'"):
        load_table(path, replace(KEY, kernels="portable"))
    path.write_text(json.dumps({"format": 1, "board": "qemu-f746", "engine_version": "0.2"}))
    with pytest.raises(LutError, match="format 1, expected 4"):
        load_table(path, KEY)


def test_key_names_a_readable_path_and_changes_with_any_part():
    path = default_table_path(KEY)
    assert path.parent.name == "qemu-f746" and path.name == f"optimized-{KEY.short}-v4.json"
    assert len(KEY.short) == 12
    assert replace(KEY, compile_flags=KEY.compile_flags + ("-DX",)).short != KEY.short
    assert LatencyKey.from_json(json.loads(json.dumps(KEY.to_json()))) == KEY


def test_current_key_holds_the_board_its_flags_and_the_engine_digests():
    key = current_key(load_board("qemu-f746"))
    assert key.board == "qemu-f746" and key.kernels == "optimized"
    assert "-mcpu=cortex-m7" in key.compile_flags and not any(f.startswith("-I/") for f in key.compile_flags)
    assert len(key.kernel_library) == len(key.code_generator) == 16
    assert current_key(load_board("qemu-f746")) == key
    assert current_key(load_board("qemu-f412")).compile_flags != key.compile_flags


def test_error_figures():
    figures = error_figures([100, 200, 300, 400], [104, 190, 300, 480])
    assert figures["within_5pct"] == 75.0 and figures["within_10pct"] == 75.0
    assert figures["mape"] == pytest.approx((4 + 5 + 0 + 20) / 4)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_macs_baseline_is_scored_on_networks_it_was_not_fitted_to():
    macs = np.array([1e5, 2e5, 3e5, 4e5, 5e5])
    measured = 2.0 * macs + 1000.0
    measured[2] += 50_000  # one network off the line
    held_out = macs_held_out(macs, measured)
    a, b = macs_fit(np.delete(macs, 2), np.delete(measured, 2))
    assert held_out[2] == pytest.approx(a * macs[2] + b)  # predicted without itself: the full miss
    assert abs(held_out[2] - measured[2]) > abs(macs_fit(macs, measured)[0] * macs[2] + macs_fit(macs, measured)[1]
                                                - measured[2])


def test_jobs_default_to_cores_under_qemu_and_one_on_a_physical_board():
    assert measuring_jobs(None, load_board("qemu-f746")) >= 1
    assert measuring_jobs(3, load_board("qemu-f746")) == 3
    assert measuring_jobs(None, load_board("nucleo-f746zg")) == 1
    with pytest.raises(LabError, match="physical board"):
        measuring_jobs(2, load_board("nucleo-f746zg"))
    with pytest.raises(LabError, match="at least 1"):
        measuring_jobs(0, load_board("qemu-f746"))


def test_progress_bar_lines_and_redraw():
    stream = io.StringIO()
    bar = ProgressBar(4, "lut build", stream=stream)
    for key in "abcd":
        bar.advance(key)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("lut build [######..................] 1/4  25% eta ") and lines[0].endswith("  a")
    assert lines[-1].startswith("lut build [########################] 4/4 100% took ")
    terminal = io.StringIO()
    bar = ProgressBar(2, stream=terminal, interactive=True)
    bar.advance()
    assert terminal.getvalue().startswith("\r\033[K[") and not terminal.getvalue().endswith("\n")
    bar.advance()
    assert terminal.getvalue().endswith("\n")


@needs_arm_gcc
@needs_qemu
def test_build_twice_measures_nothing_the_second_time_then_validate(tmp_path, private_store, capsys):
    table = tmp_path / "lut.json"
    args = ["lut", "build", "--board", "qemu-f746", "--space", "tiny", "--table", str(table), "--json"]
    assert main(args + ["--jobs", "2"]) == 0  # two QEMU instances at once
    first = json.loads(capsys.readouterr().out)
    assert len(first["measured"]) == first["keys"] == len(space_layers(TINY)) + 1
    # Parallel figures equal a serial measurement in this process.
    lut_key = LatencyKey.from_json(first["key"])
    assert lut_key == current_key(load_board("qemu-f746"))
    parallel = load_table(table, lut_key)
    layers = space_layers(TINY)
    for key in ("fc-in:32-out:10", "mbconv-in:8x8x16-out:16-e:6-k:5-s:1-res"):
        alone = measure_layer(load_board("qemu-f746"), layers[key], f"lut:{key}")
        assert parallel.layers[key] == alone.latency - parallel.overhead
        parts = alone.flash_parts
        assert parallel.code[key] == parts.code + parts.lab + parts.widened - parallel.overhead_code > 0
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["measured"] == []
    built = load_table(table, lut_key)
    assert built.unit == "instructions" and set(built.layers) == set(built.code) == set(space_layers(TINY))
    with open_store(private_store) as store:
        assert len(store.query(metric="layer_latency")) == len(space_layers(TINY))

    assert main(["lut", "validate", "--board", "qemu-f746", "--space", "tiny", "--table", str(table),
                 "--samples", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["samples"]) == 3 and result["lut"]["mape"] < 5.0
    assert all("predicted_macs_linear" in sample for sample in result["samples"])
    assert result["flash"]["mape"] < 3.0  # each layer's code measured, not a count of layers

    # What patches cost, measured on networks of the space; then the prediction of patched networks.
    assert main(args + ["--patches"]) == 0
    built = json.loads(capsys.readouterr().out)
    base, per_op = built["patch_cost"]
    assert built["measured"] == [] and len(built["patch_cost_pairs"]) == 4
    for pair in built["patch_cost_pairs"]:  # the line through the pairs holds each within 2,000 instructions
        assert abs(base + per_op * pair["patch_ops"] - pair["own"]) < 2_000, built["patch_cost_pairs"]
    assert main(["lut", "validate", "--board", "qemu-f746", "--space", "tiny", "--table", str(table),
                 "--samples", "3", "--patches", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["patches"] == 3 and len(result["samples"]) == 3
    assert result["lut"]["mape"] < 5.0 and result["flash"]["mape"] < 3.0
    assert main(["lut", "build", "--board", "qemu-f412", "--space", "tiny", "--table", str(table)]) == 2
    assert "measured on board 'qemu-f746', not 'qemu-f412'" in capsys.readouterr().err


def test_flash_prediction_adds_each_layers_code_and_names_a_missing_one():
    keys = list(space_layers(TINY))
    config = TINY.sample(random.Random(3))
    table = LatencyTable(KEY, "instructions", overhead=100.0, layers={key: 1000.0 for key in keys},
                         overhead_code=30000, code={key: 700 for key in keys})
    layers = network_layers(config)
    assert predict_flash(table, config, 5000) == 5000 + 30000 + 700 * len(layers)
    del table.code[layers[0].key]
    with pytest.raises(LutError, match=f"no code size for layer {layers[0].key}"):
        predict_flash(table, config, 5000)


def test_a_layers_weights_do_not_depend_on_the_callers_random_state():
    """A worker process and the parent measure the same network for the same key."""
    from nas.measure import layer_source

    layer = space_layers(SPACES["tiny"])["fc-in:32-out:10"]
    torch.manual_seed(1)
    first = layer_source(layer, "lut:a").tflite
    torch.manual_seed(2)
    torch.rand(5)
    assert layer_source(layer, "lut:a").tflite == first


def test_the_measuring_workers_run_torch_on_one_thread_each():
    """Two workers, each with torch's default of a thread per core, made the quantisation of a
    layer wait behind the other worker's QEMU and gcc: seconds per table entry."""
    from nas.workers import process_pool

    with process_pool(2) as pool:
        assert [pool.submit(torch.get_num_threads).result() for _ in range(2)] == [1, 1]
