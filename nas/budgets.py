"""The work budgets of `tinylab nas run`: how much of each step the whole search does.

`full` is the issue's floor: the whole training split less validation, a supernet trained for
10 epochs, a population of 50 over 20 generations, fitness on 2,000 validation images, the whole
test set. Its searches score candidates with an accuracy predictor (`nas/predictor.py`) trained
on 150 subnets scored for real, and score each search's 5 best for real again. `quick` is what fits in about five minutes on two cores, the latency table's build
included: the same steps on a seeded subset of the data, with a small population, so that the
whole path (space, table, supernet, evolution, random search, baseline, deployment on the board)
runs; its accuracies say little."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from hil.errors import LabError


@dataclass(frozen=True)
class RunBudget:
    name: str
    samples: int  # networks sampled per (W, R) in the space optimisation
    train_images: int | None  # None: the whole training split less validation
    epochs: int  # of the supernet, and of the baseline trained from scratch
    subnets: int  # random subnets per step beside the largest (sandwich rule)
    batch_size: int
    population: int
    generations: int
    val_images: int  # validation images each subnet is scored on
    recalibration_images: int  # training images a subnet's batch-norm statistics are recomputed on
    test_images: int | None  # None: the whole test split
    target_images: int  # test images also run on the target for the winner
    baseline_target_images: int  # and for each baseline
    predictor_samples: int = 0  # subnets scored for real to train an accuracy predictor (0: no predictor)
    finalists: int = 0  # with a predictor: the best of each search scored for real again

    def to_json(self) -> dict:
        return asdict(self)


BUDGETS = {
    "quick": RunBudget("quick", samples=40, train_images=2048, epochs=1, subnets=1, batch_size=64, population=6,
                       generations=1, val_images=300, recalibration_images=128, test_images=500, target_images=10,
                       baseline_target_images=2),
    "full": RunBudget("full", samples=1000, train_images=None, epochs=10, subnets=1, batch_size=64,
                      population=50, generations=20, val_images=2000, recalibration_images=500, test_images=None,
                      target_images=50, baseline_target_images=50, predictor_samples=150, finalists=5),
}


def run_budget(name: str) -> RunBudget:
    try:
        return BUDGETS[name]
    except KeyError:
        raise LabError(f"budget {name!r}: one of {', '.join(BUDGETS)}") from None
