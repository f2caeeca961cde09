"""`tinylab nas deploy` (`nas/deploy.py`): a subnet of a tiny supernet trained one epoch on digits
at resolution 8, deployed on qemu-f412: bit-exact with TFLite Micro and on the target with the
host, measured peak SRAM equal to the prediction (planner plus the board's overhead), measured
latency within 5 % of the latency table's prediction, int8 accuracy close to float; a missing
checkpoint or a wrong architecture is refused clearly."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import needs_arm_gcc, needs_qemu
from hil.errors import LabError
from hil.store.results import open_store
from nas.space import SearchSpace, StageChoices, save_space

SPACE = SearchSpace(
    name="deploy-cli", resolutions=(8,), input_channels=1, stem_channels=8, stem_stride=1, first_block_channels=0,
    stages=(StageChoices(channels=16, stride=2, repeats=(1, 2), expands=(3, 6), kernels=(3, 5)),
            StageChoices(channels=24, stride=2, repeats=(1, 2), expands=(3, 6), kernels=(3, 5))),
)
TRAIN = ["--width", "1", "--resolution", "8", "--dataset", "digits", "--epochs", "1", "--batch-size", "64",
         "--subnets", "1"]
ARCH = "k5e6-k3e3 | k3e6"
TARGET_IMAGES = 5  # one QEMU boot each; the command's default is 50


def test_a_missing_checkpoint_and_a_wrong_arch_are_refused(tmp_path, monkeypatch, capsys):
    from tinylab_cli.main import main

    monkeypatch.setenv("TINYLAB_CACHE", str(tmp_path))
    space = str(save_space(SPACE, tmp_path / "deploy-cli.json"))
    assert main(["nas", "deploy", "--space", space, *TRAIN, "--arch", ARCH]) == 2
    assert f"make it with 'tinylab nas train --space {space} --width 1 --resolution 8" in capsys.readouterr().err
    assert main(["nas", "deploy", "--checkpoint", str(tmp_path / "none.pt"), "--arch", ARCH]) == 2
    assert "no supernet checkpoint at" in capsys.readouterr().err
    assert main(["nas", "deploy", "--checkpoint", "x.pt"]) == 2
    assert "--arch ARCH or --search-json FILE" in capsys.readouterr().err


def test_the_arch_comes_from_a_search_json(tmp_path):
    import argparse

    from tinylab_cli.nas_deploy import chosen_arch

    path = tmp_path / "search.json"
    path.write_text(json.dumps({"evolution": {"architecture": ARCH}, "random": {"architecture": "k3e3 | k3e3"}}))
    assert str(chosen_arch(argparse.Namespace(arch=None, search_json=path))) == ARCH
    path.write_text("{}")
    with pytest.raises(LabError, match="not a 'nas search --json' output"):
        chosen_arch(argparse.Namespace(arch=None, search_json=path))


@needs_arm_gcc
@needs_qemu
def test_nas_deploy_command(tmp_path, monkeypatch, capsys):
    from tinylab_cli.main import main

    monkeypatch.setenv("TINYLAB_CACHE", str(tmp_path))
    space = str(save_space(SPACE, tmp_path / "deploy-cli.json"))
    assert main(["nas", "train", "--space", space, *TRAIN, "--random-subnets", "0", "--json"]) == 0
    capsys.readouterr()
    store = tmp_path / "lab.sqlite"
    assert main(["nas", "deploy", "--space", space, *TRAIN, "--arch", "k5e6-k3e3 | k3e6 | k3e3"]) == 2
    assert "stages" in capsys.readouterr().err
    assert main(["nas", "deploy", "--space", space, *TRAIN, "--arch", ARCH, "--board", "qemu-f412", "--sram", "64K",
                 "--flash", "512K", "--target-images", str(TARGET_IMAGES), "--store", str(store), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    print(json.dumps(report, indent=2))
    assert report["architecture"] == ARCH
    assert report["matches_reference"] is True and report["target_matches_host"] is True
    assert report["target_images"] == TARGET_IMAGES
    predicted, measured = report["predicted"], report["measured"]
    assert predicted["latency_unit"] == measured["latency_unit"] == "instructions"
    # The arena is the planner's exactly; the board's overhead (statics beyond the arena, stack) is
    # the larger of its two probe networks' (nas/overhead.py), so the prediction is an upper bound:
    # 40 B above the measured figure for this subnet (its stack is smaller than the probes').
    assert measured["arena_planned_bytes"] == predicted["arena_bytes"]
    assert 0 <= predicted["peak_sram_bytes"] - measured["peak_sram_bytes"] <= 64, (measured, predicted)
    assert measured["peak_sram_bytes"] <= report["budget"]["sram_bytes"]
    assert abs(measured["latency"] / predicted["latency"] - 1) <= 0.05, (measured, predicted)
    assert 0 < measured["flash_bytes"] <= 524288
    # The prediction adds each layer's code and int16 weight copies as the latency table measured
    # them (nas/lut.py), and a network predicted within the budget keeps every copy.
    assert measured["widened_weights_bytes"] > 0
    assert abs(measured["flash_bytes"] / predicted["flash_bytes"] - 1) <= 0.03, (measured, predicted)
    assert report["float_accuracy"] > 0.3
    assert abs(report["int8_accuracy"] - report["float_accuracy"]) <= 0.05
    with open_store(store) as opened:
        rows = opened.query(metric="int8_accuracy")
        assert [json.loads(r.extra)["role"] for r in rows] == ["deployed"]
        assert len(opened.query(metric="nas_predicted_latency")) == 1


def test_host_outputs_equal_the_engine_reference_across_chunks():
    """The int8 accuracy's outputs come from the generated C on the host; they equal the numpy
    reference (bit-exact with TFLM) row by row, also where a chunk boundary falls."""
    from engine.quantize import quantize_input, quantize_model
    from engine.reference import run_reference
    from engine.zoo import MCUNET_TINY, seeded_model, synthetic_images
    from nas.deploy import host_outputs

    graph = quantize_model(seeded_model(), synthetic_images(MCUNET_TINY, 8, 3), name="host-check", pool="MEAN")
    inputs = quantize_input(graph, synthetic_images(MCUNET_TINY, 5, 4).numpy())
    shape = graph.tensors[graph.inputs[0]].shape
    expected = np.stack([run_reference(graph, [x.reshape(shape)])[0].reshape(-1) for x in inputs])
    assert np.array_equal(host_outputs(graph, inputs, chunk=2), expected)
