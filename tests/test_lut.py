"""The latency lookup table: layer keys of a space, prediction, refusal, and a build on QEMU."""
from __future__ import annotations

import json
import random

import pytest

from engine.torch_models import Stage
from hil.cli import main
from hil.results import open_store
from nas.layers import network_layers, space_layers
from nas.lut import LatencyTable, LutError, load_table, predict, save_table
from nas.measure import error_figures, spearman
from nas.space import SPACES

from conftest import needs_arm_gcc, needs_qemu

TINY = SPACES["tiny"]


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
    table = LatencyTable("qemu-f746", "0.2", "instructions", overhead=100.0,
                         layers={key: 1000.0 for key in keys})
    assert predict(table, config) == 100.0 + 1000.0 * len(keys)
    del table.layers[keys[1]]
    with pytest.raises(LutError, match=keys[1]):
        predict(table, config)


def test_table_is_refused_for_another_board_or_engine(tmp_path):
    path = tmp_path / "t.json"
    save_table(LatencyTable("qemu-f746", "0.2", "instructions", 40.0, {"pool-in:4x4x32": 6000.0}), path)
    assert load_table(path, "qemu-f746", "0.2").layers == {"pool-in:4x4x32": 6000.0}
    with pytest.raises(LutError, match="board 'qemu-f746', not 'qemu-f412'"):
        load_table(path, "qemu-f412", "0.2")
    with pytest.raises(LutError, match="engine version '0.2', not '0.3'"):
        load_table(path, "qemu-f746", "0.3")


def test_error_figures():
    figures = error_figures([100, 200, 300, 400], [104, 190, 300, 480])
    assert figures["within_5pct"] == 75.0 and figures["within_10pct"] == 75.0
    assert figures["mape"] == pytest.approx((4 + 5 + 0 + 20) / 4)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


@needs_arm_gcc
@needs_qemu
def test_build_twice_measures_nothing_the_second_time_then_validate(tmp_path, private_store, capsys):
    table = tmp_path / "lut.json"
    args = ["lut", "build", "--board", "qemu-f746", "--space", "tiny", "--table", str(table), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["measured"]) == first["keys"] == len(space_layers(TINY)) + 1
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["measured"] == []
    built = load_table(table, "qemu-f746", first["engine_version"])
    assert built.unit == "instructions" and set(built.layers) == set(space_layers(TINY))
    with open_store(private_store) as store:
        assert len(store.query(metric="layer_latency")) == len(space_layers(TINY))

    assert main(["lut", "validate", "--board", "qemu-f746", "--space", "tiny", "--table", str(table),
                 "--samples", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["samples"]) == 3 and result["lut"]["mape"] < 5.0
    assert main(["lut", "build", "--board", "qemu-f412", "--space", "tiny", "--table", str(table)]) == 2
    assert "measured on board 'qemu-f746', not 'qemu-f412'" in capsys.readouterr().err
