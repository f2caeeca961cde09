"""A NAS search's figures as the report shows them (`tinylab nas run`): the architectures it scored,
their Pareto fronts, and the networks it deployed on the board. Plain data, like
hil.report.report_data; `hil.report.report` collects it from the store's rows and
`hil.report.report_figures` draws it.

The metric names and roles are those `nas/records.py` writes; they are repeated here because hil
never imports nas (tests/test_report_nas.py checks that they agree)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from hil.report.report_data import Source

CANDIDATE_METRIC = "nas_validation_accuracy"  # one row per architecture a search scored
PREDICTED_METRICS = ("nas_predicted_latency", "nas_predicted_peak_sram", "nas_predicted_flash")
ROLES = ("winner", "random", "uniform", "deployed")  # the deployed networks' roles, in the report's order
ROLE_LABELS = {
    "winner": "winner (evolution's best)",
    "random": "random search's best",
    "uniform": "uniformly scaled baseline",
    "deployed": "deployed",
}
METHODS = ("evolution", "random")


@dataclass(frozen=True)
class Candidate:
    """An architecture the search scored: the supernet's validation accuracy and its predicted figures."""

    architecture: str
    method: str  # evolution | random
    accuracy: float  # validation accuracy of the supernet's subnet (ratio)
    latency: float | None  # predicted; None without a latency table
    latency_unit: str | None
    peak_sram: float | None  # predicted, bytes
    flash: float | None  # predicted, bytes


@dataclass(frozen=True)
class DeployedNetwork:
    """A network the search built and ran on the board: measured, predicted and test accuracy."""

    role: str  # one of ROLES
    architecture: str
    model: str
    int8_accuracy: float | None  # test split, the quantised network
    float_accuracy: float | None
    latency: float | None  # measured
    latency_unit: str | None  # instructions (QEMU), cycles (hardware), or estimated_cycles with a table in them
    peak_sram: float | None  # measured, bytes
    flash: float | None  # measured, bytes
    matches_reference: bool | None  # the run's output bit-exact with TFLM's
    target_matches_host: bool | None  # every target image's output equal to the host's
    predicted_latency: float | None = None
    predicted_latency_unit: str | None = None
    predicted_peak_sram: float | None = None
    predicted_flash: float | None = None
    run_id: str = ""

    @property
    def label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    @property
    def latency_ratio(self) -> float | None:
        """Measured ÷ predicted latency, when both are there in the same unit."""
        if self.latency is None or not self.predicted_latency or self.latency_unit != self.predicted_latency_unit:
            return None
        return self.latency / self.predicted_latency

    @property
    def bit_exact(self) -> bool | None:
        """Bit-exact with TFLM and the target equal to the host; None when neither was stored."""
        known = [v for v in (self.matches_reference, self.target_matches_host) if v is not None]
        return all(known) if known else None


@dataclass(frozen=True)
class Budget:
    """The search's budgets (None: none given)."""

    sram_bytes: float | None = None
    flash_bytes: float | None = None
    latency: float | None = None  # in the candidates' latency unit


@dataclass
class SearchRun:
    """One `tinylab nas run`: every row of its run id."""

    run_id: str
    board: str
    backend: str
    context: dict[str, str]  # dataset, width, resolution, ... as shown
    budget: Budget
    candidates: list[Candidate]
    latency_front: list[Candidate]  # Pareto front: highest validation accuracy for the least predicted latency
    sram_front: list[Candidate]  # ... for the least predicted peak SRAM
    deployed: list[DeployedNetwork]  # in ROLES order
    source: Source
    anchor: str = ""
    figures: dict[str, str] = field(default_factory=dict)  # kind -> relative path of the image

    @property
    def title(self) -> str:
        return f"NAS search {self.run_id} on {self.board} ({self.backend})"

    @property
    def latency_unit(self) -> str | None:
        """The unit of the candidates' predicted latency (or, without it, of the measured one)."""
        units = [c.latency_unit for c in self.candidates if c.latency is not None and c.latency_unit]
        units += [d.latency_unit for d in self.deployed if d.latency is not None and d.latency_unit]
        return units[0] if units else None

    def methods(self) -> dict[str, int]:
        """How many candidates each method scored."""
        counts: dict[str, int] = {}
        for candidate in self.candidates:
            counts[candidate.method] = counts.get(candidate.method, 0) + 1
        return counts

    def role(self, role: str) -> DeployedNetwork | None:
        return next((d for d in self.deployed if d.role == role), None)


def pareto_front(candidates: Iterable[Candidate], cost: Callable[[Candidate], float | None]) -> list[Candidate]:
    """The candidates no other beats: none has a higher accuracy at a cost as low or lower, nor the
    same accuracy at a lower cost. Cheapest first (accuracy then rises); candidates without the
    cost are left out; of equal points the first is kept."""
    costed = [(cost(c), c) for c in candidates]
    ordered = sorted(((x, c) for x, c in costed if x is not None), key=lambda xc: (xc[0], -xc[1].accuracy))
    front: list[Candidate] = []
    for _, candidate in ordered:
        if not front or candidate.accuracy > front[-1].accuracy:
            front.append(candidate)
    return front
