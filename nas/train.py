"""Training the supernet of one (W, R) on the CPU, with the sandwich rule: at every step the
largest subnet and `subnets` random ones (default 2) add their gradients before one optimiser
step (with `fixed_arch`, that one subnet alone: a network trained from scratch, the search's
baseline); with `distill`, the random subnets learn the largest one's soft outputs (in-place
distillation) instead of the labels. SGD (Nesterov) or Adam, the learning rate on a cosine from
`lr` to 0 over all steps, optional label smoothing.

Runs are deterministic on the CPU: the weights start from `torch.manual_seed(seed)`, each epoch's
data order and subnets from seeds of (seed, epoch). A checkpoint is written after every epoch
(`nas/checkpoint.py`); the same run started again resumes from it, and gives the weights an
uninterrupted run would. A subnet is scored after its batch-norm statistics are recomputed on
training images (`evaluate`)."""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from hil.errors import LabError
from nas.arch import Arch
from nas.checkpoint import checkpoint_path, load_checkpoint, run_key, save_checkpoint
from nas.data import Dataset, Split, load_dataset
from nas.depthwise import weight_grad_library
from nas.space import SearchSpace, load_space, space_to_dict
from nas.supernet import Supernet, recalibrate_bn

OPTIMIZERS = ("sgd", "adam")
DEFAULT_LR = {"sgd": 0.05, "adam": 0.002}
EVAL_BATCH = 500


class TrainError(LabError):
    """Training settings that cannot work, or data that does not fit the space."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that changes the trained weights (and so the checkpoint's key)."""

    width: float
    resolution: int
    space: str = "fashion-mnist"  # a name or a space file
    dataset: str = "fashion-mnist"  # a name, a folder of class folders or an .npz file
    epochs: int = 5
    batch_size: int = 64
    subnets: int = 2  # random subnets per step, beside the largest
    seed: int = 0
    optimizer: str = "sgd"
    lr: float | None = None  # None: DEFAULT_LR of the optimiser
    weight_decay: float = 4e-5
    label_smoothing: float = 0.0
    distill: bool = False
    recalibration_images: int = 500  # training images whose statistics a subnet's BatchNorm takes
    train_images: int | None = None  # a seeded subset of the training split (None: all of it)
    fixed_arch: str | None = None  # train this one subnet alone, from scratch (a baseline), not the sandwich

    def __post_init__(self) -> None:
        def need(ok: bool, why: str) -> None:
            if not ok:
                raise TrainError(why)

        need(self.optimizer in OPTIMIZERS, f"optimizer {self.optimizer!r}: one of {', '.join(OPTIMIZERS)}")
        need(self.epochs >= 1, f"epochs must be at least 1, not {self.epochs}")
        need(self.batch_size >= 2, f"batch size must be at least 2 (batch-norm statistics), not {self.batch_size}")
        need(self.subnets >= 0, f"subnets must be 0 or more, not {self.subnets}")
        need(self.width > 0 and self.resolution >= 1, f"width {self.width} and resolution {self.resolution} must be positive")
        need(0.0 <= self.label_smoothing < 1.0, f"label smoothing must be in [0, 1), not {self.label_smoothing}")
        need(self.recalibration_images >= 2, f"recalibration images must be at least 2, not {self.recalibration_images}")
        need(self.train_images is None or self.train_images >= self.batch_size,
             f"training images must be at least one batch ({self.batch_size}), not {self.train_images}")
        if self.fixed_arch is not None:
            Arch.parse(self.fixed_arch)  # an ArchError names what is wrong

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr


@dataclass
class TrainResult:
    supernet: Supernet
    data: Dataset
    checkpoint: Path
    epochs_done: int
    resumed_from: int  # the epochs the checkpoint held when this run started (0: a fresh run)
    history: list[dict] = field(default_factory=list)  # per epoch: loss, seconds, steps


Progress = Callable[[int, int, int, float], None]  # (epoch from 1, step from 1, steps, loss)


def prepare(config: TrainConfig) -> tuple[SearchSpace, Dataset]:
    """The space and the data of `config`; data that does not fit the space is refused."""
    space = load_space(config.space)
    data = load_dataset(config.dataset, resolution=config.resolution, seed=config.seed)
    channels = data.input_shape[0]
    if channels != space.input_channels:
        raise TrainError(f"data set {config.dataset}: {channels}-channel images, space {space.name} takes "
                         f"{space.input_channels} (input_channels)")
    if len(data.classes) > space.num_classes or int(data.train.labels.max()) >= space.num_classes:
        raise TrainError(f"data set {config.dataset}: {len(data.classes)} classes, space {space.name} has "
                         f"{space.num_classes} (num_classes)")
    if config.fixed_arch is not None:
        Arch.parse(config.fixed_arch).check(space.stages)
    if config.train_images is not None and config.train_images < len(data.train):
        chosen = np.sort(np.random.default_rng([config.seed, 1 << 24]).permutation(len(data.train))[:config.train_images])
        data = replace(data, train=Split(data.train.images[chosen], data.train.labels[chosen]))
    return space, data


def run_checkpoint(config: TrainConfig, space: SearchSpace, root: Path | None = None) -> Path:
    """Where the run of `config` keeps its checkpoint."""
    dataset = config.dataset
    source: dict = {"name": dataset}
    path = Path(dataset)
    if dataset not in ("fashion-mnist", "digits") and path.exists():
        stat = path.stat()
        source = {"path": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime}
    gradient = "tinylab" if weight_grad_library() is not None else "torch"  # the weights differ by rounding
    key = run_key({"config": asdict(config), "space": space_to_dict(space), "data": source,
                   "depthwise_weight_grad": gradient})
    return checkpoint_path(space.name, config.width, config.resolution, dataset, config.seed, key, root)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Images in channels-last order: convolutions on the CPU run about 1.7 times faster so
    (measured on a W=0.7, R=28 supernet's training step on 2 cores)."""
    return x.contiguous(memory_format=torch.channels_last)


def build(config: TrainConfig, space: SearchSpace) -> tuple[Supernet, torch.optim.Optimizer]:
    torch.manual_seed(config.seed)
    net = Supernet(space, config.width, config.resolution).to(memory_format=torch.channels_last)
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(net.parameters(), lr=config.learning_rate, momentum=0.9, nesterov=True,
                                    weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    return net, optimizer


def batches_of(count: int, batch_size: int, order: np.ndarray) -> list[np.ndarray]:
    """The epoch's batches of indices; a last short batch is dropped unless it is the only one."""
    cuts = [order[i:i + batch_size] for i in range(0, count, batch_size)]
    return cuts[:-1] if len(cuts) > 1 and len(cuts[-1]) < batch_size else cuts


def cosine_lr(base: float, step: int, total: int) -> float:
    return base * 0.5 * (1.0 + math.cos(math.pi * step / max(total, 1)))


def train_step(net: Supernet, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
               archs: list[Arch], config: TrainConfig) -> float:
    """One sandwich step: the gradients of every arch (the largest first), then one update.
    Returns the largest subnet's loss."""
    optimizer.zero_grad(set_to_none=True)
    teacher = None
    largest_loss = 0.0
    for index, arch in enumerate(archs):
        logits = net(images, arch)
        if index > 0 and config.distill:
            loss = F.cross_entropy(logits, F.softmax(teacher, dim=1))
        else:
            loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        if index == 0:
            teacher, largest_loss = logits.detach(), float(loss.detach())
        loss.backward()
    optimizer.step()
    return largest_loss


def train_epoch(net: Supernet, optimizer: torch.optim.Optimizer, train: Split, config: TrainConfig, epoch: int,
                progress: Progress | None = None, max_steps: int | None = None) -> dict:
    """Epoch `epoch` (from 0) over `train` in its seeded order; `max_steps` stops early (for timing)."""
    order = np.random.default_rng([config.seed, epoch]).permutation(len(train))
    batches = batches_of(len(train), config.batch_size, order)
    steps_per_epoch = len(batches)
    if max_steps is not None:
        batches = batches[:max_steps]
    rng = random.Random(f"{config.seed}:{epoch}")
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    fixed = Arch.parse(config.fixed_arch) if config.fixed_arch is not None else None
    net.train()
    started, losses = time.monotonic(), []
    for step, indices in enumerate(batches):
        lr = cosine_lr(config.learning_rate, epoch * steps_per_epoch + step, config.epochs * steps_per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if fixed is not None:
            archs = [fixed]
        else:
            archs = [net.largest()] + [net.sample(rng) for _ in range(config.subnets)]
        index = torch.from_numpy(indices)
        losses.append(train_step(net, optimizer, channels_last(images[index]), labels[index], archs, config))
        if progress is not None:
            progress(epoch + 1, step + 1, len(batches), losses[-1])
    return {"epoch": epoch + 1, "loss": float(np.mean(losses)), "steps": len(batches),
            "seconds": round(time.monotonic() - started, 3)}


def train(config: TrainConfig, *, progress: Progress | None = None, stop_after: int | None = None,
          cache: Path | None = None) -> TrainResult:
    """Train (or resume) the run of `config`, writing a checkpoint after every epoch; with
    `stop_after`, stop once that many epochs are done (as an interrupted run would)."""
    space, data = prepare(config)
    path = run_checkpoint(config, space, cache)
    net, optimizer = build(config, space)
    done, history = 0, []
    state = load_checkpoint(path)
    if state is not None:
        if state.get("config") != asdict(config):
            raise TrainError(f"checkpoint {path} was written for other settings; delete it to start again")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        done, history = state["epoch"], list(state["history"])
    resumed_from = done
    last = config.epochs if stop_after is None else min(config.epochs, stop_after)
    for epoch in range(done, last):
        history.append(train_epoch(net, optimizer, data.train, config, epoch, progress))
        done = epoch + 1
        save_checkpoint({"config": asdict(config), "epoch": done, "history": history,
                         "model": net.state_dict(), "optimizer": optimizer.state_dict()}, path)
    return TrainResult(net.eval(), data, path, done, resumed_from, history)


def recalibration_batches(train: Split, config: TrainConfig) -> list[torch.Tensor]:
    """The seeded training images a subnet's batch-norm statistics are recomputed on."""
    count = min(config.recalibration_images, len(train))
    chosen = np.random.default_rng([config.seed, 1 << 20]).permutation(len(train))[:count]
    images = torch.from_numpy(train.images[np.sort(chosen)])
    return [channels_last(images[i:i + config.batch_size]) for i in range(0, count, config.batch_size)
            if len(images[i:i + config.batch_size]) > 1]


@torch.no_grad()
def evaluate(net: Supernet, arch: Arch, data: Dataset, config: TrainConfig, split: str = "validation") -> float:
    """The accuracy of subnet `arch` on `split` (validation by default), after its batch-norm
    statistics are recomputed; the supernet itself is not changed (the subnet is extracted)."""
    model = net.subnet(arch).to(memory_format=torch.channels_last)
    recalibrate_bn(model, recalibration_batches(data.train, config))
    part: Split | None = getattr(data, split)
    if part is None or len(part) == 0:
        raise TrainError(f"data set {data.name} has no {split} images to score on")
    correct = 0
    for i in range(0, len(part), EVAL_BATCH):
        logits = model(channels_last(torch.from_numpy(part.images[i:i + EVAL_BATCH])))
        correct += int((logits.argmax(dim=1) == torch.from_numpy(part.labels[i:i + EVAL_BATCH])).sum())
    return correct / len(part)
