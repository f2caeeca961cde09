"""The memory planner: tensor lifetimes, arena offsets, per-op scratch buffers, the peak, and a
per-step table of what is live.

Step i is the execution of graph.ops[i]. A tensor lives from the step that writes it (step 0 for
graph inputs) to the last step that reads it (to the end for graph outputs). RESHAPE's output
shares its input's bytes. Each op's scratch buffer lives during that op only. Offsets are chosen
greedily, largest buffer first, at the lowest offset that no buffer alive at the same time uses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from engine.ir import Graph

ALIASING_OPS = ("RESHAPE",)


@dataclass(frozen=True)
class Placement:
    tensor: int
    offset: int
    size: int
    first_step: int
    last_step: int


@dataclass(frozen=True)
class StepMemory:
    step: int
    op_kind: str
    op_index: int  # the op's index in the source model
    live_tensors: tuple[int, ...]
    tensor_bytes: int
    scratch_bytes: int

    @property
    def live_bytes(self) -> int:
        return self.tensor_bytes + self.scratch_bytes


@dataclass(frozen=True)
class MemoryPlan:
    arena_bytes: int
    placements: dict[int, Placement]  # every activation tensor, by tensor index
    scratch_offsets: dict[int, int]  # op position -> offset of its scratch buffer
    scratch_sizes: dict[int, int]
    steps: tuple[StepMemory, ...]
    alignment: int
    alias_of: dict[int, int]  # RESHAPE output -> the tensor whose bytes it shares

    @property
    def lower_bound(self) -> int:
        """The most bytes live at any one step: no placement without overlap does better."""
        return max((s.live_bytes for s in self.steps), default=0)

    def offset(self, tensor: int) -> int:
        return self.placements[tensor].offset


@dataclass
class _Buffer:
    key: tuple[str, int]  # ("tensor", root tensor) or ("scratch", op position)
    size: int
    first: int
    last: int
    offset: int = -1


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _alias_roots(graph: Graph) -> dict[int, int]:
    """tensor -> the tensor whose bytes it shares (itself unless it is a RESHAPE output)."""
    root: dict[int, int] = {}
    for op in graph.ops:
        if op.kind in ALIASING_OPS and graph.tensors[op.inputs[0]].data is None:
            source = op.inputs[0]
            root[op.outputs[0]] = root.get(source, source)
    return root


def activation_lifetimes(graph: Graph) -> dict[int, tuple[int, int]]:
    """tensor -> (first step, last step) for every tensor that is not a constant."""
    end = len(graph.ops)
    first: dict[int, int] = {t: 0 for t in graph.inputs}
    last: dict[int, int] = {t: 0 for t in graph.inputs}
    for step, op in enumerate(graph.ops):
        for t in op.outputs:
            first.setdefault(t, step)
            last[t] = max(last.get(t, step), step)
        for t in op.inputs:
            if t >= 0 and graph.tensors[t].data is None:
                first.setdefault(t, step)
                last[t] = max(last.get(t, step), step)
    for t in graph.outputs:
        last[t] = end
    return {t: (first[t], last[t]) for t in first}


def plan_memory(graph: Graph, scratch_bytes: Mapping[int, int] | None = None, alignment: int = 16) -> MemoryPlan:
    scratch_bytes = scratch_bytes or {}
    lifetimes = activation_lifetimes(graph)
    roots = _alias_roots(graph)

    buffers: dict[tuple[str, int], _Buffer] = {}
    for tensor, (first, last) in lifetimes.items():
        root = roots.get(tensor, tensor)
        key = ("tensor", root)
        size = _align(graph.tensors[tensor].nbytes, alignment)
        if key in buffers:
            buffer = buffers[key]
            buffer.size = max(buffer.size, size)
            buffer.first = min(buffer.first, first)
            buffer.last = max(buffer.last, last)
        else:
            buffers[key] = _Buffer(key, size, first, last)
    for step, size in scratch_bytes.items():
        if size > 0:
            buffers[("scratch", step)] = _Buffer(("scratch", step), _align(size, alignment), step, step)

    _place_greedy_by_size(list(buffers.values()))

    placements = {}
    for tensor, (first, last) in lifetimes.items():
        buffer = buffers[("tensor", roots.get(tensor, tensor))]
        placements[tensor] = Placement(tensor, buffer.offset, graph.tensors[tensor].nbytes, first, last)
    scratch_offsets = {step: b.offset for (kind, step), b in buffers.items() if kind == "scratch"}
    scratch_sizes = {step: b.size for (kind, step), b in buffers.items() if kind == "scratch"}
    arena = max((b.offset + b.size for b in buffers.values()), default=0)
    return MemoryPlan(
        arena_bytes=arena,
        placements=placements,
        scratch_offsets=scratch_offsets,
        scratch_sizes=scratch_sizes,
        steps=_step_table(graph, buffers, scratch_sizes),
        alignment=alignment,
        alias_of=roots,
    )


def _place_greedy_by_size(buffers: list[_Buffer]) -> None:
    placed: list[_Buffer] = []
    for buffer in sorted(buffers, key=lambda b: (-b.size, b.first, b.key)):
        overlapping = sorted(
            (p for p in placed if p.first <= buffer.last and buffer.first <= p.last), key=lambda p: p.offset
        )
        offset = 0
        for other in overlapping:
            if offset + buffer.size <= other.offset:
                break
            offset = max(offset, other.offset + other.size)
        buffer.offset = offset
        placed.append(buffer)


def _step_table(graph: Graph, buffers: dict[tuple[str, int], _Buffer], scratch_sizes: dict[int, int]) -> tuple[StepMemory, ...]:
    steps = []
    tensor_buffers = [b for (kind, _), b in buffers.items() if kind == "tensor"]
    for step, op in enumerate(graph.ops):
        live = [b for b in tensor_buffers if b.first <= step <= b.last]
        steps.append(
            StepMemory(
                step=step,
                op_kind=op.kind,
                op_index=op.index,
                live_tensors=tuple(sorted(b.key[1] for b in live)),
                tensor_bytes=sum(b.size for b in live),
                scratch_bytes=scratch_sizes.get(step, 0),
            )
        )
    return tuple(steps)


def check_no_overlap(plan: MemoryPlan) -> None:
    """Raise AssertionError if two buffers alive at the same step share bytes (a plan bug)."""
    # (start, end, first step, last step, owner): buffers of one owner may share bytes.
    spans = [
        (p.offset, p.offset + p.size, p.first_step, p.last_step, ("tensor", plan.alias_of.get(p.tensor, p.tensor)))
        for p in plan.placements.values()
    ]
    spans += [(o, o + plan.scratch_sizes[s], s, s, ("scratch", s)) for s, o in plan.scratch_offsets.items()]
    for i, a in enumerate(spans):
        if a[1] > plan.arena_bytes:
            raise AssertionError(f"{a[4]} lies outside the arena")
        for b in spans[i + 1 :]:
            same_time = a[2] <= b[3] and b[2] <= a[3]
            same_bytes = a[0] < b[1] and b[0] < a[1]
            if same_time and same_bytes and a[4] != b[4]:
                raise AssertionError(f"{a[4]} and {b[4]} overlap in the arena while both are alive")
