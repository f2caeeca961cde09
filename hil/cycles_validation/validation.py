"""The cycle model against real boards: every published pair (hil/cycles_validation/published/*.yaml) rebuilt
by its recipe for the board's emulated twin, run once under QEMU with the execution profiler, and
estimated with the board's core and memory system at the published clock. Beside it, the naive
estimate: one cycle per instruction at that clock."""
from __future__ import annotations

import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from engine.cache import cache_root
from hil.cycles.coremodel import CycleModelError, MemorySystem, load_core, memory_systems
from hil.cycles.estimated import profiled
from hil.cycles_validation.published import PublishedLatency, Recipe, SourceFolder
from hil.errors import LabError
from hil.run.runners import runner_for
from hil.targets.yamlfile import read_yaml

PUBLISHED_DIR = Path(__file__).with_name("published")
TARGET_MEDIAN_ERROR = 0.15
TARGET_SPEARMAN = 0.9
RANKED_BOARD_PAIRS = 4  # boards with at least this many pairs are ranked


def load_pairs(folder: Path = PUBLISHED_DIR) -> list[PublishedLatency]:
    """Every pair in the YAML files of `folder` (a `pairs:` list of PublishedLatency fields)."""
    pairs = []
    for path in sorted(folder.glob("*.yaml")):
        data = read_yaml(path, path.name, CycleModelError) or {}
        for index, entry in enumerate(data.get("pairs", [])):
            try:
                pairs.append(PublishedLatency(**entry))
            except TypeError as problem:
                raise CycleModelError(f"{path.name}: pair {index + 1}: {problem}") from None
    return pairs


def memory_for(pair: PublishedLatency) -> MemorySystem:
    """The memory system of the pair's board at its published clock."""
    for memory in memory_systems():
        if memory.board == pair.board and memory.clock_hz == pair.clock_hz:
            return memory
    raise CycleModelError(f"no boards/timing/ file for {pair.board} at {pair.clock_hz / 1e6:g} MHz "
                          f"(the clock of {pair.software} {pair.model})")


def missing_folders(sources: tuple[SourceFolder, ...], environ: Mapping[str, str] | None = None) -> list[SourceFolder]:
    environ = os.environ if environ is None else environ
    return [s for s in sources if not environ.get(s.env) or not Path(environ[s.env]).is_dir()]


@dataclass(frozen=True)
class PairResult:
    """One pair: the published figure, ours, and the naive one, or why it was not run."""

    software: str
    model: str
    board: str
    clock_hz: int
    published_ms: float
    source: str
    instructions: int | None = None
    estimated_cycles: float | None = None
    parts: dict | None = None
    skipped: str | None = None

    @property
    def published_cycles(self) -> float:
        return self.published_ms * 1e-3 * self.clock_hz

    @property
    def estimated_ms(self) -> float | None:
        return None if self.estimated_cycles is None else self.estimated_cycles / self.clock_hz * 1e3

    @property
    def naive_ms(self) -> float | None:
        return None if self.instructions is None else self.instructions / self.clock_hz * 1e3

    @property
    def error(self) -> float | None:
        return None if self.estimated_ms is None else self.estimated_ms / self.published_ms - 1

    @property
    def naive_error(self) -> float | None:
        return None if self.naive_ms is None else self.naive_ms / self.published_ms - 1

    @property
    def cpi(self) -> float | None:
        """Our estimate's cycles per instruction."""
        return None if not self.instructions else self.estimated_cycles / self.instructions

    @property
    def published_cpi(self) -> float | None:
        """The published cycles per instruction we count (what a perfect model would give)."""
        return None if not self.instructions else self.published_cycles / self.instructions

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "published_cycles": self.published_cycles, "estimated_ms": self.estimated_ms,
                "naive_ms": self.naive_ms, "error": self.error, "naive_error": self.naive_error, "cpi": self.cpi,
                "published_cpi": self.published_cpi}


def validation_input(size: int, seed: int = 0) -> bytes:
    """`size` bytes that are valid whatever the model's input type: float32 values in [-1, 1)
    (as int8 or uint8 every byte is a valid value)."""
    values = np.random.default_rng(seed).uniform(-1.0, 1.0, (size + 3) // 4).astype(np.float32)
    return values.tobytes()[:size]


def run_pair(pair: PublishedLatency, recipe: Recipe, folders: Mapping[str, Path], cache: Path) -> PairResult:
    """Build `pair` with `recipe`, run it once after a warm-up with the profiler, estimate it."""
    memory = memory_for(pair)
    core = load_core(memory.core)
    firmware = recipe.build(pair, folders, cache)
    runner = runner_for(firmware.board, timeout_s=900.0)
    with profiled(runner, firmware.board, core, memory) as estimator:
        with runner.open(firmware) as link:
            size = int(link.profile().get("input-bytes", "0"))
            link.load_input(firmware.input_wire.encode(validation_input(size)))
            report = link.infer(count=1, warmup=1, timeout_s=3600.0)
        result = estimator(firmware, runner.latency(report.ticks_min))
    return PairResult(pair.software, pair.model, pair.board, pair.clock_hz, pair.latency_ms, pair.source,
                      instructions=result.instructions, estimated_cycles=result.cycles, parts=result.to_json())


def validate(pairs: list[PublishedLatency], recipes: Mapping[str, Recipe], cache: Path | None = None,
             environ: Mapping[str, str] | None = None,
             progress: Callable[[PublishedLatency], None] | None = None) -> list[PairResult]:
    """Every pair run, or skipped with the reason (its recipe's source folders absent)."""
    environ = os.environ if environ is None else environ
    cache = cache or cache_root() / "cycles"
    results = []
    for pair in pairs:
        recipe = recipes.get(pair.recipe)
        base = dict(software=pair.software, model=pair.model, board=pair.board, clock_hz=pair.clock_hz,
                    published_ms=pair.latency_ms, source=pair.source)
        if recipe is None:
            results.append(PairResult(**base, skipped=f"no recipe '{pair.recipe}'"))
            continue
        missing = missing_folders(recipe.sources, environ)
        if missing:
            results.append(PairResult(**base, skipped="; ".join(
                f"set {s.env} to {s.what} ({s.obtain})" for s in missing)))
            continue
        if progress:
            progress(pair)
        folders = {s.env: Path(environ[s.env]) for s in recipe.sources}
        try:
            results.append(run_pair(pair, recipe, folders, cache))
        except LabError as error:
            results.append(PairResult(**base, skipped=f"failed: {error}"))
    return results


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""

    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        result = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                result[order[k]] = (i + j) / 2
            i = j + 1
        return result

    rx, ry = ranks(xs), ranks(ys)
    return float(np.corrcoef(rx, ry)[0, 1]) if len(xs) > 1 else float("nan")


@dataclass(frozen=True)
class ValidationSummary:
    pairs: int
    cortex_m7_pairs: int
    median_error: float | None
    median_naive_error: float | None
    rankings: dict[str, tuple[int, float]]  # board -> (pairs, Spearman of estimate vs published)
    naive_rankings: dict[str, tuple[int, float]]

    @property
    def meets_targets(self) -> bool:
        return (self.pairs >= 8 and self.cortex_m7_pairs >= 3 and self.median_error is not None
                and self.median_error <= TARGET_MEDIAN_ERROR and self.median_naive_error is not None
                and self.median_error <= self.median_naive_error / 2
                and all(rho >= TARGET_SPEARMAN for _n, rho in self.rankings.values()))

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "meets_targets": self.meets_targets}


def summarise(results: list[PairResult], core_of: Callable[[str], str]) -> ValidationSummary:
    done = [r for r in results if r.skipped is None]
    by_board: dict[str, list[PairResult]] = {}
    for r in done:
        by_board.setdefault(r.board, []).append(r)

    def ranking(value: Callable[[PairResult], float]) -> dict[str, tuple[int, float]]:
        return {board: (len(rs), spearman([value(r) for r in rs], [r.published_ms for r in rs]))
                for board, rs in by_board.items() if len(rs) >= RANKED_BOARD_PAIRS}

    return ValidationSummary(
        pairs=len(done),
        cortex_m7_pairs=sum(core_of(r.board) == "cortex-m7" for r in done),
        median_error=statistics.median(abs(r.error) for r in done) if done else None,
        median_naive_error=statistics.median(abs(r.naive_error) for r in done) if done else None,
        rankings=ranking(lambda r: r.estimated_ms),
        naive_rankings=ranking(lambda r: r.naive_ms),
    )
