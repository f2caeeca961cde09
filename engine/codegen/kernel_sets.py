"""What the kernel sets (engine.codegen.variants.KERNEL_SETS) take, gathered from the op families
(engine.ops): every code path (variant tag) each can choose, and the scratch each op's kernel needs."""
from __future__ import annotations

from engine.codegen.variants import KERNEL_SETS
from engine.ir import Graph
from engine.ops import OPS

# Every code path code generation can choose, per kernel set: a layer's variant is a subset. The
# differential test (tests/test_differential.py) checks that its random graphs reach each one.
KERNEL_VARIANTS: dict[str, frozenset[str]] = {
    kernels: frozenset().union(*(spec.c.variants[kernels] for spec in OPS.values())) for kernels in KERNEL_SETS
}


def check_kernel_set(kernels: str) -> None:
    """Refuse a kernel set that is not one of KERNEL_SETS."""
    if kernels not in KERNEL_SETS:
        raise ValueError(f"kernels {kernels!r}: one of {', '.join(KERNEL_SETS)}")


def kernel_scratch(graph: Graph, kernels: str = "portable") -> dict[int, int]:
    """Bytes of scratch each op's kernel needs, by op position (0 where none), for the kernel set
    `kernels`. Plan with kernels="optimized" to give the optimised kernels their scratch inside
    the arena; otherwise generate_c finds them room in the arena (bytes no live tensor uses at
    that step) or, failing that, a static buffer outside it."""
    check_kernel_set(kernels)
    return {position: OPS[op.kind].scratch_bytes(graph, op, kernels) for position, op in enumerate(graph.ops)}
