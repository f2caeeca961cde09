"""The TFLite options several op families share: the fused activation, read from a .tflite op's
builtin options and written back; an attribute the exporter requires; the constant input tensors
(MEAN's axes, PAD's paddings) that the engine holds as attributes."""
from __future__ import annotations

from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op, Tensor

_ACTIVATION_NAMES = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
_ACTIVATION_CODES = {
    "NONE": schema.ActivationFunctionType.NONE,
    "RELU": schema.ActivationFunctionType.RELU,
    "RELU6": schema.ActivationFunctionType.RELU6,
}


def read_activation(options: Any, where: str) -> str:
    """The fused activation of a .tflite op's options, refused unless NONE, RELU or RELU6."""
    name = _ACTIVATION_NAMES.get(options.fusedActivationFunction, str(options.fusedActivationFunction))
    if name not in _ACTIVATION_CODES:
        raise UnsupportedOpError(f"{where}: fused activation {name} is not supported (NONE, RELU, RELU6 are)")
    return name


def write_activation(op: Op, where: str) -> int:
    """The op's fused activation as the schema's ActivationFunctionType."""
    name = op.attrs.get("activation", "NONE")
    if name not in _ACTIVATION_CODES:
        raise UnsupportedOpError(f"{where}: fused activation {name} is not supported (NONE, RELU, RELU6 are)")
    return _ACTIVATION_CODES[name]


def required_attribute(op: Op, key: str, where: str) -> Any:
    """An attribute the exporter cannot write the op without."""
    if key not in op.attrs:
        raise ValueError(f"{where}: attribute '{key}' is missing (has: {', '.join(sorted(op.attrs)) or 'none'})")
    return op.attrs[key]


def constant_input(inputs: tuple[int, ...], tensors: list[Tensor], position: int, where: str, what: str) -> np.ndarray:
    """The data of a .tflite op's constant input at `position` (the importer's view)."""
    if len(inputs) <= position or inputs[position] < 0 or tensors[inputs[position]].data is None:
        raise UnsupportedOpError(f"{where}: the {what} must be a constant tensor")
    return tensors[inputs[position]].data


def constant_second_input(op: Op, graph: Graph, where: str, what: str) -> np.ndarray:
    """The data of the op's constant int32 input 1 (the exporter's view)."""
    if len(op.inputs) < 2 or op.inputs[1] < 0 or graph.tensors[op.inputs[1]].data is None:
        raise ValueError(f"{where}: the {what} must be a constant int32 tensor at input 1")
    return np.asarray(graph.tensors[op.inputs[1]].data)

