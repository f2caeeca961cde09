"""What holds the top of a planned arena up: the buffer that ends highest, and the chain of buffers
below it, each lying directly on the next while both are alive, down to offset 0.

The lower bound counts the bytes live at one step; the arena can end above it because buffers
alive at different steps push each other up. A chain link "A lies on B at steps i-j" means A
starts where B ends (give or take alignment padding) and both are alive at steps i to j, so A
cannot move down while B stays. Buffers tied together (an output written over its input, a
RESHAPE sharing its input's bytes) move as one block, so a link may go from one buffer of a
block to another: the block is held up by the lower one's contact, at its own steps."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from engine.memory_plan import MemoryPlan


@dataclass(frozen=True)
class Buffer:
    kind: str  # "tensor" or "scratch"
    index: int  # the tensor's index, or the op position whose scratch it is
    offset: int
    end: int  # offset + its bytes (before alignment padding)
    first_step: int
    last_step: int

    def alive_with(self, other: Buffer) -> tuple[int, int] | None:
        """The steps both are alive, or None."""
        first, last = max(self.first_step, other.first_step), min(self.last_step, other.last_step)
        return (first, last) if first <= last else None

    def describe(self, names: Mapping[int, str] | None = None) -> str:
        what = f"tensor {self.index}" if self.kind == "tensor" else f"the scratch of step {self.index}"
        if self.kind == "tensor" and names and self.index in names:
            what += f" '{names[self.index]}'"
        return f"{what} ({self.offset:,}-{self.end:,} B, {_steps(self.first_step, self.last_step)})"


@dataclass(frozen=True)
class Contact:
    """`upper` lies directly on `lower` while both are alive at `steps` (first, last)."""
    upper: Buffer
    lower: Buffer
    steps: tuple[int, int]


@dataclass(frozen=True)
class ArenaTop:
    arena_bytes: int
    lower_bound: int
    bound_step: int  # the first step whose live bytes are the lower bound
    top: Buffer  # the buffer that ends highest
    chain: tuple[Contact, ...]  # from the top down
    on_floor: bool  # the chain ends at a block that starts at offset 0

    @property
    def above_bound(self) -> int:
        return self.arena_bytes - self.lower_bound

    @property
    def buffers(self) -> tuple[Buffer, ...]:
        """The buffers the explanation names, from the top down."""
        named = [self.top]
        for contact in self.chain:
            named += [b for b in (contact.upper, contact.lower) if b != named[-1]]
        return tuple(named)

    def lines(self, names: Mapping[int, str] | None = None) -> list[str]:
        """The explanation as text; `names`: tensor index -> name, where known."""
        if self.above_bound:
            head = (f"the arena ({self.arena_bytes:,} B) is {self.above_bound:,} B above the lower bound "
                    f"({self.lower_bound:,} B live at step {self.bound_step}); what holds its top up:")
        else:
            head = f"the arena is at the lower bound ({self.lower_bound:,} B live at step {self.bound_step}); its top:"
        lines = [head, f"  {self.top.describe(names)} ends at the top"]
        current = self.top
        for contact in self.chain:
            if contact.upper != current:
                lines.append("  in one block with it (outputs written over inputs, RESHAPEs): "
                             + contact.upper.describe(names))
            lines.append(f"  lies, at {_steps(*contact.steps)}, on {contact.lower.describe(names)}")
            current = contact.lower
        if self.on_floor and current.offset == 0:
            lines.append("  which starts at offset 0")
        elif self.on_floor:
            lines.append("  which is in one block with a buffer at offset 0")
        else:
            lines.append("  which lies on nothing: its block could move lower")
        return lines


def explain_top(plan: MemoryPlan) -> ArenaTop:
    """The chain of contacts from the buffer that ends highest down to offset 0 (the fewest
    blocks; the first found in a fixed order)."""
    buffers = [Buffer("tensor", t, p.offset, p.offset + p.size, p.first_step, p.last_step)
               for t, p in sorted(plan.placements.items())]
    buffers += [Buffer("scratch", s, o, o + plan.scratch_sizes[s], s, s)
                for s, o in sorted(plan.scratch_offsets.items())]
    if not buffers:
        raise ValueError("the plan places no buffers")
    block = _blocks(plan, buffers)
    members: dict[int, list[Buffer]] = {}
    for b in buffers:
        members.setdefault(block[b], []).append(b)

    top = max(buffers, key=lambda b: (_align(b.end, plan.alignment), -b.first_step))
    start = block[top]
    came_from: dict[int, Contact | None] = {start: None}
    queue = deque([start])
    floor_block = None
    while queue:
        current = queue.popleft()
        if min(b.offset for b in members[current]) == 0:
            floor_block = current
            break
        for contact in _contacts(members[current], buffers, block, plan.alignment):
            below = block[contact.lower]
            if below not in came_from:
                came_from[below] = contact
                queue.append(below)
    end = floor_block if floor_block is not None else current
    chain: list[Contact] = []
    while (link := came_from[end]) is not None:
        chain.append(link)
        end = block[link.upper]
    bound_step = max(plan.steps, key=lambda s: s.live_bytes).step if plan.steps else 0
    return ArenaTop(plan.arena_bytes, plan.lower_bound, bound_step, top, tuple(reversed(chain)),
                    on_floor=floor_block is not None)


def _contacts(upper_block: list[Buffer], buffers: list[Buffer], block: dict[Buffer, int],
              alignment: int) -> list[Contact]:
    """Each buffer of another block that one of `upper_block` lies directly on, at the same time."""
    found = []
    for upper in sorted(upper_block, key=lambda b: (b.first_step, b.kind, b.index)):
        for lower in buffers:
            steps = upper.alive_with(lower)
            if steps and block[lower] != block[upper] and lower.end <= upper.offset < lower.end + alignment:
                found.append(Contact(upper, lower, steps))
    return found


def _blocks(plan: MemoryPlan, buffers: list[Buffer]) -> dict[Buffer, int]:
    """Buffer -> the id of the block it moves with (tied by RESHAPE or by an overlap)."""
    parent: dict[int, int] = {}

    def root(tensor: int) -> int:
        while parent.get(tensor, tensor) != tensor:
            tensor = parent[tensor]
        return tensor

    ties = list(plan.alias_of.items()) + [(rule.output, rule.input) for rule in plan.overlaps.values()]
    for a, b in ties:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {b: root(b.index) if b.kind == "tensor" else -1 - b.index for b in buffers}  # scratch: a block alone


def _steps(first: int, last: int) -> str:
    return f"step {first}" if first == last else f"steps {first}-{last}"


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment
