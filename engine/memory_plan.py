"""A memory plan as data: where each activation tensor and each op's scratch lies in the arena,
the steps each is alive, the overlaps chosen, and a check that no two live buffers share bytes.
engine.planner makes one; the code generator and the reports read it."""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.arenatop import ArenaTop, explain_top
from engine.overlap import OverlapRule


@dataclass(frozen=True)
class Placement:
    tensor: int
    offset: int
    size: int
    first_step: int
    last_step: int


@dataclass(frozen=True)
class StepMemory:
    """What is alive during one step (one op) and the bytes it covers."""

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
    """Where every buffer lies in the one arena, and what is alive at each step."""

    arena_bytes: int
    placements: dict[int, Placement]  # every activation tensor, by tensor index
    scratch_offsets: dict[int, int]  # op position -> offset of its scratch buffer
    scratch_sizes: dict[int, int]
    steps: tuple[StepMemory, ...]
    alignment: int
    alias_of: dict[int, int]  # RESHAPE or PATCH_PASTE output -> the tensor whose bytes it shares
    overlaps: dict[int, OverlapRule] = field(default_factory=dict)  # op position -> overlap used
    search: str = ""  # which placement order won

    @property
    def lower_bound(self) -> int:
        """The most bytes that must be live at one step, given the overlaps chosen: no
        placement does better."""
        return max((s.live_bytes for s in self.steps), default=0)

    def offset(self, tensor: int) -> int:
        return self.placements[tensor].offset

    def top_of_arena(self) -> ArenaTop:
        """What holds the top of the arena where it is (engine.arenatop): the buffer that ends
        highest and the chain of buffers below it, each lying on the next while both are alive,
        down to offset 0. Where the arena is above the lower bound, these are the lifetimes that
        force it there."""
        return explain_top(self)


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
