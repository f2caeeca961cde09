"""The memory planner: tensor lifetimes, overlaps of outputs on dying inputs, per-op scratch
buffers, arena offsets chosen by a search, the peak, the lower bound, and a per-step table.

Step i is the execution of graph.ops[i]. A tensor lives from the step that writes it (step 0 for
graph inputs) to the last step that reads it (to the end for graph outputs). RESHAPE's output
shares its input's bytes, as a PATCH_PASTE's output shares the tensor it pastes into. Where an op's kernel allows it (engine.overlap) and the input dies at
that op, the output is placed over the input at the rule's relative offset; tensors tied this way
form a rigid group; where an op may write over either of two inputs, the one that gives the
smaller arena is kept. Each op's scratch buffer lives during that op only. Groups are placed
first-fit (lowest offset that collides with nothing alive at the same time) in several fixed
orders, then every order on small graphs or a seeded local search of at most SEARCH_ITERATIONS
orders on the others, and the smallest arena wins. Nothing depends on time: a graph always gets
the same plan. MemoryPlan.top_of_arena() says what holds the arena above the lower bound."""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterable, Mapping

from engine.ir import Graph
from engine.memory_plan import MemoryPlan, Placement, StepMemory
from engine.overlap import OverlapRule, overlap_candidates

# op kind -> the input whose bytes its output shares (where that input is there)
ALIASING_OPS = {"RESHAPE": 0, "PATCH_PASTE": 1}
EXHAUSTIVE_GROUPS = 7  # up to this many groups, every placement order is tried
SEARCH_ITERATIONS = 2000  # placement orders the local search tries beyond the fixed ones
SEARCH_SEED = 0  # the local search's random moves: fixed, so that a graph always gets the same plan


@dataclass
class _Member:
    owner: tuple[str, int]  # ("tensor", alias root) or ("scratch", op position)
    rel: int  # offset inside its group
    size: int
    first: int
    last: int


@dataclass
class _Group:
    """Buffers tied together (an output over its input): placed as one block. Its members do not
    change once it is made."""
    members: list[_Member]

    @cached_property
    def low(self) -> int:
        return min(m.rel for m in self.members)

    @cached_property
    def span(self) -> int:
        return max(m.rel + m.size for m in self.members) - self.low

    @cached_property
    def first(self) -> int:
        return min(m.first for m in self.members)

    @cached_property
    def last(self) -> int:
        return max(m.last for m in self.members)


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _alias_roots(graph: Graph) -> dict[int, int]:
    """tensor -> the tensor whose bytes it shares (RESHAPE and PATCH_PASTE outputs)."""
    root: dict[int, int] = {}
    for op in graph.ops:
        shared = ALIASING_OPS.get(op.kind)
        if shared is not None and shared < len(op.inputs) and graph.tensors[op.inputs[shared]].data is None:
            source = op.inputs[shared]
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
    search_iterations: int = SEARCH_ITERATIONS,
) -> MemoryPlan:
    """Plan the arena. `scratch_bytes` are the op kernels' own needs (engine.codegen.kernel_sets.kernel_scratch).
    `overlap=True` lets outputs reuse dying inputs where engine.overlap allows it (the generated
    code must then use the overlap kernels); the plan without overlaps is computed too and the
    smaller arena kept. `search="greedy-by-size"` places largest first only (the classic
    baseline); "full" searches placement orders (and, where an op may write over either of two
    inputs, which one), trying at most `search_iterations` orders beyond the fixed ones. The
    search is seeded: the same graph always gives the same plan."""
    if search not in ("full", "greedy-by-size"):
        raise ValueError(f"search {search!r}: 'full' or 'greedy-by-size'")
    if search_iterations < 0:
        raise ValueError(f"search_iterations {search_iterations}: must be 0 or more")
    scratch = scratch_bytes or {}
    plain = _layout(graph, scratch, alignment, overlap=False)
    if search == "greedy-by-size":
        layouts = [plain, _layout(graph, scratch, alignment, overlap=True)] if overlap else [plain]
        return min((_plan(graph, layout, _greedy_by_size(layout)) for layout in layouts), key=lambda p: p.arena_bytes)
    best: MemoryPlan | None = None
    if overlap:
        tied, placed = _choose_overlaps(graph, scratch, alignment)
        if tied.overlaps:
            best = _plan(graph, tied, _search(tied, search_iterations, placed))
    if best is None or plain.floor <= best.arena_bytes:  # else no plan without overlaps can be as small
        without = _plan(graph, plain, _search(plain, search_iterations))
        if best is None or without.arena_bytes <= best.arena_bytes:  # kept on a tie
            best = without
    return best


@dataclass
class _Layout:
    """The buffers to place for one choice of overlaps: tied buffers form rigid groups."""
    members: dict[tuple[str, int], _Member]
    groups: list[_Group]  # each group once, in a fixed order
    group_of: dict[tuple[str, int], _Group]
    overlaps: dict[int, OverlapRule]
    scratch: dict[int, int]  # op position -> aligned scratch bytes
    steps: tuple[StepMemory, ...]
    alignment: int

    @property
    def floor(self) -> int:
        return max((s.live_bytes for s in self.steps), default=0)

    @cached_property
    def conflicts(self) -> dict[int, list[_Conflict]]:
        """id(group) -> every pair of its member and another group's member alive at the same
        step: what first fit must keep apart."""
        found: dict[int, list[_Conflict]] = {id(g): [] for g in self.groups}
        owned = sorted(((m, g) for g in self.groups for m in g.members), key=lambda mg: mg[0].first)
        for i, (m, g) in enumerate(owned):
            for p, h in owned[i + 1 :]:
                if p.first > m.last:
                    break
                if g is not h:
                    found[id(g)].append(_Conflict(m, id(h), p))
                    found[id(h)].append(_Conflict(p, id(g), m))
        return found


@dataclass(frozen=True)
class _Conflict:
    member: _Member
    other_group: int  # id of the other group
    other: _Member


@dataclass(frozen=True)
class _Placed:
    """One placement of a layout's groups."""
    order: tuple[_Group, ...]
    bases: dict[int, int]  # id(group) -> base offset
    arena: int
    name: str  # how the order was found


def _layout(
    graph: Graph,
    scratch_bytes: Mapping[int, int],
    alignment: int,
    overlap: bool,
    preferred: Mapping[int, int] | None = None,
) -> _Layout:
    """Group the buffers. `preferred`: op position -> index of the overlap rule to try first
    (the others follow in their order); the first rule that is safe is taken."""
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
    overlaps: dict[int, OverlapRule] = {}
    if overlap:
        for position, rules in sorted(overlap_candidates(graph).items()):
            first_choice = (preferred or {}).get(position, 0)
            for rule in [rules[first_choice], *rules[:first_choice], *rules[first_choice + 1 :]]:
                if _try_overlap(rule, position, roots, members, groups, graph):
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
    return _Layout(members, unique, groups, overlaps, scratch, _step_table(graph, unique, scratch), alignment)


def _plan(graph: Graph, layout: _Layout, placed: _Placed) -> MemoryPlan:
    lifetimes = activation_lifetimes(graph)
    roots = _alias_roots(graph)
    placements = {}
    for tensor, (first, last) in lifetimes.items():
        owner = ("tensor", roots.get(tensor, tensor))
        offset = placed.bases[id(layout.group_of[owner])] + layout.members[owner].rel
        placements[tensor] = Placement(tensor, offset, graph.tensors[tensor].nbytes, first, last)
    scratch_offsets = {p: placed.bases[id(layout.group_of[("scratch", p)])] for p in layout.scratch}
    return MemoryPlan(
        arena_bytes=placed.arena,
        placements=placements,
        scratch_offsets=scratch_offsets,
        scratch_sizes=layout.scratch,
        steps=layout.steps,
        alignment=layout.alignment,
        alias_of=roots,
        overlaps=layout.overlaps,
        search=placed.name,
    )


def _try_overlap(
    rule: OverlapRule,
    position: int,
    roots: dict[int, int],
    members: dict[tuple[str, int], _Member],
    groups: dict[tuple[str, int], _Group],
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
    return True


# ---- placement ----
def _first_fit(group: _Group, conflicts: list[_Conflict], bases: dict[int, int], alignment: int) -> int:
    """The lowest base offset at which no member of `group` collides with a member of a placed
    group alive at the same time."""
    taken = [(c.member, bases[c.other_group] + c.other.rel, c.other.size) for c in conflicts if c.other_group in bases]
    floor = -group.low
    candidates = sorted({floor} | {_align(start + size - m.rel, alignment) for m, start, size in taken})
    for base in candidates:
        if base < floor:
            continue
        if all(base + m.rel >= start + size or start >= base + m.rel + m.size for m, start, size in taken):
            return base
    raise AssertionError("first fit found no base offset")  # the last candidate always fits


def _place(order: Iterable[_Group], layout: _Layout, name: str) -> _Placed:
    """Each group in turn at its first fit."""
    bases: dict[int, int] = {}
    top = 0
    for group in order:
        base = _first_fit(group, layout.conflicts[id(group)], bases, layout.alignment)
        bases[id(group)] = base
        top = max(top, base + group.low + group.span)
    return _Placed(tuple(order), bases, top, name)


_ORDERS: dict[str, Callable[[_Group], tuple]] = {
    "largest first": lambda g: (-g.span, g.first),
    "earliest first": lambda g: (g.first, -g.span),
    "longest-lived first": lambda g: (-(g.last - g.first), -g.span),
    "most byte-steps first": lambda g: (-g.span * (g.last - g.first + 1), g.first),
}


def _greedy_by_size(layout: _Layout) -> _Placed:
    return _place(sorted(layout.groups, key=_ORDERS["largest first"]), layout, "largest first")


def _peak_step_first(layout: _Layout) -> list[_Group]:
    """The groups alive at the step with the most live bytes, largest first, then the others
    largest first."""
    peak = max(layout.steps, key=lambda s: s.live_bytes).step if layout.steps else 0

    def key(group: _Group) -> tuple:
        alive_at_peak = any(m.first <= peak <= m.last for m in group.members)
        return (not alive_at_peak, *_ORDERS["largest first"](group))

    return sorted(layout.groups, key=key)


def _fixed_orders(layout: _Layout) -> _Placed:
    """The best of the fixed orders (the first of them on a tie); stops at the lower bound."""
    best: _Placed | None = None
    orders = {name: sorted(layout.groups, key=key) for name, key in _ORDERS.items()}
    orders["peak step first"] = _peak_step_first(layout)
    for name, order in orders.items():
        placed = _place(order, layout, name)
        if best is None or placed.arena < best.arena:
            best = placed
        if best.arena <= layout.floor:
            break
    assert best is not None
    return best


def _search(layout: _Layout, iterations: int, start: _Placed | None = None) -> _Placed:
    """The best placement found: the fixed orders (`start`, where already placed), then every
    order on small graphs, or a seeded local search of at most `iterations` orders; stops once the
    arena reaches the lower bound."""
    best = start or _fixed_orders(layout)
    if best.arena <= layout.floor:
        return best
    if len(layout.groups) <= EXHAUSTIVE_GROUPS:
        for order in itertools.permutations(layout.groups):
            placed = _place(order, layout, "exhaustive")
            if placed.arena < best.arena:
                best = placed
                if best.arena <= layout.floor:
                    break
        return best
    return _local_search(best, layout, iterations)


def _local_search(start: _Placed, layout: _Layout, iterations: int) -> _Placed:
    """Hill climbing over placement orders from `start`: each step moves one group to another
    place in the order (half of the time a group that reaches the top of the arena, moved
    earlier) and keeps the new order when its arena is no larger. Seeded, so deterministic."""
    rng = random.Random(SEARCH_SEED)
    best = current = start
    for iteration in range(1, iterations + 1):
        order = list(current.order)
        top = [i for i, g in enumerate(order) if current.bases[id(g)] + g.low + g.span == current.arena]
        source = rng.choice(top)
        if source > 0 and rng.random() < 0.5:
            target = rng.randrange(source)
        else:
            source, target = rng.randrange(len(order)), rng.randrange(len(order))
        order.insert(target, order.pop(source))
        placed = _place(order, layout, f"local search ({iteration} orders)")
        if placed.arena <= current.arena:
            current = placed
            if placed.arena < best.arena:
                best = placed
                if best.arena <= layout.floor:
                    break
    return best


def _choose_overlaps(graph: Graph, scratch_bytes: Mapping[int, int], alignment: int) -> tuple[_Layout, _Placed]:
    """Where an op may write over either of two inputs (an element-wise ADD), the input it takes
    decides which buffers become one rigid group. Starting from the first safe rule everywhere,
    try the other rules op by op and keep a change when the fixed orders then place a smaller
    arena: one layout per alternative rule at most. Returns the layout and its best fixed order."""
    candidates = {p: rules for p, rules in sorted(overlap_candidates(graph).items()) if len(rules) > 1}
    best_layout = _layout(graph, scratch_bytes, alignment, overlap=True)
    best = _fixed_orders(best_layout)
    preferred: dict[int, int] = {}
    for position, rules in candidates.items():
        for choice in range(1, len(rules)):
            if best.arena <= best_layout.floor:
                return best_layout, best
            trial = {**preferred, position: choice}
            layout = _layout(graph, scratch_bytes, alignment, overlap=True, preferred=trial)
            placed = _fixed_orders(layout)
            if placed.arena < best.arena:
                best_layout, best, preferred = layout, placed, trial
    return best_layout, best


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
