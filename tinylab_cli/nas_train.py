"""`tinylab nas train`: train the supernet of one (W, R) of a space (`nas/train.py`), with a
progress bar per epoch, at the (W, R) given or else the one `nas space` chooses for the board and
budgets, then score the largest, the smallest and a few random subnets on the
validation split (each after its batch-norm statistics are recomputed). The run's checkpoint is
written after every epoch; the same command again resumes from it."""
from __future__ import annotations

import argparse
import json
import random

from hil.errors import LabError
from hil.progress import ProgressBar, progress_printer

# nas.train.TrainConfig's defaults, named here so that building the parser does not import torch;
# tests/test_nas_train.py keeps them equal.
DEFAULT_DATASET = "fashion-mnist"
DEFAULT_EPOCHS = 5
DEFAULT_BATCH_SIZE = 64
DEFAULT_SUBNETS = 2
DEFAULT_OPTIMIZER = "sgd"
DEFAULT_RANDOM_SUBNETS = 3  # random subnets scored at the end
BAR_CHUNKS = 20  # a bar advances at most this often per epoch


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("train", "training the supernet of one (W, R) of --space")
    group.add_argument("--width", type=float, metavar="W",
                       help="width multiplier (with --resolution; neither: the choice of 'nas space' for --board, "
                            "--sram and --flash, run first)")
    group.add_argument("--resolution", type=int, metavar="R", help="input resolution (with --width)")
    group.add_argument("--dataset", default=DEFAULT_DATASET, metavar="NAME|DIR|FILE.npz",
                       help=f"fashion-mnist, digits (8x8, quick), a folder of class folders or an .npz file "
                            f"(default: {DEFAULT_DATASET})")
    group.add_argument("--train-images", type=int, metavar="N",
                       help="train on a seeded subset of N images of the training split (default: all of it)")
    group.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs (default: {DEFAULT_EPOCHS})")
    group.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                       help=f"images per step (default: {DEFAULT_BATCH_SIZE})")
    group.add_argument("--subnets", type=int, default=DEFAULT_SUBNETS,
                       help=f"random subnets per step beside the largest (sandwich rule; default: {DEFAULT_SUBNETS})")
    group.add_argument("--optimizer", choices=("sgd", "adam"), default=DEFAULT_OPTIMIZER,
                       help=f"sgd (Nesterov, momentum 0.9) or adam (default: {DEFAULT_OPTIMIZER})")
    group.add_argument("--lr", type=float, help="peak learning rate, on a cosine to 0 (default: 0.05 sgd, 0.002 adam)")
    group.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing (default: 0)")
    group.add_argument("--distill", action="store_true",
                       help="random subnets learn the largest one's outputs (in-place distillation)")
    group.add_argument("--random-subnets", type=int, default=DEFAULT_RANDOM_SUBNETS, metavar="N",
                       help=f"random subnets scored at the end (default: {DEFAULT_RANDOM_SUBNETS})")


def epoch_bars(epochs: int):
    """A training progress callback: one bar per epoch, advanced at most BAR_CHUNKS times."""
    bars: dict[int, tuple[ProgressBar, int]] = {}

    def progress(epoch: int, step: int, steps: int, loss: float) -> None:
        chunks = min(BAR_CHUNKS, steps)
        bar, shown = bars.setdefault(epoch, (ProgressBar(chunks, f"epoch {epoch}/{epochs}"), 0))
        due = step * chunks // steps
        while shown < due:
            shown += 1
            bar.advance(f"loss {loss:.3f}")
        bars[epoch] = (bar, shown)

    return progress


def run_train(args: argparse.Namespace) -> int:
    from nas.space import load_space
    from nas.train import TrainConfig, evaluate, train

    if (args.width is None) != (args.resolution is None):
        raise LabError("nas train takes --width and --resolution together, or neither (then the (W, R) that "
                       "'nas space' chooses for --board, --sram and --flash)")
    if args.width is None:
        from tinylab_cli.nas import space_grid

        say = progress_printer(args.json)
        grid = space_grid(args, say)
        if grid.chosen is None:
            raise LabError(f"no --width and --resolution given, and 'nas space' chose none: {grid.refusal}")
        args.width, args.resolution = grid.chosen.width, grid.chosen.resolution
        say(f"training at W={args.width:g}, R={args.resolution}, the choice of 'nas space' for {grid.board.name}, "
            f"SRAM {args.sram:,} B, flash {args.flash:,} B")
    if args.random_subnets < 0:
        raise LabError(f"--random-subnets must be 0 or more, not {args.random_subnets}")
    config = TrainConfig(width=args.width, resolution=args.resolution, space=args.space, dataset=args.dataset,
                         epochs=args.epochs, batch_size=args.batch_size, subnets=args.subnets, seed=args.seed,
                         optimizer=args.optimizer, lr=args.lr, label_smoothing=args.label_smoothing,
                         distill=args.distill, train_images=args.train_images)
    result = train(config, progress=epoch_bars(config.epochs))
    net, data = result.supernet, result.data
    rng = random.Random(f"{config.seed}:score")
    archs = [("largest", net.largest()), ("smallest", net.smallest())]
    archs += [(f"random {i + 1}", net.sample(rng)) for i in range(args.random_subnets)]
    scores = [(name, arch, evaluate(net, arch, data, config)) for name, arch in archs]
    trained = [h for h in result.history[result.resumed_from:]]
    seconds = sum(h["seconds"] for h in trained) / len(trained) if trained else None
    if args.json:
        print(json.dumps({
            "space": net.space.name, "width": config.width, "resolution": config.resolution, "dataset": data.name,
            "train_images": len(data.train), "validation_images": len(data.validation),
            "epochs": config.epochs, "epochs_done": result.epochs_done, "resumed_from": result.resumed_from,
            "history": result.history, "seconds_per_epoch": seconds,
            "accuracy": [{"name": name, "arch": str(arch), "accuracy": round(acc, 4)} for name, arch, acc in scores],
            "checkpoint": str(result.checkpoint),
        }, indent=2))
        return 0
    if result.resumed_from:
        print(f"resumed from the checkpoint after epoch {result.resumed_from} of {config.epochs}")
    if seconds is not None:
        print(f"{len(trained)} epoch(s) trained, {seconds:.1f} s per epoch ({len(data.train):,} images, batch "
              f"{config.batch_size}, largest + {config.subnets} random subnets per step)")
    print(f"validation accuracy ({len(data.validation):,} images, batch-norm recalibrated on "
          f"{min(config.recalibration_images, len(data.train))} training images):")
    for name, arch, acc in scores:
        print(f"  {name:<9} {acc:6.1%}  {arch}")
    print(f"checkpoint {result.checkpoint}")
    return 0
