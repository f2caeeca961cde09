"""The engine's pipeline: Graph -> per-op scratch needs -> memory plan -> generated C."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.codegen import GeneratedModel, generate_c, kernel_scratch
from engine.ir import Graph
from engine.planner import MemoryPlan, plan_memory

KERNELS_DIR = Path(__file__).resolve().parent / "kernels"
ENGINE_NAME = "tinylab"
ENGINE_VERSION = "0.1"


@dataclass(frozen=True)
class CompiledModel:
    graph: Graph
    plan: MemoryPlan
    generated: GeneratedModel


def compile_graph(graph: Graph, prefix: str = "model") -> CompiledModel:
    plan = plan_memory(graph, kernel_scratch(graph))
    return CompiledModel(graph, plan, generate_c(graph, plan, prefix))


def kernel_sources() -> tuple[Path, ...]:
    """The kernel library's C files, linked into every model build."""
    return tuple(sorted(KERNELS_DIR.glob("*.c")))
