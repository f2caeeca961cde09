"""Supernet training on digits at a tiny resolution: resuming gives the weights of an
uninterrupted run, a short training beats chance, checkpoints are keyed by the settings, and
`tinylab nas train` reports accuracies and the checkpoint."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from nas.checkpoint import CheckpointError
from nas.space import SearchSpace, StageChoices, save_space
from conftest import needs_arm_gcc, needs_qemu
from nas.train import TrainConfig, TrainError, evaluate, run_checkpoint, train

DIGITS_SPACE = SearchSpace(
    name="digits-small", resolutions=(8,), input_channels=1, stem_channels=8, stem_stride=1, first_block_channels=8,
    stages=(StageChoices(channels=16, stride=2, repeats=(1, 2)), StageChoices(channels=24, stride=2, repeats=(1, 2))),
)


@pytest.fixture
def space_file(tmp_path):
    return str(save_space(DIGITS_SPACE, tmp_path / "digits-small.json"))


def config_of(space_file: str, **changes) -> TrainConfig:
    base = TrainConfig(width=1.0, resolution=8, space=space_file, dataset="digits", epochs=2, batch_size=32,
                       subnets=2, seed=3, optimizer="adam")
    return replace(base, **changes)


def test_resume_equals_an_uninterrupted_run(space_file, tmp_path):
    config = config_of(space_file)
    whole = train(config, cache=tmp_path / "a")
    first = train(config, cache=tmp_path / "b", stop_after=1)
    assert first.epochs_done == 1 and first.checkpoint.is_file()
    resumed = train(config, cache=tmp_path / "b")
    assert resumed.resumed_from == 1 and resumed.epochs_done == 2
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    a, b = whole.supernet.state_dict(), resumed.supernet.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = train(config, cache=tmp_path / "b")  # a finished run only loads
    assert again.resumed_from == 2 and again.history == resumed.history


def test_a_broken_checkpoint_is_refused_with_its_path(space_file, tmp_path):
    config = config_of(space_file)
    path = run_checkpoint(config, DIGITS_SPACE, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="delete it"):
        train(config, cache=tmp_path)


def test_checkpoints_are_keyed_by_the_settings(space_file, tmp_path):
    config = config_of(space_file)
    space = DIGITS_SPACE
    path = run_checkpoint(config, space, tmp_path)
    assert path.parent == tmp_path / "nas" / "supernet"
    assert path.name.startswith("digits-small-w1-r8-digits-s3-")
    assert run_checkpoint(config, space, tmp_path) == path
    for changed in (replace(config, lr=0.01), replace(config, subnets=1), replace(config, seed=4),
                    replace(config, epochs=3), replace(config, distill=True)):
        assert run_checkpoint(changed, space, tmp_path) != path
    assert run_checkpoint(config, replace(space, stem_channels=16), tmp_path) != path


def test_short_training_beats_chance(space_file, tmp_path):
    config = config_of(space_file, epochs=4, lr=0.005, seed=0)
    result = train(config, cache=tmp_path)
    largest = evaluate(result.supernet, result.supernet.largest(), result.data, config)
    smallest = evaluate(result.supernet, result.supernet.smallest(), result.data, config)
    assert largest > 0.8, largest  # chance is 0.1
    assert smallest > 0.5, smallest


def test_bad_settings_are_refused(space_file, tmp_path):
    with pytest.raises(TrainError, match="optimizer"):
        config_of(space_file, optimizer="rmsprop")
    with pytest.raises(TrainError, match="batch size"):
        config_of(space_file, batch_size=1)
    three = replace(DIGITS_SPACE, input_channels=3)
    with pytest.raises(TrainError, match="1-channel images"):
        train(config_of(str(save_space(three, tmp_path / "rgb.json"))), cache=tmp_path)


def test_nas_train_command(space_file, tmp_path, monkeypatch, capsys):
    from tinylab_cli.main import main

    monkeypatch.setenv("TINYLAB_CACHE", str(tmp_path))
    code = main(["nas", "train", "--space", space_file, "--width", "1", "--resolution", "8", "--dataset", "digits",
                 "--epochs", "1", "--batch-size", "64", "--subnets", "1", "--random-subnets", "2", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["epochs_done"] == 1 and report["checkpoint"].startswith(str(tmp_path))
    names = [row["name"] for row in report["accuracy"]]
    assert names == ["largest", "smallest", "random 1", "random 2"]
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in report["accuracy"])
    assert report["seconds_per_epoch"] > 0


def test_command_defaults_match_the_config():
    import tinylab_cli.nas_train as cli

    defaults = TrainConfig(width=1.0, resolution=8)
    assert (cli.DEFAULT_DATASET, cli.DEFAULT_EPOCHS, cli.DEFAULT_BATCH_SIZE, cli.DEFAULT_SUBNETS,
            cli.DEFAULT_OPTIMIZER) == (defaults.dataset, defaults.epochs, defaults.batch_size, defaults.subnets,
                                       defaults.optimizer)


def test_nas_train_takes_width_and_resolution_together(capsys):
    from tinylab_cli.main import main

    assert main(["nas", "train", "--dataset", "digits", "--width", "1"]) == 2
    assert "--width and --resolution together" in capsys.readouterr().err


@needs_arm_gcc
@needs_qemu
def test_nas_train_takes_the_choice_of_nas_space(tmp_path, monkeypatch, capsys):
    from tinylab_cli.main import main

    monkeypatch.setenv("TINYLAB_CACHE", str(tmp_path))
    space = str(save_space(replace(DIGITS_SPACE, widths=(0.5, 1.0)), tmp_path / "grid.json"))
    args = ["nas", "train", "--space", space, "--dataset", "digits", "--epochs", "1", "--subnets", "1",
            "--random-subnets", "0", "--board", "qemu-f412", "--sram", "64K", "--flash", "512K", "--samples", "4",
            "--jobs", "1"]
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["width"], report["resolution"]) == (1.0, 8)  # everything fits: the larger mean MACs
    assert main(args[:-6] + ["--sram", "2K", "--samples", "2", "--jobs", "1"]) == 2
    assert "'nas space' chose none" in capsys.readouterr().err
