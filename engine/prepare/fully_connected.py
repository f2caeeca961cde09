"""FULLY_CONNECTED (TFLM's FullyConnectedParamsQuantized)."""
from __future__ import annotations

from dataclasses import dataclass

from engine.ir import Graph, Op
from engine.prepare.common import output_range, scale_of, zero_point_of
from engine.prepare.conv import channel_multipliers


@dataclass(frozen=True)
class FullyConnectedParams:
    multipliers: tuple[int, ...]  # per unit (one value repeated for per-tensor weights)
    shifts: tuple[int, ...]
    input_offset: int  # -input zero point
    filter_offset: int  # -weight zero point for per-tensor weights; 0 for per-channel (symmetric)
    output_offset: int
    output_min: int
    output_max: int


def prepare_fully_connected(graph: Graph, op: Op, units: int, where: str) -> FullyConnectedParams:
    """The constants of a FULLY_CONNECTED with `units` output rows."""
    x, w, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    mults, shifts = channel_multipliers(scale_of(x, where), w, scale_of(y, where), units, where)
    filter_offset = -zero_point_of(w) if len(w.scale) <= 1 else 0
    lo, hi = output_range(op, y, where)
    return FullyConnectedParams(mults, shifts, -zero_point_of(x), filter_offset, zero_point_of(y), lo, hi)
