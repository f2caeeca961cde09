"""The engine's pipeline: Graph -> PAD folded -> memory plan (overlaps, the kernels' scratch) ->
generated C."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from engine.codegen.generator import KERNELS_DIR, GeneratedModel, generate_c
from engine.codegen.kernel_sets import kernel_scratch
from engine.codegen.variants import KERNEL_SETS
from engine.fold import fold_pad
from engine.ir import Graph
from engine.memory_plan import MemoryPlan
from engine.planner import plan_memory
from engine.validate import validate_graph

ENGINE_NAME = "tinylab"
ENGINE_VERSION = "0.2"


@dataclass(frozen=True)
class CompiledModel:
    graph: Graph  # after the rewrites (PAD folded): what the plan and the C describe
    plan: MemoryPlan
    generated: GeneratedModel
    kernels: str


def compile_graph(graph: Graph, prefix: str = "model", kernels: str = "optimized",
                  wide_budget: int | None = None) -> CompiledModel:
    """`kernels`: "optimized" (per-layer specialised kernels) or "portable" (the C library: the
    in-run baseline). The graph is validated first (engine.validate). Both use the same memory techniques. `wide_budget`: the flash the optimised
    kernels may spend on int16 copies of weights (None: no limit)."""
    if kernels not in KERNEL_SETS:
        raise ValueError(f"kernels {kernels!r}: one of {', '.join(KERNEL_SETS)}")
    validate_graph(graph)  # a graph built in Python meets the importer's checks too
    graph = fold_pad(graph)
    plan = plan_memory(graph, kernel_scratch(graph, kernels), overlap=True)
    return CompiledModel(graph, plan, generate_c(graph, plan, prefix, kernels, wide_budget), kernels)


def with_wide_budget(compiled: CompiledModel, wide_budget: int | None) -> CompiledModel:
    """The same model and plan, its C generated again within another widening budget."""
    generated = generate_c(compiled.graph, compiled.plan, compiled.generated.prefix, compiled.kernels, wide_budget)
    return replace(compiled, generated=generated)


def kernel_sources() -> tuple[Path, ...]:
    """The kernel library's C files, linked into every model build."""
    return tuple(sorted(KERNELS_DIR.glob("*.c")))
