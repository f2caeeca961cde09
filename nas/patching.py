"""Patch plans in the search (`--patches auto`): MCUNetV2's joint search in its simplest form. A
network whose whole-tensor arena exceeds the budget may run its first ops patch by patch
(engine.patches) when a plan fits with at most AUTO_MAX_EXTRA more compute, estimated as the
engine's `auto` does (the halo MACs and PATCH_OP_COST per patch op).

Of the plans that fit, the one with the least estimated extra compute is kept. Its arena is the
engine's planner's on the rewritten graph, as the build plans it, and the deployment builds that
grid, so the search's peak is the firmware's. Square grids of 2 to 8 a side are tried at every
split whose floor (the input and the stage output, or a later step of the whole-tensor plan)
fits the budget; finer grids of a split stop at the first over the cap.

A plan's latency, with the board's table: each patched layer's table latency times the share of
its MACs the patches compute again (the halo), plus the table's measured cost of one patch op
(`LatencyTable.patch_cost`: a base and a cost per op the patches run, `nas.measure.measure_patch_cost`). Its
flash: the board overhead's measured patch code (`nas.overhead.measure_patch_code`)."""
from __future__ import annotations

import heapq
import re
from dataclasses import dataclass

from engine.errors import UnsupportedOpError
from engine.fold import fold_pad
from engine.ir import Graph
from engine.patches.choose import AUTO_MAX_EXTRA, GRID_SIDES, extra_macs
from engine.patches.regions import graph_macs, macs
from engine.patches.rewrite import PatchedGraph, PatchGrid, patch_graph, stage_ends, stage_length
from engine.torch_models import TinyMobileNetConfig
from engine.memory_plan import MemoryPlan
from nas.footprint import memory_plan, shape_plan
from nas.layers import network_layers
from nas.lut import LatencyTable, LutError
from nas.shapegraph import network_graph

PATCH_OP_KINDS = ("PATCH_CROP", "PATCH_PASTE")
_LAYER_OF_TENSOR = re.compile(r"^(stem|blocks\.(\d+))[./]")


@dataclass(frozen=True)
class SearchPatchPlan:
    """The patch plan a network of the search runs with, and what it costs."""

    grid: PatchGrid
    arena_bytes: int  # the planner's arena of the patched graph, as the build plans it
    halo_macs: int
    patch_ops: int
    model_macs: int
    layer_halo: dict[int, float]  # layer of nas.layers.network_layers -> its MACs computed again, as a share

    @property
    def estimated_extra(self) -> float:
        return extra_macs(self.halo_macs, self.patch_ops) / self.model_macs if self.model_macs else 0.0


def plan_patches(config: TinyMobileNetConfig, limit: int, max_extra: float = AUTO_MAX_EXTRA,
                 shaped: tuple[Graph, MemoryPlan] | None = None) -> SearchPatchPlan | None:
    """The plan with the least estimated extra compute (at most `max_extra`) whose arena is at
    most `limit` bytes; None when none is. `shaped`: the network's nas.footprint.shape_plan, where
    the caller has it already."""
    graph, whole = shaped or shape_plan(config)
    total = graph_macs(graph)
    whole_steps = whole.steps
    input_bytes = graph.tensors[graph.inputs[0]].nbytes
    # Best first: each split's coarsest grid, then, as a grid does not fit, the next finer one of
    # its split (finer grids of a split recompute more), so the first that fits has the least extra.
    frontier: list[tuple[int, str, PatchedGraph, int]] = []
    for split, output in stage_ends(graph):
        later = max((s.live_bytes for s in whole_steps[stage_length(graph, split):]), default=0)
        if max(later, input_bytes + graph.tensors[output].nbytes) <= limit:
            _push(frontier, graph, split, 0, total * max_extra)
    while frontier:
        _, _, patched, side_index = heapq.heappop(frontier)
        plan = memory_plan(patched.graph)
        if plan.arena_bytes <= limit:
            return _plan(graph, patched, plan.arena_bytes, total)
        _push(frontier, graph, patched.grid.split, side_index + 1, total * max_extra)
    return None


def grid_plan(config: TinyMobileNetConfig, grid: PatchGrid) -> SearchPatchPlan:
    """A network's figures on a given grid (UnsupportedOpError when its ops cannot run so)."""
    graph = fold_pad(network_graph(config))
    patched = patch_graph(graph, grid)
    return _plan(graph, patched, memory_plan(patched.graph).arena_bytes, graph_macs(graph))


def _plan(graph: Graph, patched: PatchedGraph, arena: int, total: int) -> SearchPatchPlan:
    return SearchPatchPlan(patched.grid, arena, patched.halo_macs, patched.patch_ops, total, layer_halo(graph, patched))


def _push(frontier: list, graph: Graph, split: int, side_index: int, most: float) -> None:
    """Add the grid GRID_SIDES[side_index] of `split` to the frontier, if it exists and costs at most `most` MACs."""
    if side_index >= len(GRID_SIDES):
        return
    side = GRID_SIDES[side_index]
    try:
        patched = patch_graph(graph, PatchGrid(side, side, split))
    except UnsupportedOpError:
        return
    cost = extra_macs(patched.halo_macs, patched.patch_ops)
    if cost <= most:
        heapq.heappush(frontier, (cost, str(patched.grid), patched, side_index))


def layer_halo(graph: Graph, patched: PatchedGraph) -> dict[int, float]:
    """For each layer (nas.layers.network_layers' order) with ops in the patched stage of a
    network's graph, the MACs the patches compute beyond the stage's, as a share of the layer's."""
    stage = graph.ops[:patched.stage_ops]
    layer_of_op = {op.index: layer_index(graph.tensors[op.outputs[0]].name) for op in stage}
    extra = dict.fromkeys(layer_of_op.values(), 0)
    for op in patched.graph.ops:
        if op.kind not in PATCH_OP_KINDS and op.index in layer_of_op:
            extra[layer_of_op[op.index]] += macs(patched.graph, op)
    for op in stage:
        extra[layer_of_op[op.index]] -= macs(graph, op)
    layer_macs = dict.fromkeys(extra, 0)
    for op in graph.ops:
        layer = _layer_or_none(graph.tensors[op.outputs[0]].name)
        if layer in layer_macs:
            layer_macs[layer] += macs(graph, op)
    return {layer: extra[layer] / m for layer, m in layer_macs.items() if m}


def _layer_or_none(tensor_name: str) -> int | None:
    try:
        return layer_index(tensor_name)
    except ValueError:
        return None


def layer_index(tensor_name: str) -> int:
    """The layer (0: the stem, 1 + i: block i) that wrote a tensor of nas.shapegraph.network_graph."""
    found = _LAYER_OF_TENSOR.match(tensor_name)
    if found is None:
        raise ValueError(f"tensor {tensor_name!r} is not written by the stem or a block")
    return 0 if found.group(2) is None else 1 + int(found.group(2))


def patch_latency(table: LatencyTable, space: str, config: TinyMobileNetConfig, plan: SearchPatchPlan) -> float:
    """What the patches add to the predicted latency of a network of `space` (its name), in the
    table's unit: the halo's share of each patched layer's latency and the patches' own cost (a
    base and a cost per patch op) as measured on networks of that space."""
    cost = table.patch_cost.get(space)
    if cost is None:
        raise LutError(f"latency table for {table.board} has no patch op cost measured for space {space}: "
                       f"'tinylab lut build --board {table.board} --space SPACE --patches' measures it (the search "
                       "measures it for its width and resolution)")
    base, per_op = cost
    return halo_latency(table, config, plan) + base + plan.patch_ops * per_op


def halo_latency(table: LatencyTable, config: TinyMobileNetConfig, plan: SearchPatchPlan) -> float:
    """The table's latency of what the patches compute again: each layer's times its halo share."""
    layers = network_layers(config)
    halo = 0.0
    for layer, share in plan.layer_halo.items():
        try:
            halo += table.layers[layers[layer].key] * share
        except KeyError:
            raise LutError(f"latency table for {table.board} (key {table.key.short}) has no entry for layer "
                           f"{layers[layer].key}: build the table for a space that holds it") from None
    return halo
