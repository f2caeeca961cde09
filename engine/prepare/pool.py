"""AVERAGE_POOL_2D, MAX_POOL_2D and MEAN."""
from __future__ import annotations

from dataclasses import dataclass

from engine.ir import Graph, Op
from engine.prepare.common import output_range, scale_of, zero_point_of
from engine.prepare.window import Window, prepare_window
from engine.quant import quantize_multiplier


@dataclass(frozen=True)
class PoolParams:
    window: Window
    filter_h: int
    filter_w: int
    output_min: int
    output_max: int


def prepare_pool(graph: Graph, op: Op, where: str) -> PoolParams:
    """A pool's window and clamp (input and output share scale and zero point in TFLM's int8 pools)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    fh, fw = int(op.attrs["filter_h"]), int(op.attrs["filter_w"])
    window = prepare_window(op.attrs, (x.shape[1], x.shape[2]), (fh, fw), (y.shape[1], y.shape[2]), where)
    lo, hi = output_range(op, y, where)
    return PoolParams(window, fh, fw, lo, hi)


@dataclass(frozen=True)
class MeanParams:
    input_zero_point: int
    output_zero_point: int
    multiplier: int  # input/output scale with 1/count folded in
    shift: int


def prepare_mean(graph: Graph, op: Op, count: int, where: str) -> MeanParams:
    """A MEAN of `count` values per output: TFLM's QuantizedMeanOrSum folds 1/count into the
    multiplier as far as precision allows."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    multiplier, shift = quantize_multiplier(scale_of(x, where) / scale_of(y, where))
    fold = min(count.bit_length() - 1, 32, 31 + shift)
    return MeanParams(zero_point_of(x), zero_point_of(y), (multiplier << fold) // count, shift - fold)
