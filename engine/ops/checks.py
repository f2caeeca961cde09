"""Checks that several op families make, each refusing with the op (`where`) and the field at fault."""
from __future__ import annotations

import numpy as np

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op


def require_int(op: Op, key: str, where: str, low: int = 1) -> int:
    """Attribute `key`, an integer of `low` or more."""
    if key not in op.attrs:
        raise ModelFormatError(f"{where}: attribute '{key}' is missing")
    value = op.attrs[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ModelFormatError(f"{where}: {key} is {value!r}; it must be an integer of {low} or more")
    return int(value)


def shape_with_rank(graph: Graph, t: int, rank: int, what: str, where: str) -> tuple[int, ...]:
    """Tensor t's shape, refused unless of rank `rank`."""
    shape = graph.tensors[t].shape
    if len(shape) != rank:
        raise UnsupportedOpError(f"{where}: {what} '{graph.tensors[t].name}' has shape {tuple(shape)}; rank {rank} is needed")
    return tuple(shape)


def same_elements(graph: Graph, op: Op, where: str) -> None:
    """The output holds as many values as the input."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.elements != y.elements:
        raise ModelFormatError(f"{where}: output shape {tuple(y.shape)} holds {y.elements} values, the input {x.elements}")


def same_shape(graph: Graph, op: Op, where: str) -> None:
    """The output has the input's shape, both quantised per tensor."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if tuple(x.shape) != tuple(y.shape):
        raise ModelFormatError(f"{where}: output shape {tuple(y.shape)} differs from the input's {tuple(x.shape)}")
    for tensor in (x, y):
        if len(tensor.scale) > 1:
            raise UnsupportedOpError(f"{where}: per-channel quantisation of '{tensor.name}' is not supported")
