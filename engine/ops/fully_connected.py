"""FULLY_CONNECTED: the input flattened to [batches, depth] times the weights [units, depth].
Its attributes, checks, TFLM's Prepare step (FullyConnectedParamsQuantized) and numpy reference."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.ops.checks import shape_with_rank
from engine.ops.options import read_activation, write_activation
from engine.ops.quant_params import output_range, scale_of, zero_point_of
from engine.ops.spec import OpSpec, Values, op_where
from engine.ops.weighted import (
    WEIGHTED_ARITY,
    WEIGHTED_INPUT_TYPES,
    bias_values,
    channel_multipliers,
    check_channels,
    check_weights,
    requantized,
)


# ---- attributes ----
def read_attributes(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    if options.weightsFormat != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
        raise UnsupportedOpError(f"{where}: shuffled weights are not supported")
    return {"activation": read_activation(options, where), "keep_num_dims": bool(options.keepNumDims)}


def write_options(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = schema.FullyConnectedOptionsT()
    options.fusedActivationFunction = write_activation(op, where)
    options.keepNumDims = bool(op.attrs.get("keep_num_dims", False))
    return schema.BuiltinOptions.FullyConnectedOptions, options


# ---- checks ----
def check(graph: Graph, op: Op, where: str) -> None:
    """Weights [units, depth], one zero point allowed (TFLM's filter offset); an input of whole
    rows of depth; an output of a row of units per input row."""
    check_weights(graph, op, where, channel_axis=0, filter_offset=True)
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    units, depth = shape_with_rank(graph, op.inputs[1], 2, "weights", where)
    if x.elements % depth:
        raise ModelFormatError(f"{where}: input of {x.elements} values is not a whole number of rows of {depth}")
    if y.elements != x.elements // depth * units:
        raise ModelFormatError(f"{where}: output {tuple(y.shape)} does not hold {x.elements // depth} x {units} values")
    check_channels(graph, op, units, where)


# ---- prepare ----
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


# ---- reference ----
def reference(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """TFLM computes the multiplier as a convolution's (input * weight / output in double), per
    tensor or per channel; the sums go through a float64 matrix product (exact below 2^53)."""
    weights = graph.tensors[op.inputs[1]]
    w = values[op.inputs[1]].astype(np.float64) - zero_point_of(weights)  # [O, D]
    channels, depth = w.shape
    p = prepare_fully_connected(graph, op, channels, op_where(graph, op))
    x = (values[op.inputs[0]].astype(np.float64) + p.input_offset).reshape(-1, depth)
    acc = (x @ w.T).astype(np.int64) + bias_values(op, values, channels)
    return requantized(acc, p.multipliers, p.shifts, p.output_offset, p.output_min, p.output_max)


FULLY_CONNECTED = OpSpec(
    kind="FULLY_CONNECTED",
    builtin_code=schema.BuiltinOperator.FULLY_CONNECTED,
    options_type=schema.BuiltinOptions.FullyConnectedOptions,
    options_optional=False,
    version=4,
    arity=WEIGHTED_ARITY,
    read_attributes=read_attributes,
    write_options=write_options,
    check=check,
    reference=reference,
    input_types=WEIGHTED_INPUT_TYPES,
)
