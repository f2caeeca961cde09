"""The search's fitness: a trained supernet's accuracy of a subnet on the validation split (carved
out of the training set; the test set is never seen), after the subnet's batch-norm statistics
are recomputed (`nas.train.evaluate`). The supernet comes from the checkpoint of `tinylab nas
train`; `val_images` scores on a seeded subset of the validation split, to make it cheap."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from hil.errors import LabError
from nas.arch import Arch
from nas.checkpoint import load_checkpoint
from nas.data import Dataset, Split
from nas.supernet import Supernet
from nas.train import TrainConfig, build, evaluate, prepare, run_checkpoint


class FitnessError(LabError):
    """No trained supernet to score subnets with."""


def train_command(config: TrainConfig) -> str:
    """The `tinylab nas train` command that writes the checkpoint of `config`."""
    words = ["tinylab nas train", f"--space {config.space}", f"--width {config.width:g}",
             f"--resolution {config.resolution}", f"--dataset {config.dataset}", f"--epochs {config.epochs}",
             f"--batch-size {config.batch_size}", f"--subnets {config.subnets}", f"--optimizer {config.optimizer}",
             f"--seed {config.seed}"]
    if config.lr is not None:
        words.append(f"--lr {config.lr:g}")
    if config.label_smoothing:
        words.append(f"--label-smoothing {config.label_smoothing:g}")
    if config.distill:
        words.append("--distill")
    if config.train_images is not None:
        words.append(f"--train-images {config.train_images}")
    if config.fixed_arch is not None:
        return "tinylab nas run (its baseline trains this network; it is not a 'nas train' run)"
    return " ".join(words)


def load_supernet(config: TrainConfig | None = None, path: Path | None = None) -> tuple[Supernet, Dataset, TrainConfig, Path]:
    """The trained supernet of `config` (its checkpoint in the cache) or of the checkpoint at
    `path` (whose own settings are used); refused when missing or not trained to the end."""
    if path is None:
        if config is None:
            raise FitnessError("a supernet is named by its training settings or a checkpoint file")
        from nas.space import load_space


        path = run_checkpoint(config, load_space(config.space))
    state = load_checkpoint(Path(path))
    if state is None:
        hint = f"; make it with '{train_command(config)}'" if config is not None else ""
        raise FitnessError(f"no supernet checkpoint at {path}{hint}")
    try:
        stored = TrainConfig(**state["config"])
    except (KeyError, TypeError) as error:
        raise FitnessError(f"checkpoint {path} holds no training settings ({error}); train it again") from None
    if state.get("epoch", 0) < stored.epochs:
        raise FitnessError(f"checkpoint {path} holds {state.get('epoch', 0)} of {stored.epochs} epochs; finish it "
                           f"with '{train_command(stored)}' (it resumes)")
    space, data = prepare(stored)
    net, _ = build(stored, space)
    net.load_state_dict(state["model"])
    return net.eval(), data, stored, Path(path)


def validation_subset(data: Dataset, images: int | None, seed: int) -> Dataset:
    """`data` with its validation split cut to `images` seeded images (None or more: all of it)."""
    if images is None or images >= len(data.validation):
        return data
    if images < 1:
        raise FitnessError(f"validation images must be at least 1, not {images}")
    chosen = np.sort(np.random.default_rng([seed, 1 << 21]).permutation(len(data.validation))[:images])
    return replace(data, validation=Split(data.validation.images[chosen], data.validation.labels[chosen]))


class SupernetFitness:
    """Validation accuracy of a subnet, each architecture scored once (`calls` counts the scorings)."""

    def __init__(self, net: Supernet, data: Dataset, config: TrainConfig):
        self.net, self.data, self.config = net, data, config
        self.cache: dict[Arch, float] = {}
        self.seconds = 0.0

    @property
    def calls(self) -> int:
        return len(self.cache)

    def __call__(self, arch: Arch) -> float:
        if arch not in self.cache:
            started = time.monotonic()
            self.cache[arch] = evaluate(self.net, arch, self.data, self.config)
            self.seconds += time.monotonic() - started
        return self.cache[arch]
