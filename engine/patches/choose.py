"""Choosing a patch plan (`--patches auto|off|PxQ@N`) for a model and a memory budget.

The candidates are every split point (engine.patches.rewrite.split_points) with square grids of
2 to 8 patches a side. Their extra compute is estimated in multiply-accumulates: the halo
MACs, plus PATCH_OP_COST for every op a patch runs (what MACs do not count), over the model's
MACs. Their arena is the planner's. With a budget (bytes of arena), the plan with the least extra
compute that fits is kept: the whole-tensor plan when it fits. Without one, the plan with the
smallest arena among those with at most AUTO_MAX_EXTRA extra compute (the fewest patches among
those within NEAR_SMALLEST of it) is taken if it lowers the arena by AUTO_MIN_SAVING or more, or
if the whole-tensor plan does not fit the room the board has (then, failing that, the least extra
compute that fits the room)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from engine.codegen.kernel_sets import kernel_scratch
from engine.errors import DoesNotFitError, UnsupportedOpError
from engine.ir import Graph
from engine.patches.regions import graph_macs
from engine.patches.rewrite import PatchedGraph, PatchGrid, patch_graph, split_points
from engine.planner import plan_memory

AUTO_MAX_EXTRA = 0.15
# What one op of one patch costs beyond its MACs (its call, the per-patch setup of its weights and
# padding, the tails of small regions, the crops and pastes), in MACs' worth of the model's own
# instructions per MAC. Measured under QEMU on qemu-f746, the patches sharing their functions:
# micro_speech at 3x3@2, 18 patch ops, 87,320 instructions more at 1.74 per MAC: 2,793 (at 6x6@2:
# 1,629); vww_96_int8 at 6x6@4, 180 patch ops, 1,107,120 more at 1.23 per MAC, 460,640 of them
# halo MACs: 2,433. Rounded up from the largest.
PATCH_OP_COST = 3_000
AUTO_MIN_SAVING = 0.10
GRID_SIDES = (2, 3, 4, 5, 6, 7, 8)
NEAR_SMALLEST = 0.05
SCREEN_ITERATIONS = 100  # placement orders tried per candidate while choosing (the chosen one gets the full search)
PATCH_MODES = ("auto", "off")


def parse_patches(text: str) -> str | PatchGrid:
    """`auto`, `off` or a grid `PxQ@N`; ValueError naming the forms otherwise."""
    if text in PATCH_MODES:
        return text
    try:
        return PatchGrid.parse(text)
    except ValueError as error:
        raise ValueError(f"{error}; or auto, or off") from None


@dataclass(frozen=True)
class PatchChoice:
    grid: PatchGrid | None  # None: whole tensors
    arena_bytes: int  # the chosen plan's arena, as screened
    whole_arena_bytes: int
    halo_macs: int
    model_macs: int
    candidates: int  # plans compared
    reason: str
    patch_ops: int = 0  # ops the patches run, all together

    @property
    def extra_compute(self) -> float:
        """The halo's share of the model's MACs."""
        return self.halo_macs / self.model_macs if self.model_macs else 0.0

    @property
    def estimated_extra(self) -> float:
        """The halo and the patches' fixed cost (PATCH_OP_COST), over the model's MACs."""
        return extra_macs(self.halo_macs, self.patch_ops) / self.model_macs if self.model_macs else 0.0

    def to_json(self) -> dict:
        return {"grid": str(self.grid) if self.grid else "off", "arena_bytes": self.arena_bytes,
                "whole_arena_bytes": self.whole_arena_bytes, "halo_macs": self.halo_macs, "model_macs": self.model_macs,
                "extra_compute": round(self.extra_compute, 4), "patch_ops": self.patch_ops,
                "estimated_extra": round(self.estimated_extra, 4), "candidates": self.candidates, "reason": self.reason}


def extra_macs(halo_macs: int, patch_ops: int) -> int:
    """A patch plan's estimated extra compute, in MACs: its halo and its patches' fixed cost."""
    return halo_macs + patch_ops * PATCH_OP_COST


@dataclass(frozen=True)
class _Candidate:
    patched: PatchedGraph
    floor: int  # bytes no placement can go below: the input and the stage output, or a later step's

    @property
    def extra(self) -> int:
        return extra_macs(self.patched.halo_macs, self.patched.patch_ops)


def screened_arena(graph: Graph, kernels: str, iterations: int = SCREEN_ITERATIONS) -> int:
    """The arena of a shorter placement search than the build's (which finds the same or less)."""
    return plan_memory(graph, kernel_scratch(graph, kernels), overlap=True, search_iterations=iterations).arena_bytes


def _bounds(graph: Graph, kernels: str) -> tuple[int, int]:
    """(lower bound, arena) of one quick placement (largest first): no plan is below the first,
    the full search is at or below the second."""
    plan = plan_memory(graph, kernel_scratch(graph, kernels), overlap=True, search="greedy-by-size")
    return plan.lower_bound, plan.arena_bytes


def candidates(graph: Graph) -> list[_Candidate]:
    """Every split point and square grid whose patches all read part of the input (PAD folded graph)."""
    found = []
    whole_steps = plan_memory(graph, kernel_scratch(graph, "portable"), overlap=True, search="greedy-by-size").steps
    for split in split_points(graph):
        for side in GRID_SIDES:
            try:
                patched = patch_graph(graph, PatchGrid(side, side, split))
            except UnsupportedOpError:
                break  # a finer grid of this stage fails too
            later = max((s.live_bytes for s in whole_steps[patched.stage_ops:]), default=0)
            ends = graph.tensors[graph.inputs[0]].nbytes + graph.tensors[patched.stage_output].nbytes
            found.append(_Candidate(patched, max(later, ends)))
    return found


def choose_patches(graph: Graph, kernels: str, *, budget: int | None, room: int, board: str = "the board",
                   progress: Callable[[str], None] | None = None) -> PatchChoice:
    """The plan for `graph` (PAD folded) under `budget` bytes of arena (None: none given), on
    `board`, with `room` bytes for the arena; DoesNotFitError, with the numbers, when none fits."""
    say = progress or (lambda line: None)
    whole = screened_arena(graph, kernels)
    total = graph_macs(graph)
    if budget is not None and whole <= budget:
        return PatchChoice(None, whole, whole, 0, total, 0, f"the whole-tensor plan fits: arena {whole:,} B of {budget:,} B")
    pool = candidates(graph)
    say(f"patches: {len(pool)} candidate plans (split points x grids) against the whole-tensor arena of {whole:,} B")

    def choice(c: _Candidate, arena: int, compared: int, why: str) -> PatchChoice:
        return PatchChoice(c.patched.grid, arena, whole, c.patched.halo_macs, total, compared, why, c.patched.patch_ops)

    def least_extra_fitting(limit: int, what: str) -> PatchChoice | None:
        compared = 0
        for c in sorted(pool, key=lambda c: (c.extra, c.floor)):
            if c.floor > limit:
                continue
            compared += 1
            bound, quick = _bounds(c.patched.graph, kernels)
            if bound > limit:
                continue
            arena = quick if quick <= limit else screened_arena(c.patched.graph, kernels)
            if arena <= limit:
                share = c.extra / total if total else 0.0
                return choice(c, arena, compared, f"the least extra compute (estimated {share:.1%}) whose arena "
                              f"{arena:,} B fits {what} of {limit:,} B (whole tensors: {whole:,} B)")
        return None

    if budget is not None:
        found = least_extra_fitting(budget, "the budget")
        if found is None:
            raise DoesNotFitError(f"model {graph.name}: no patch plan fits an arena of {budget:,} B (whole tensors: "
                                  f"{whole:,} B; {len(pool)} plans tried)")
        return found
    scored: list[tuple[int, _Candidate]] = []
    smallest, compared = whole, 0
    for c in sorted(pool, key=lambda c: c.floor):
        if total and c.extra / total > AUTO_MAX_EXTRA:
            continue
        if c.floor > smallest * (1 + NEAR_SMALLEST):
            break
        compared += 1
        arena = screened_arena(c.patched.graph, kernels)
        scored.append((arena, c))
        smallest = min(smallest, arena)
    # Of the plans within NEAR_SMALLEST of the smallest arena, the one with the fewest patches.
    near = [(a, c) for a, c in scored if a <= smallest * (1 + NEAR_SMALLEST)]
    best_arena, best = min(near, key=lambda ac: (ac[1].patched.grid.rows * ac[1].patched.grid.cols, ac[1].extra, ac[0]),
                           default=(whole, None))
    saving = 1 - best_arena / whole if whole else 0.0
    too_big = f"whole tensors do not fit {board} (arena {whole:,} B, room {room:,} B); " if whole > room else ""
    if best is not None and (saving >= AUTO_MIN_SAVING or whole > room) and best_arena <= room:
        return choice(best, best_arena, compared, f"{too_big}arena {best_arena:,} B against {whole:,} B with whole "
                      f"tensors ({saving:.0%} less) for an estimated {best.extra / total:.1%} more compute")
    if whole > room:
        found = least_extra_fitting(room, "the board's room (whole tensors do not fit it)")
        if found is not None:
            return found
        raise DoesNotFitError(f"model {graph.name} does not fit {board}: its arena needs {whole:,} B of SRAM with whole "
                              f"tensors, over the {room:,} B the board leaves for one, and none of {len(pool)} patch "
                              "plans fits")
    why = (f"no plan with at most {AUTO_MAX_EXTRA:.0%} more compute (estimated) lowers the arena of {whole:,} B by "
           f"{AUTO_MIN_SAVING:.0%} (best {best_arena:,} B)")
    return PatchChoice(None, whole, whole, 0, total, compared, why)
