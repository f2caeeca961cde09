"""An accuracy predictor (Once-for-all's): a small MLP from an architecture's 0/1 encoding
(`Arch.encode`) to its validation accuracy, trained on subnets scored for real by the supernet.
It makes evolution cheap: thousands of candidates are scored in milliseconds, and only the
finalists are scored for real again. Its error is measured on scored subnets it was not trained on
(`fit` holds out a share) and reported with every search that uses it."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from hil.errors import LabError
from nas.arch import Arch
from nas.space import StageChoices

HIDDEN = 400  # OFA's predictor: three hidden layers of 400
STEPS = 1500
HELD_OUT = 0.2


@dataclass(frozen=True)
class PredictorError:
    """The predictor's error on scored subnets it was not trained on, in accuracy points (0-1)."""

    held_out: int
    rmse: float
    mae: float
    spearman: float

    def to_json(self) -> dict:
        return {"held_out": self.held_out, "rmse": round(self.rmse, 5), "mae": round(self.mae, 5),
                "spearman": round(self.spearman, 4)}


class AccuracyPredictor:
    """`predictor(arch)` is the predicted validation accuracy of `arch`."""

    def __init__(self, choices: Sequence[StageChoices], seed: int = 0) -> None:
        self.choices = choices
        self.seed = seed
        self.model: nn.Module | None = None
        self.error: PredictorError | None = None
        self.base = 0.0

    def _vectors(self, archs: Sequence[Arch]) -> torch.Tensor:
        return torch.tensor([a.encode(self.choices) for a in archs], dtype=torch.float32)

    def _train(self, archs: Sequence[Arch], accuracies: Sequence[float]) -> None:
        torch.manual_seed(self.seed)
        x = self._vectors(archs)
        self.base = float(np.mean(accuracies))
        y = torch.tensor(accuracies, dtype=torch.float32) - self.base
        model = nn.Sequential(nn.Linear(x.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                              nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
        for _ in range(STEPS):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x).squeeze(1), y)
            loss.backward()
            optimizer.step()
        self.model = model.eval()

    def fit(self, scored: dict[Arch, float]) -> PredictorError:
        """Train on `scored` less a held-out share, measure the error there, then train on all of it."""
        if len(scored) < 10:
            raise LabError(f"an accuracy predictor needs at least 10 scored subnets, not {len(scored)}")
        archs = sorted(scored, key=str)
        random.Random(f"{self.seed}:predictor").shuffle(archs)
        held = max(2, int(round(len(archs) * HELD_OUT)))
        self._train(archs[held:], [scored[a] for a in archs[held:]])
        predicted = self.predict_many(archs[:held])
        actual = np.array([scored[a] for a in archs[:held]])
        diff = predicted - actual
        self.error = PredictorError(held, math.sqrt(float(np.mean(diff ** 2))), float(np.mean(np.abs(diff))),
                                    _spearman(predicted, actual))
        self._train(archs, [scored[a] for a in archs])
        return self.error

    @torch.no_grad()
    def predict_many(self, archs: Sequence[Arch]) -> np.ndarray:
        if self.model is None:
            raise LabError("the accuracy predictor is not trained yet")
        return self.model(self._vectors(archs)).squeeze(1).numpy() + self.base

    def __call__(self, arch: Arch) -> float:
        return float(self.predict_many([arch])[0])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from nas.measure import spearman

    return float(spearman(a, b))
