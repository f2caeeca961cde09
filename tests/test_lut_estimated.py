"""A latency table in estimated cycles (issue 16): the same QEMU runs as the instruction table,
profiled, each figure the estimate of the same timed windows; a table of one unit or model is
never used as another."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from hil.errors import LabError
from hil.report.report import LUT_METRICS
from hil.store.results import open_store
from hil.targets.boards import load_board
from nas.lut import LatencyTable, LutError, default_table_path, load_table, save_table
from nas.lutkey import current_key
from nas.lutunit import cycle_model, requested_model, table_metric
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu

BOARD = load_board("qemu-f746")
# The smallest space: one network of five layers (stem, one block, head, pool, classifier).
ONE_NETWORK = {"name": "one", "resolutions": [16], "stem_channels": 8, "first_block_channels": 0, "head_channels": 16,
               "stages": [{"channels": 8, "stride": 2, "repeats": [1], "expands": [3], "kernels": [3]}]}


def test_the_unit_asked_for_and_the_model_that_keys_the_table(tmp_path):
    model = cycle_model(BOARD, "auto")
    assert model.name.startswith("cortex-m7 on nucleo-f746zg") and model.core == "cortex-m7"
    assert cycle_model(BOARD, "m7").name == model.name and cycle_model(BOARD, "m4").core == "cortex-m4"
    assert requested_model(BOARD, None, None) is None and requested_model(BOARD, "instructions", None) is None
    assert requested_model(BOARD, "estimated_cycles", None) == model
    assert requested_model(BOARD, None, "m4") == cycle_model(BOARD, "m4")  # --cycle-model alone: estimated
    with pytest.raises(LabError, match="measures instructions"):
        requested_model(BOARD, "cycles", None)
    with pytest.raises(LabError, match="goes with --unit estimated_cycles"):
        requested_model(BOARD, "instructions", "m7")
    with pytest.raises(LabError, match="needs an emulated run"):
        requested_model(load_board("nucleo-f746zg"), "estimated_cycles", None)

    key = current_key(BOARD)
    assert default_table_path(key, model).name == f"optimized-{key.short}-estimated_cycles-cortex-m7-nucleo-f746zg-v4.json"
    assert default_table_path(key, model).parent == default_table_path(key).parent
    for metric in ("layer_latency", "overhead_latency", "latency_predicted", "patch_op_latency", "patch_base_latency"):
        assert table_metric(metric, None) == metric and table_metric(metric, model) in LUT_METRICS

    path = tmp_path / "t.json"
    save_table(LatencyTable(key, "estimated_cycles", 40.0, {"pool-in:4x4x32": 6000.0}, cycle_model=model), path)
    assert load_table(path, key, model).cycle_model == model
    with pytest.raises(LutError, match="holds estimated_cycles .cortex-m7.*not the board's own unit"):
        load_table(path, key)
    with pytest.raises(LutError, match="estimated cycles of cortex-m7.*not of cortex-m4"):
        load_table(path, key, cycle_model(BOARD, "m4"))
    with pytest.raises(LutError, match="the timing data or the estimator changed"):
        load_table(path, key, replace(model, digest="0" * 16))
    save_table(LatencyTable(key, "instructions", 40.0, {"pool-in:4x4x32": 6000.0}), path)
    assert "cycle_model" not in json.loads(path.read_text())  # an instruction table is written as before
    with pytest.raises(LutError, match="holds instructions, not estimated_cycles"):
        load_table(path, key, model)


@needs_arm_gcc
@needs_qemu
def test_a_table_in_estimated_cycles_beside_the_instruction_table(tmp_path, private_store, capsys):
    space = tmp_path / "one.json"
    space.write_text(json.dumps(ONE_NETWORK))
    build = ["lut", "build", "--board", "qemu-f746", "--space", str(space), "--jobs", "2", "--json"]
    instructions, estimated = tmp_path / "instructions.json", tmp_path / "estimated.json"
    assert main(build + ["--table", str(instructions)]) == 0
    capsys.readouterr()
    before = instructions.read_text()

    assert main(build + ["--table", str(estimated), "--unit", "estimated_cycles", "--cycle-model", "auto"]) == 0
    summary = json.loads(capsys.readouterr().out)
    model = cycle_model(BOARD, "auto")
    assert summary["unit"] == "estimated_cycles" and summary["cycle_model"] == model.name
    key = current_key(BOARD)
    table, plain = load_table(estimated, key, model), load_table(instructions, key)
    assert table.unit == "estimated_cycles" and table.cycle_model == model and plain.unit == "instructions"
    assert set(table.layers) == set(plain.layers) and len(plain.layers) == 5
    assert all(table.layers[k] != plain.layers[k] for k in plain.layers) and table.overhead != plain.overhead
    assert table.code == plain.code and table.overhead_code == plain.overhead_code  # the same firmware
    assert instructions.read_text() == before

    with open_store(private_store) as store:
        rows = store.query()
    estimated_runs = {r.run_id for r in rows if r.metric == "estimated_layer_latency"}
    assert len(estimated_runs) == 1 and len([r for r in rows if r.metric == "layer_latency"]) == 5
    of_run = {(r.model, r.metric): r for r in rows if r.run_id in estimated_runs}
    overhead = of_run[("lut:overhead", "estimated_latency")]
    assert overhead.value == table.overhead and overhead.unit == "estimated_cycles"
    for layer in plain.layers:
        # profiled, the run's instruction count is the instruction table's, its estimate the estimated table's
        assert of_run[(f"lut:{layer}", "latency")].value == plain.overhead + plain.layers[layer]
        assert of_run[(f"lut:{layer}", "estimated_latency")].value - overhead.value == table.layers[layer]
        row = of_run[(f"lut:{layer}", "estimated_layer_latency")]
        assert row.unit == "estimated_cycles" and json.loads(row.extra)["cycle_model"] == model.name

    # A table of one unit or model is never used as another.
    assert main(build + ["--table", str(estimated)]) == 2
    assert "holds estimated_cycles" in capsys.readouterr().err
    assert main(build + ["--table", str(instructions), "--unit", "estimated_cycles"]) == 2
    assert "holds instructions, not estimated_cycles" in capsys.readouterr().err
    assert main(build + ["--table", str(estimated), "--cycle-model", "m4"]) == 2
    assert "not of cortex-m4" in capsys.readouterr().err

    # Validated against networks estimated the same way.
    assert main(["lut", "validate", "--board", "qemu-f746", "--space", str(space), "--table", str(estimated),
                 "--unit", "estimated_cycles", "--samples", "3", "--jobs", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["unit"] == "estimated_cycles" and result["cycle_model"] == model.name
    assert result["lut"]["mape"] < 5.0
