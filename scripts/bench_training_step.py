"""Benchmark: the supernet's training step with torch's depthwise weight gradient and with the lab's
(`nas/depthwise.py`), measured in the same process, alternately, on the same data and subnets.

    .venv/bin/python scripts/bench_training_step.py                      # W 0.7, R 28, Fashion-MNIST
    .venv/bin/python scripts/bench_training_step.py --width 0.5 --steps 20 --dataset digits

Prints images per second of each and their ratio; run it on idle cores."""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.depthwise import torch_gradient_only, weight_grad_library  # noqa: E402
from nas.train import TrainConfig, build, prepare, train_epoch  # noqa: E402


def images_per_second(config: TrainConfig, space, data, steps: int, gradient) -> float:
    net, optimizer = build(config, space)
    with gradient():
        train_epoch(net, optimizer, data.train, config, 0, max_steps=3)  # warm-up
        started = time.monotonic()
        train_epoch(net, optimizer, data.train, config, 0, max_steps=steps)
        return steps * config.batch_size / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=float, default=0.7)
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--subnets", type=int, default=1, help="random subnets per step beside the largest")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each, alternating")
    args = parser.parse_args()
    if weight_grad_library() is None:
        sys.exit("the lab's gradient kernel could not be built (see the warning above): nothing to compare")
    config = TrainConfig(width=args.width, resolution=args.resolution, dataset=args.dataset,
                         batch_size=args.batch_size, subnets=args.subnets)
    space, data = prepare(config)
    rates: dict[str, list[float]] = {"torch": [], "tinylab": []}
    for round_ in range(args.rounds):
        for name, gradient in (("torch", torch_gradient_only), ("tinylab", contextlib.nullcontext)):
            rate = images_per_second(config, space, data, args.steps, gradient)
            rates[name].append(rate)
            print(f"round {round_ + 1}, {name:8} depthwise weight gradient: {rate:6.1f} images/s", flush=True)
    torch_rate, lab_rate = (statistics.median(rates[name]) for name in ("torch", "tinylab"))
    epoch = len(data.train)
    print(f"W {args.width:g}, R {args.resolution}, batch {args.batch_size}, largest + {args.subnets} random per step: "
          f"median {lab_rate:.1f} against {torch_rate:.1f} images/s, {lab_rate / torch_rate:.2f}x; an epoch of "
          f"{epoch:,} images {epoch / lab_rate:.0f} s against {epoch / torch_rate:.0f} s")


if __name__ == "__main__":
    main()
