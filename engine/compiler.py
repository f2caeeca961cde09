"""The engine's pipeline: Graph -> PAD folded -> the first ops by patches, if asked
(engine.patches) -> memory plan (overlaps, the kernels' scratch) -> generated C."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from engine.codegen.generator import KERNELS_DIR, GeneratedModel, generate_c
from engine.codegen.kernel_sets import kernel_scratch
from engine.codegen.variants import KERNEL_SETS
from engine.fold import fold_pad
from engine.ir import Graph
from engine.memory_plan import MemoryPlan
from engine.patches.rewrite import PatchedGraph, PatchGrid, patch_graph
from engine.planner import plan_memory
from engine.validate import validate_graph

ENGINE_NAME = "tinylab"
PATCHES_ENGINE_NAME = ENGINE_NAME + "-patches"  # the same engine, its first ops run by patches
ENGINE_VERSION = "0.2"


@dataclass(frozen=True)
class CompiledModel:
    graph: Graph  # after the rewrites (PAD folded, patches): what the plan and the C describe
    plan: MemoryPlan
    generated: GeneratedModel
    kernels: str
    patched: PatchedGraph | None = None  # the patch rewrite, where one was asked for


def compile_graph(graph: Graph, prefix: str = "model", kernels: str = "optimized",
                  wide_budget: int | None = None, patches: PatchGrid | None = None) -> CompiledModel:
    """`kernels`: "optimized" (per-layer specialised kernels) or "portable" (the C library: the
    in-run baseline). The graph is validated first (engine.validate). Both use the same memory techniques. `wide_budget`: the flash the optimised
    kernels may spend on int16 copies of weights (None: no limit). `patches`: the first ops run
    patch by patch on this grid (None: whole tensors)."""
    if kernels not in KERNEL_SETS:
        raise ValueError(f"kernels {kernels!r}: one of {', '.join(KERNEL_SETS)}")
    validate_graph(graph)  # a graph built in Python meets the importer's checks too
    graph = fold_pad(graph)
    patched = patch_graph(graph, patches) if patches is not None else None
    if patched is not None:
        graph = patched.graph
    plan = plan_memory(graph, kernel_scratch(graph, kernels), overlap=True)
    return CompiledModel(graph, plan, generate_c(graph, plan, prefix, kernels, wide_budget), kernels, patched)


def with_wide_budget(compiled: CompiledModel, wide_budget: int | None) -> CompiledModel:
    """The same model and plan, its C generated again within another widening budget."""
    generated = generate_c(compiled.graph, compiled.plan, compiled.generated.prefix, compiled.kernels, wide_budget)
    return replace(compiled, generated=generated)


def kernel_sources() -> tuple[Path, ...]:
    """The kernel library's C files, linked into every model build."""
    return tuple(sorted(KERNELS_DIR.glob("*.c")))
