"""QUANTIZE (float32 -> int8, or int8 -> int8: TFLM's AffineQuantize and Requantize) and
DEQUANTIZE (int8 -> float32): the only ops with float tensors. Their checks, Prepare step and
numpy reference; they have no attributes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.ir import DTYPES, Graph, Op
from engine.ops.checks import same_shape
from engine.ops.quant_params import scale_of, zero_point_of
from engine.ops.spec import Arity, OpSpec, Values, no_attributes, op_where
from engine.quant import INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier, quantize_multiplier


# ---- prepare ----
@dataclass(frozen=True)
class RequantizeParams:
    input_zero_point: int
    output_zero_point: int
    multiplier: int  # input/output scale
    shift: int


def prepare_requantize(graph: Graph, op: Op, where: str) -> RequantizeParams:
    """QUANTIZE from int8 to int8 (TFLM's Requantize)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    multiplier, shift = quantize_multiplier(scale_of(x, where) / scale_of(y, where))
    return RequantizeParams(zero_point_of(x), zero_point_of(y), multiplier, shift)


# ---- reference ----
def quantize(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """float32 -> int8 (AffineQuantize) or int8 -> int8 (Requantize, input/output scale in double)."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    x = values[op.inputs[0]]
    if inp.dtype == "float32":  # AffineQuantize: round(x / scale) in float32, half away from zero
        q = (x.astype(np.float32) / np.float32(out.scale[0])).astype(np.float64)
        rounded = np.sign(q) * np.floor(np.abs(q) + 0.5)
        result = np.clip(rounded, INT32_MIN, INT32_MAX).astype(np.int64) + zero_point_of(out)
    else:  # Requantize
        p = prepare_requantize(graph, op, op_where(graph, op))
        result = multiply_by_quantized_multiplier(x.astype(np.int64) - p.input_zero_point, p.multiplier, p.shift) + p.output_zero_point
    info = np.iinfo(DTYPES[out.dtype])
    return np.clip(result, info.min, info.max)


def dequantize(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """scale * (q - zp) as one float32 multiplication."""
    inp = graph.tensors[op.inputs[0]]
    q = (values[op.inputs[0]].astype(np.int64) - zero_point_of(inp)).astype(np.float32)
    return np.float32(inp.scale[0]) * q


QUANTIZE = OpSpec(
    kind="QUANTIZE",
    builtin_code=schema.BuiltinOperator.QUANTIZE,
    options_type=schema.BuiltinOptions.QuantizeOptions,
    options_optional=True,
    version=1,
    arity=Arity(1, 1),
    read_attributes=no_attributes,
    write_options=None,
    check=same_shape,
    reference=quantize,
    input_types={0: ("float32", "int8")},
)
DEQUANTIZE = OpSpec(
    kind="DEQUANTIZE",
    builtin_code=schema.BuiltinOperator.DEQUANTIZE,
    options_type=schema.BuiltinOptions.DequantizeOptions,
    options_optional=True,
    version=2,
    arity=Arity(1, 1),
    read_attributes=no_attributes,
    write_options=None,
    check=same_shape,
    reference=dequantize,
    output_types={0: ("float32",)},
)
