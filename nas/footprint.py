"""A network's footprint from its shapes alone: the arena the engine's planner gives the graph the
firmware runs (PAD folded, the optimised kernels' scratch inside), the flash of its int8
constants, its op count and its MACs.

Both need shapes and op structure only (`nas.shapegraph`), not the quantised values: the planner
reads nothing else, and the optimised kernels lay the constants out by shape (`constant_bytes`,
with no int16 copies of weights: `hil.firmware_build.flash.fit_flash` drops them first when flash is short).
`tests/test_nas_space.py` checks both against `engine.compiler.compile_graph` on quantised models."""
from __future__ import annotations

from dataclasses import dataclass

from engine.codegen.kernel_sets import kernel_scratch
from engine.fold import fold_pad
from engine.ir import Graph
from engine.ops.elementwise import ADD_TABLE_MIN_ELEMENTS
from engine.memory_plan import MemoryPlan
from engine.planner import plan_memory
from engine.torch_models import TinyMobileNetConfig
from nas.layers import network_macs
from nas.lutkey import LUT_KERNELS
from nas.shapegraph import network_graph

CONV_REQUANT_WORDS = 4  # int32 words per output channel: bias, multiplier, rounding, shift
DEPTHWISE_REQUANT_WORDS = 3  # bias, multiplier, shift
ADD_TABLE_BYTES = 2 * 256 * 4  # an ADD of ADD_TABLE_MIN_ELEMENTS or more: each input rescaled, for -128..127


@dataclass(frozen=True)
class Footprint:
    """What one network takes, before the board's fixed overhead is added."""

    arena_bytes: int  # the planner's arena: every activation and the kernels' scratch
    constant_bytes: int  # flash of its int8 constants (an upper bound, see the module's docstring)
    ops: int  # layers of the firmware's graph: each optimised one adds its own function to the code
    macs: int


def memory_plan(graph: Graph, kernels: str = LUT_KERNELS) -> MemoryPlan:
    """The plan `engine.compiler.compile_graph` makes for `graph` once rewritten (PAD folded, patches)."""
    return plan_memory(graph, kernel_scratch(graph, kernels), overlap=True)


def constant_bytes(graph: Graph) -> int:
    """The flash of the graph's int8 constants as the optimised kernels lay them out: a
    convolution's weights as rows padded to 4 bytes and 4 requantisation words per channel, a
    depthwise one's weights as they are and 3 words per channel, the classifier's weights and bias,
    and the two rescaling tables of a large element-wise ADD."""
    total = 0
    for op in graph.ops:
        weights = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
        channels = graph.tensors[op.outputs[0]].shape[-1]
        if op.kind == "CONV_2D":
            row = weights.elements // channels
            total += channels * 4 * -(-row // 4) + CONV_REQUANT_WORDS * 4 * channels
        elif op.kind == "DEPTHWISE_CONV_2D":
            total += weights.nbytes + DEPTHWISE_REQUANT_WORDS * 4 * channels
        elif op.kind == "FULLY_CONNECTED":
            total += weights.nbytes + graph.tensors[op.inputs[2]].nbytes
        elif op.kind == "ADD" and graph.tensors[op.outputs[0]].elements >= ADD_TABLE_MIN_ELEMENTS:
            total += ADD_TABLE_BYTES
    return total


def shape_plan(config: TinyMobileNetConfig) -> tuple[Graph, MemoryPlan]:
    """A network's shape graph, PAD folded (it has none: the same ops), and the plan the compiler gives it."""
    graph = fold_pad(network_graph(config))
    return graph, memory_plan(graph)


def footprint(config: TinyMobileNetConfig, shaped: tuple[Graph, MemoryPlan] | None = None) -> Footprint:
    """The network's footprint; `shaped`: its `shape_plan`, where the caller has it already."""
    graph, plan = shaped or shape_plan(config)
    return Footprint(arena_bytes=plan.arena_bytes, constant_bytes=constant_bytes(graph), ops=len(graph.ops),
                     macs=network_macs(config))
