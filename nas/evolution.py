"""Evolution over the architectures of one (W, R) of a space (the algorithm of Once-for-all's
evolution, written anew): a population of `population` valid architectures is evaluated; each
generation keeps the best `parents_ratio` of it as parents, makes `mutation_ratio` of the
population by mutating a random parent (each stage's depth and each block's kernel and expand
redrawn with probability `mutate_prob`) and the rest by crossing two random parents over (each
stage's depth and each block taken from either). A candidate that breaks a budget
(`nas.constraints`) is drawn again, at most `max_attempts` times; then the search stops with the
figures of what it tried.

Random search, the control, evaluates as many distinct architectures drawn uniformly from the
valid ones as evolution evaluated. Fitness is any callable of an architecture (the supernet's
validation accuracy, `nas.fitness`), asked once per architecture. Both are deterministic for a seed."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from hil.errors import LabError
from nas.arch import Arch, Block, sample_arch
from nas.constraints import REASONS, Constraints, Figures
from nas.space import StageChoices

Fitness = Callable[[Arch], float]
Progress = Callable[["Generation"], None]


class SearchError(LabError):
    """Search settings that cannot work, or a budget no candidate fits."""


@dataclass(frozen=True)
class EvolutionConfig:
    population: int = 100
    generations: int = 20
    parents_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutate_prob: float = 0.1
    seed: int = 0
    max_attempts: int = 500  # draws per candidate before the search gives up

    def __post_init__(self) -> None:
        def need(ok: bool, why: str) -> None:
            if not ok:
                raise SearchError(why)

        need(self.population >= 2, f"population must be at least 2, not {self.population}")
        need(self.generations >= 0, f"generations must be 0 or more, not {self.generations}")
        need(0.0 < self.parents_ratio <= 1.0, f"parents ratio must be in (0, 1], not {self.parents_ratio}")
        need(0.0 <= self.mutation_ratio <= 1.0, f"mutation ratio must be in [0, 1], not {self.mutation_ratio}")
        need(0.0 <= self.mutate_prob <= 1.0, f"mutation probability must be in [0, 1], not {self.mutate_prob}")
        need(self.max_attempts >= 1, f"max attempts must be at least 1, not {self.max_attempts}")

    @property
    def parents(self) -> int:
        return max(1, round(self.population * self.parents_ratio))

    @property
    def mutations(self) -> int:
        return round(self.population * self.mutation_ratio)


@dataclass(frozen=True)
class Generation:
    """One generation (0: the first population; for random search, each `population` evaluations)."""

    index: int
    best: float  # the best fitness found so far
    mean: float  # of this generation's population
    evaluations: int  # distinct architectures evaluated so far
    rejected: dict[str, int]  # candidates drawn again so far, by the budget they broke
    seconds: float  # since the search started

    def to_json(self) -> dict:
        return {"generation": self.index, "best": round(self.best, 6), "mean": round(self.mean, 6),
                "evaluations": self.evaluations, "rejected": dict(self.rejected), "seconds": round(self.seconds, 3)}


@dataclass
class SearchResult:
    method: str  # "evolution" or "random"
    best: Arch
    fitness: float
    figures: Figures
    history: list[Generation]
    evaluations: int
    rejected: dict[str, int]
    seconds: float
    evaluated: dict[Arch, float] = field(default_factory=dict, repr=False)  # every architecture scored

    def to_json(self) -> dict:
        return {"method": self.method, "architecture": str(self.best), "accuracy": round(self.fitness, 6),
                "predicted": self.figures.to_json(), "evaluations": self.evaluations,
                "rejected": dict(self.rejected), "seconds": round(self.seconds, 3),
                "history": [g.to_json() for g in self.history]}


def mutate(arch: Arch, choices: Sequence[StageChoices], rng: random.Random, prob: float) -> Arch:
    """Each stage's depth, and each block's kernel and expand, redrawn with probability `prob`;
    a stage made deeper gets new random blocks after its own."""
    stages = []
    for blocks, stage in zip(arch.stages, choices):
        depth = rng.choice(stage.repeats) if rng.random() < prob else len(blocks)
        new = []
        for index in range(depth):
            if index >= len(blocks):
                new.append(Block(rng.choice(stage.kernels), rng.choice(stage.expands)))
                continue
            kernel = rng.choice(stage.kernels) if rng.random() < prob else blocks[index].kernel
            expand = rng.choice(stage.expands) if rng.random() < prob else blocks[index].expand
            new.append(Block(kernel, expand))
        stages.append(tuple(new))
    return Arch(tuple(stages))


def crossover(a: Arch, b: Arch, choices: Sequence[StageChoices], rng: random.Random) -> Arch:
    """Each stage's depth from either parent, each of its blocks from either parent that has it."""
    stages = []
    for blocks_a, blocks_b, stage in zip(a.stages, b.stages, choices):
        depth = rng.choice((len(blocks_a), len(blocks_b)))
        new = []
        for index in range(depth):
            held = [blocks[index] for blocks in (blocks_a, blocks_b) if index < len(blocks)]
            new.append(rng.choice(held) if held else Block(rng.choice(stage.kernels), rng.choice(stage.expands)))
        stages.append(tuple(new))
    return Arch(tuple(stages))


class _Search:
    """What evolution and random search share: drawing valid candidates, scoring them once."""

    def __init__(self, constraints: Constraints, fitness: Fitness, config: EvolutionConfig, rng: random.Random):
        self.constraints, self.fitness, self.config, self.rng = constraints, fitness, config, rng
        self.choices = constraints.space.stages
        self.scores: dict[Arch, float] = {}
        self.rejected = {reason: 0 for reason in REASONS}
        self.started = time.monotonic()

    def valid(self, draw: Callable[[], Arch], what: str) -> Arch:
        """The first candidate of `draw` that fits every budget; a clear error when none of
        `max_attempts` does."""
        least: dict[str, float] = {}
        for _ in range(self.config.max_attempts):
            arch = draw()
            reason = self.constraints.violation(arch)
            if reason is None:
                return arch
            self.rejected[reason] += 1
            f = self.constraints.figures(arch)
            for name, value in (("sram", f.peak_sram_bytes), ("flash", f.flash_bytes), ("latency", f.latency)):
                if value is not None:
                    least[name] = min(least.get(name, value), value)
        c = self.constraints
        seen = [f"peak SRAM {least['sram']:,.0f} B (budget {c.sram_bytes:,} B)",
                f"flash {least['flash']:,.0f} B (budget {c.flash_bytes:,} B)"]
        if c.latency is not None and "latency" in least:
            seen.append(f"latency {least['latency']:,.0f} {c.unit} (budget {c.latency:,.0f} {c.unit})")
        raise SearchError(f"no {what} of {c.space.name} at W={c.width:g}, R={c.resolution} fits the budgets after "
                          f"{self.config.max_attempts} draws; the least seen: {', '.join(seen)}. Raise a budget, "
                          f"or choose a smaller (W, R) ('tinylab nas space')")

    def score(self, arch: Arch) -> float:
        if arch not in self.scores:
            self.scores[arch] = float(self.fitness(arch))
        return self.scores[arch]

    def generation(self, index: int, population: list[Arch]) -> Generation:
        values = [self.scores[a] for a in population]
        return Generation(index, max(self.scores.values()), sum(values) / len(values), len(self.scores),
                          dict(self.rejected), time.monotonic() - self.started)

    def result(self, method: str, history: list[Generation]) -> SearchResult:
        best = max(self.scores, key=lambda a: (self.scores[a], str(a)))  # ties: the same one every run
        return SearchResult(method, best, self.scores[best], self.constraints.figures(best), history,
                            len(self.scores), dict(self.rejected), time.monotonic() - self.started, dict(self.scores))

    def random_valid(self) -> Arch:
        return self.valid(lambda: sample_arch(self.choices, self.rng), "architecture")


def evolve(constraints: Constraints, fitness: Fitness, config: EvolutionConfig = EvolutionConfig(),
           progress: Progress | None = None) -> SearchResult:
    """Evolution for `config.generations` generations after the first population."""
    search = _Search(constraints, fitness, config, random.Random(f"{config.seed}:evolution"))
    population = [search.random_valid() for _ in range(config.population)]
    for arch in population:
        search.score(arch)
    history = [search.generation(0, population)]
    if progress is not None:
        progress(history[-1])
    for index in range(1, config.generations + 1):
        ranked = sorted(population, key=lambda a: (-search.scores[a], str(a)))
        parents = ranked[:config.parents]
        children = [search.valid(lambda: mutate(search.rng.choice(parents), search.choices, search.rng,
                                                config.mutate_prob), "mutation")
                    for _ in range(config.mutations)]
        while len(parents) + len(children) < config.population:
            children.append(search.valid(lambda: crossover(search.rng.choice(parents), search.rng.choice(parents),
                                                           search.choices, search.rng), "crossover"))
        population = (parents + children)[:config.population]
        for arch in population:
            search.score(arch)
        history.append(search.generation(index, population))
        if progress is not None:
            progress(history[-1])
    return search.result("evolution", history)


def random_search(constraints: Constraints, fitness: Fitness, evaluations: int, config: EvolutionConfig = EvolutionConfig(),
                  progress: Progress | None = None) -> SearchResult:
    """`evaluations` distinct valid architectures drawn uniformly (fewer only when the valid
    ones run out: after `max_attempts` draws in a row that bring none new), reported in
    generations of `config.population`."""
    if evaluations < 1:
        raise SearchError(f"random search needs at least 1 evaluation, not {evaluations}")
    search = _Search(constraints, fitness, config, random.Random(f"{config.seed}:random"))
    history: list[Generation] = []
    batch: list[Arch] = []
    stale = 0
    while len(search.scores) < evaluations and stale < config.max_attempts:
        arch = search.random_valid()
        if arch in search.scores:
            stale += 1
            continue
        stale = 0
        search.score(arch)
        batch.append(arch)
        if len(batch) == config.population or len(search.scores) == evaluations:
            history.append(search.generation(len(history), batch))
            batch = []
            if progress is not None:
                progress(history[-1])
    if batch:
        history.append(search.generation(len(history), batch))
    return search.result("random", history)
