"""The differential test of the kernels: random graphs (engine.randgraph) compiled with the
optimised kernels (under a random widening budget, so that both int8 and int16 weights run) and
with the portable ones, run on the same inputs, and compared with TFLite Micro bit for bit. One
graph in PATCHED_EVERY runs its first ops by patches (engine.patches), on a seeded grid and split.

Host runs go through a few bundled programs (engine.hostbuild.build_host_bundle), so hundreds of
graphs build in one compiler call per bundle. The variants each compiled graph chose are kept, to
check that every variant code generation can choose was reached (engine.codegen.kernel_sets.KERNEL_VARIANTS)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from engine.compiler import CompiledModel, compile_graph, with_wide_budget
from engine.export import export_tflite
from engine.hostbuild import build_host_bundle, run_host_bundle
from engine.ir import Graph
from engine.errors import UnsupportedOpError
from engine.fold import fold_pad
from engine.oracle import run_tflm
from engine.patches.rewrite import PatchGrid, split_points
from engine.randgraph import random_graph
from engine.synth import random_inputs

INPUTS_PER_GRAPH = 2
BUNDLE_SIZE = 48
PATCHED_EVERY = 3
PATCH_GRIDS = ((2, 2), (3, 3), (4, 4), (1, 3), (3, 1), (2, 3))


@dataclass(frozen=True)
class Case:
    """One random graph compiled with one kernel set (and, for the optimised one, a widening budget)."""

    seed: int
    graph: Graph
    compiled: CompiledModel

    @property
    def kernels(self) -> str:
        return self.compiled.kernels

    @property
    def variants(self) -> set[str]:
        return {tag for layer in self.compiled.generated.variants for tag in layer}

    def describe(self) -> str:
        patches = f", patches {self.compiled.patched.grid}" if self.compiled.patched else ""
        return f"seed {self.seed} ({self.graph.name}, {self.kernels} kernels{patches})"


@dataclass(frozen=True)
class Mismatch:
    case: Case
    differing: int
    total: int
    first: int

    def __str__(self) -> str:
        return (f"{self.case.describe()}: {self.differing} of {self.total} output values differ from TFLM, "
                f"first at flat index {self.first}")


def wide_budget_for(seed: int, compiled: CompiledModel) -> int | None:
    """A seeded widening budget: no limit, nothing, or half of what every candidate would take, so
    that int16 and int8 weights both run."""
    full = compiled.generated.widened_bytes
    choice = seed % 3
    return None if choice == 0 else 0 if choice == 1 else full // 2


def patches_for(seed: int, graph: Graph) -> PatchGrid | None:
    """A seeded patch grid and split for one graph in PATCHED_EVERY (None for the others, and
    where the graph has no stage that can run by patches)."""
    if seed % PATCHED_EVERY != PATCHED_EVERY - 1:
        return None
    points = split_points(fold_pad(graph))
    if not points:
        return None
    rows, cols = PATCH_GRIDS[(seed // PATCHED_EVERY) % len(PATCH_GRIDS)]
    return PatchGrid(rows, cols, points[(seed // 7) % len(points)])


def _compile(graph: Graph, prefix: str, kernels: str, patches: PatchGrid | None) -> CompiledModel:
    """With the patches where the grid fits the stage (a grid finer than a small stage output, or
    a patch that reads only padding, is refused: then without)."""
    if patches is not None:
        try:
            return compile_graph(graph, prefix=prefix, kernels=kernels, patches=patches)
        except UnsupportedOpError:
            pass
    return compile_graph(graph, prefix=prefix, kernels=kernels)


def make_cases(seeds: range | list[int]) -> list[Case]:
    cases = []
    for number, seed in enumerate(seeds):
        graph = random_graph(seed)
        patches = patches_for(seed, graph)
        optimized = _compile(graph, f"o{number}", "optimized", patches)
        budget = wide_budget_for(seed, optimized)
        if budget is not None:
            optimized = with_wide_budget(optimized, budget)  # the same plan, the C generated again
        cases.append(Case(seed, graph, optimized))
        cases.append(Case(seed, graph, _compile(graph, f"p{number}", "portable", patches)))
    return cases


def inputs_for(case: Case) -> list[np.ndarray]:
    rng = np.random.default_rng([case.seed, 7])
    return [random_inputs(case.graph, rng)[0] for _ in range(INPUTS_PER_GRAPH)]


def run_cases_on_host(cases: list[Case], bundle_size: int = BUNDLE_SIZE, jobs: int = 2) -> list[list[np.ndarray]]:
    """Each case's outputs on inputs_for(case), built as host programs of `bundle_size` models."""
    bundles = [cases[i:i + bundle_size] for i in range(0, len(cases), bundle_size)]

    def run(bundle: list[Case]) -> list[list[np.ndarray]]:
        program = build_host_bundle([c.compiled.generated for c in bundle])
        runs = [(number, c.compiled.graph, value) for number, c in enumerate(bundle) for value in inputs_for(c)]
        flat = run_host_bundle(program, runs)
        return [flat[i * INPUTS_PER_GRAPH:(i + 1) * INPUTS_PER_GRAPH] for i in range(len(bundle))]

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return [outputs for result in pool.map(run, bundles) for outputs in result]


def tflm_outputs(case: Case) -> list[np.ndarray]:
    model = export_tflite(case.graph)
    return [run_tflm(model, [value])[0] for value in inputs_for(case)]


def mismatches(cases: list[Case], outputs: list[list[np.ndarray]]) -> list[Mismatch]:
    """Every case whose output differs from TFLM's for the same input."""
    found, reference = [], {}
    for case, got in zip(cases, outputs):
        if case.seed not in reference:
            reference[case.seed] = tflm_outputs(case)
        for value, want in zip(got, reference[case.seed]):
            differ = np.flatnonzero(value.ravel() != np.asarray(want).reshape(value.shape).ravel())
            if differ.size:
                found.append(Mismatch(case, int(differ.size), int(value.size), int(differ[0])))
                break
    return found
