"""The memory planner: tensor lifetimes, overlaps of outputs on dying inputs, per-op scratch
buffers, arena offsets chosen by a search, the peak, the lower bound, and a per-step table.

Step i is the execution of graph.ops[i]. A tensor lives from the step that writes it (step 0 for
graph inputs) to the last step that reads it (to the end for graph outputs). RESHAPE's output
shares its input's bytes. Where an op's kernel allows it (engine.overlap) and the input dies at
that op, the output is placed over the input at the rule's relative offset; tensors tied this way
form a rigid group. Each op's scratch buffer lives during that op only. Groups are placed
first-fit (lowest offset that collides with nothing alive at the same time) in several orders,
exhaustively for small graphs, and the smallest arena wins."""
from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from engine.ir import Graph
from engine.overlap import OverlapRule, overlap_candidates

ALIASING_OPS = ("RESHAPE",)
EXHAUSTIVE_GROUPS = 7  # up to this many groups, every placement order is tried
SEARCH_SECONDS = 1.0  # budget for randomised orders beyond the fixed ones


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
    tensor_bytes: int  # bytes the live tensors cover (overlapping tensors counted once)
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
    overlaps: dict[int, OverlapRule] = field(default_factory=dict)  # op position -> overlap used
    search: str = ""  # which placement order won

    @property
    def lower_bound(self) -> int:
        """The most bytes that must be live at one step, given the overlaps chosen: no
        placement does better."""
        return max((s.live_bytes for s in self.steps), default=0)

    def offset(self, tensor: int) -> int:
        return self.placements[tensor].offset


@dataclass
class _Member:
    owner: tuple[str, int]  # ("tensor", alias root) or ("scratch", op position)
    rel: int  # offset inside its group
    size: int
    first: int
    last: int


@dataclass
class _Group:
    members: list[_Member]

    @property
    def low(self) -> int:
        return min(m.rel for m in self.members)

    @property
    def span(self) -> int:
        return max(m.rel + m.size for m in self.members) - self.low

    @property
    def first(self) -> int:
        return min(m.first for m in self.members)

    @property
    def last(self) -> int:
        return max(m.last for m in self.members)


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _alias_roots(graph: Graph) -> dict[int, int]:
    """tensor -> the tensor whose bytes it shares (only RESHAPE outputs appear)."""
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


def plan_memory(
    graph: Graph,
    scratch_bytes: Mapping[int, int] | None = None,
    alignment: int = 16,
    *,
    overlap: bool = False,
    search: str = "full",
    search_seconds: float = SEARCH_SECONDS,
) -> MemoryPlan:
    """Plan the arena. `scratch_bytes` are the op kernels' own needs (codegen.kernel_scratch).
    `overlap=True` lets outputs reuse dying inputs where engine.overlap allows it (the generated
    code must then use the overlap kernels); the plan without overlaps is computed too and the
    smaller arena kept. `search="greedy-by-size"` places largest first only (the classic
    baseline); "full" searches placement orders."""
    if search not in ("full", "greedy-by-size"):
        raise ValueError(f"search {search!r}: 'full' or 'greedy-by-size'")
    seconds = search_seconds if search == "full" else -1.0
    plans = [_plan(graph, scratch_bytes or {}, alignment, False, seconds)]
    if overlap:
        plans.append(_plan(graph, scratch_bytes or {}, alignment, True, seconds))
    return min(plans, key=lambda p: p.arena_bytes)


def _plan(graph: Graph, scratch_bytes: Mapping[int, int], alignment: int, overlap: bool, search_seconds: float) -> MemoryPlan:
    lifetimes = activation_lifetimes(graph)
    roots = _alias_roots(graph)

    members: dict[tuple[str, int], _Member] = {}
    for tensor, (first, last) in lifetimes.items():
        owner = ("tensor", roots.get(tensor, tensor))
        size = _align(graph.tensors[tensor].nbytes, alignment)
        if owner in members:
            m = members[owner]
            m.size, m.first, m.last = max(m.size, size), min(m.first, first), max(m.last, last)
        else:
            members[owner] = _Member(owner, 0, size, first, last)

    groups = {owner: _Group([m]) for owner, m in members.items()}
    allowed: set[frozenset[tuple[str, int]]] = set()
    overlaps: dict[int, OverlapRule] = {}
    if overlap:
        for position, rules in sorted(overlap_candidates(graph).items()):
            for rule in rules:
                if _try_overlap(rule, position, roots, members, groups, allowed, graph):
                    overlaps[position] = rule
                    break

    scratch = {p: s for p, s in scratch_bytes.items() if s > 0}
    for position, rule in overlaps.items():
        scratch[position] = rule.scratch_bytes
    scratch = {p: _align(s, alignment) for p, s in scratch.items() if s > 0}
    for position, size in scratch.items():
        owner = ("scratch", position)
        groups[owner] = _Group([_Member(owner, 0, size, position, position)])

    unique = list({id(g): g for g in groups.values()}.values())
    steps = _step_table(graph, unique, scratch)
    floor = max((s.live_bytes for s in steps), default=0)
    bases, arena, search = _search(unique, alignment, search_seconds, floor)

    placements = {}
    for tensor, (first, last) in lifetimes.items():
        owner = ("tensor", roots.get(tensor, tensor))
        group = groups[owner]
        offset = bases[id(group)] + members[owner].rel
        placements[tensor] = Placement(tensor, offset, graph.tensors[tensor].nbytes, first, last)
    scratch_offsets = {p: bases[id(groups[("scratch", p)])] for p in scratch}
    return MemoryPlan(
        arena_bytes=arena,
        placements=placements,
        scratch_offsets=scratch_offsets,
        scratch_sizes=scratch,
        steps=steps,
        alignment=alignment,
        alias_of=roots,
        overlaps=overlaps,
        search=search,
    )


def _try_overlap(
    rule: OverlapRule,
    position: int,
    roots: dict[int, int],
    members: dict[tuple[str, int], _Member],
    groups: dict[tuple[str, int], _Group],
    allowed: set[frozenset[tuple[str, int]]],
    graph: Graph,
) -> bool:
    """Tie the rule's output to its input if the input dies here; False if that is not safe."""
    source = members[("tensor", roots.get(rule.input, rule.input))]
    target = members[("tensor", roots.get(rule.output, rule.output))]
    if source.last != position or target.first != position or rule.input in graph.outputs:
        return False
    a, b = groups[source.owner], groups[target.owner]
    if a is b:
        return False
    shift = source.rel + rule.relative_offset - target.rel
    pair = frozenset((source.owner, target.owner))
    moved = [_Member(m.owner, m.rel + shift, m.size, m.first, m.last) for m in b.members]
    for x in a.members:
        for y in moved:
            same_time = x.first <= y.last and y.first <= x.last
            same_bytes = x.rel < y.rel + y.size and y.rel < x.rel + x.size
            if same_time and same_bytes and frozenset((x.owner, y.owner)) != pair:
                return False
    merged = _Group(a.members + moved)
    for m in merged.members:
        groups[m.owner] = merged
        members[m.owner] = m
    allowed.add(pair)
    return True


# ---- placement ----
def _first_fit(group: _Group, placed: list[tuple[_Member, int]], alignment: int) -> int:
    """The lowest base offset at which no member of `group` collides with a placed member alive
    at the same time."""
    conflicts = [
        (m, p, start)
        for m in group.members
        for p, start in placed
        if m.first <= p.last and p.first <= m.last
    ]
    floor = -group.low
    candidates = sorted({floor} | {_align(start + p.size - m.rel, alignment) for m, p, start in conflicts})
    for base in candidates:
        if base < floor:
            continue
        if all(base + m.rel >= start + p.size or start >= base + m.rel + m.size for m, p, start in conflicts):
            return base
    raise AssertionError("first fit found no base offset")  # the last candidate always fits


def _place(order: Iterable[_Group], alignment: int) -> tuple[dict[int, int], int]:
    placed: list[tuple[_Member, int]] = []
    bases: dict[int, int] = {}
    top = 0
    for group in order:
        base = _first_fit(group, placed, alignment)
        bases[id(group)] = base
        for m in group.members:
            placed.append((m, base + m.rel))
            top = max(top, base + m.rel + m.size)
    return bases, top


_ORDERS: dict[str, Callable[[_Group], tuple]] = {
    "largest first": lambda g: (-g.span, g.first),
    "earliest first": lambda g: (g.first, -g.span),
    "longest-lived first": lambda g: (-(g.last - g.first), -g.span),
    "most byte-steps first": lambda g: (-g.span * (g.last - g.first + 1), g.first),
}


def _search(groups: list[_Group], alignment: int, seconds: float, floor: int) -> tuple[dict[int, int], int, str]:
    """The best placement found; stops early once the arena reaches `floor` (the lower bound)."""
    best: tuple[dict[int, int], int, str] | None = None

    def consider(order: list[_Group], name: str) -> None:
        nonlocal best
        bases, arena = _place(order, alignment)
        if best is None or arena < best[1]:
            best = (bases, arena, name)

    def done() -> bool:
        return best is not None and best[1] <= floor

    if seconds < 0:  # greedy by size only
        consider(sorted(groups, key=_ORDERS["largest first"]), "largest first")
        return best
    for name, key in _ORDERS.items():
        consider(sorted(groups, key=key), name)
    if done():
        return best
    if len(groups) <= EXHAUSTIVE_GROUPS:
        for order in itertools.permutations(groups):
            consider(list(order), "exhaustive")
            if done():
                break
    else:
        rng = random.Random(0)
        deadline = time.monotonic() + seconds
        base_order = sorted(groups, key=_ORDERS["largest first"])
        while time.monotonic() < deadline and not done():
            order = base_order[:]
            for _ in range(max(1, len(order) // 8)):  # a few swaps away from largest-first
                i, j = rng.randrange(len(order)), rng.randrange(len(order))
                order[i], order[j] = order[j], order[i]
            consider(order, "randomised")
    assert best is not None
    return best


def _step_table(graph: Graph, groups: list[_Group], scratch: dict[int, int]) -> tuple[StepMemory, ...]:
    steps = []
    for step, op in enumerate(graph.ops):
        covered = 0
        live: list[int] = []
        for group in groups:
            spans = sorted(
                (m.rel, m.rel + m.size) for m in group.members if m.owner[0] == "tensor" and m.first <= step <= m.last
            )
            live += [m.owner[1] for m in group.members if m.owner[0] == "tensor" and m.first <= step <= m.last]
            end = None
            for start, stop in spans:  # the union of the live members' byte ranges
                if end is None or start >= end:
                    covered += stop - start
                    end = stop
                elif stop > end:
                    covered += stop - end
                    end = stop
        steps.append(
            StepMemory(
                step=step,
                op_kind=op.kind,
                op_index=op.index,
                live_tensors=tuple(sorted(live)),
                tensor_bytes=covered,
                scratch_bytes=scratch.get(step, 0),
            )
        )
    return tuple(steps)


def check_no_overlap(plan: MemoryPlan) -> None:
    """Raise AssertionError if two buffers alive at the same step share bytes, other than an
    output over its input where the plan chose that overlap (a plan bug otherwise)."""
    def owner(tensor: int) -> tuple[str, int]:
        return ("tensor", plan.alias_of.get(tensor, tensor))

    allowed = {frozenset((owner(r.input), owner(r.output))) for r in plan.overlaps.values()}
    spans = [(p.offset, p.offset + p.size, p.first_step, p.last_step, owner(p.tensor)) for p in plan.placements.values()]
    spans += [(o, o + plan.scratch_sizes[s], s, s, ("scratch", s)) for s, o in plan.scratch_offsets.items()]
    for i, a in enumerate(spans):
        if a[0] < 0 or a[1] > plan.arena_bytes:
            raise AssertionError(f"{a[4]} lies outside the arena")
        for b in spans[i + 1 :]:
            same_time = a[2] <= b[3] and b[2] <= a[3]
            same_bytes = a[0] < b[1] and b[0] < a[1]
            if same_time and same_bytes and a[4] != b[4] and frozenset((a[4], b[4])) not in allowed:
                raise AssertionError(f"{a[4]} and {b[4]} overlap in the arena while both are alive")
