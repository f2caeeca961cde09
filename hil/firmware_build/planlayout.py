"""A compiled model's memory plan in a compact, JSON-ready form: the tensors with their arena
offsets and the tensors live at each step. ModelRun stores it in the `extra` of its
`arena_planned` row; the report reads it back to draw the bytes live at each layer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.compiler import CompiledModel

LAYOUT_VERSION = 1
NAME_CHARS = 48  # tensor names are cut to this many characters (the start and the end kept)


@dataclass(frozen=True)
class PlannedTensor:
    id: int
    name: str
    bytes: int
    offset: int  # in the arena


@dataclass(frozen=True)
class PlannedStep:
    op_kind: str
    op_index: int
    live: tuple[int, ...]  # tensor ids
    scratch_bytes: int


@dataclass(frozen=True)
class Segment:
    """What one live tensor adds to a step's bytes: its own bytes less those it shares with
    tensors already counted (an output written over its dying input)."""

    tensor: PlannedTensor
    bytes: int

    @property
    def shared_bytes(self) -> int:
        return self.tensor.bytes - self.bytes


@dataclass(frozen=True)
class PlanLayout:
    sram_bytes: int  # the board's
    arena_bytes: int
    lower_bound: int  # the most bytes live at one step
    tensors: dict[int, PlannedTensor]
    steps: tuple[PlannedStep, ...]

    @property
    def floor(self) -> PlannedTensor:
        """The largest single tensor: no plan needs fewer bytes than this."""
        return max(self.tensors.values(), key=lambda t: (t.bytes, -t.id))

    def segments(self, step: PlannedStep) -> list[Segment]:
        """The step's live tensors, oldest first, each with the bytes it adds."""
        ordered = [self.tensors[t] for t in step.live if t in self.tensors]
        ordered.sort(key=lambda t: (self._first_step(t.id), t.id))
        counted: list[tuple[int, int]] = []
        segments = []
        for tensor in ordered:
            start, stop = tensor.offset, tensor.offset + tensor.bytes
            own = stop - start - sum(max(0, min(stop, b) - max(start, a)) for a, b in _union(counted))
            segments.append(Segment(tensor, own))
            counted.append((start, stop))
        return segments

    def live_bytes(self, step: PlannedStep) -> int:
        return sum(s.bytes for s in self.segments(step)) + step.scratch_bytes

    def stage_bytes(self, split: int, excluded: set[int]) -> int:
        """The most bytes of activations live at one step of the first `split` source ops, the
        tensors `excluded` (the model's input) and kernel scratch left out."""
        most = 0
        for step in self.steps:
            if step.op_index < split:
                spans = [(t.offset, t.offset + t.bytes) for t in (self.tensors[i] for i in step.live if i in self.tensors)
                         if t.id not in excluded]
                most = max(most, sum(stop - start for start, stop in _union(spans)))
        return most

    def _first_step(self, tensor: int) -> int:
        return next((i for i, s in enumerate(self.steps) if tensor in s.live), len(self.steps))

    # -- JSON

    def to_json(self) -> dict[str, Any]:
        """Compact: tensors as [id, name, bytes, offset], steps as [op kind, op index, live ids,
        scratch bytes]."""
        return {
            "v": LAYOUT_VERSION,
            "sram": self.sram_bytes,
            "arena": self.arena_bytes,
            "bound": self.lower_bound,
            "floor": [self.floor.id, self.floor.bytes] if self.tensors else None,
            "tensors": [[t.id, t.name, t.bytes, t.offset] for t in self.tensors.values()],
            "steps": [[s.op_kind, s.op_index, list(s.live), s.scratch_bytes] for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanLayout:
        """The layout stored by `to_json`; ValueError when `data` is not one."""
        try:
            if data.get("v") != LAYOUT_VERSION:
                raise ValueError(f"plan layout version {data.get('v')!r}, expected {LAYOUT_VERSION}")
            tensors = {int(i): PlannedTensor(int(i), str(name), int(size), int(offset))
                       for i, name, size, offset in data["tensors"]}
            steps = tuple(PlannedStep(str(kind), int(index), tuple(int(t) for t in live), int(scratch))
                          for kind, index, live, scratch in data["steps"])
            return cls(int(data["sram"]), int(data["arena"]), int(data["bound"]), tensors, steps)
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a stored plan layout ({type(error).__name__}: {error})") from None


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def short_name(name: str, limit: int = NAME_CHARS) -> str:
    if len(name) <= limit:
        return name
    half = (limit - 1) // 2
    return name[:half] + "…" + name[-(limit - 1 - half):]


def plan_layout(compiled: CompiledModel, sram_bytes: int) -> PlanLayout:
    """The layout of `compiled`'s plan, for a board with `sram_bytes` of SRAM."""
    plan, graph = compiled.plan, compiled.graph
    live = sorted({t for s in plan.steps for t in s.live_tensors})
    tensors = {t: PlannedTensor(t, short_name(graph.tensors[t].name or f"t{t}"), graph.tensors[t].nbytes,
                                plan.placements[t].offset)
               for t in live if t in plan.placements}
    steps = tuple(PlannedStep(s.op_kind, s.op_index, s.live_tensors, s.scratch_bytes) for s in plan.steps)
    return PlanLayout(sram_bytes, plan.arena_bytes, plan.lower_bound, tensors, steps)
