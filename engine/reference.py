"""A numpy interpreter of the Graph IR, bit-exact with TFLite Micro's reference kernels.

Each op runs the reference kernel of its family (engine.ops): TFLM's integer arithmetic
(engine.quant for the rescaling, gemmlowp-style fixed point for SOFTMAX); nothing is computed in
float except where TFLM itself uses float (QUANTIZE from float32, DEQUANTIZE). Accumulators are
int64; the convolution and fully connected sums are taken through float64 matrix products, which
are exact for integers below 2^53."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from engine.errors import UnsupportedOpError
from engine.ir import DTYPES, Graph, Tensor
from engine.ops import OPS
from engine.ops.spec import Values


def run_reference(graph: Graph, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The graph's outputs for `inputs`, computed the way TFLM computes them."""
    values = run_reference_all(graph, inputs)
    return [values[t] for t in graph.outputs]


def run_reference_all(graph: Graph, inputs: Sequence[np.ndarray]) -> Values:
    """Every tensor's value (constants, inputs, intermediates, outputs) after one run."""
    if len(inputs) != len(graph.inputs):
        raise ValueError(f"model {graph.name} takes {len(graph.inputs)} inputs, got {len(inputs)}")
    values: Values = {i: t.data for i, t in enumerate(graph.tensors) if t.data is not None}
    for index, value in zip(graph.inputs, inputs):
        values[index] = _as_tensor(graph.tensors[index], value, graph.name)
    for op in graph.ops:
        spec = OPS.get(op.kind)
        if spec is None:
            raise UnsupportedOpError(f"model {graph.name}: op {op.index} ({op.kind}) has no reference kernel")
        result = spec.reference(graph, op, values)
        out = graph.tensors[op.outputs[0]]
        values[op.outputs[0]] = result.astype(DTYPES[out.dtype], copy=False).reshape(out.shape)
    return values


def _as_tensor(tensor: Tensor, value: np.ndarray, model: str) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype != DTYPES[tensor.dtype]:
        raise ValueError(f"model {model}: input '{tensor.name}' is {tensor.dtype}, got {value.dtype}")
    if value.size != tensor.elements:
        raise ValueError(f"model {model}: input '{tensor.name}' has shape {tensor.shape}, got {value.shape}")
    return value.reshape(tensor.shape)
