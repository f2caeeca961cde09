"""The shape ops, PAD, RESHAPE and CONCATENATION, which move int8 values without rescaling them:
their attributes, checks, numpy reference and C. TFLM pads int8 with the output zero point and
concatenates int8 only as a copy (every input quantised like the output, no activation); a
RESHAPE is no code where the planner gives its output its input's bytes."""
from __future__ import annotations

from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.codegen.context import EmitContext
from engine.codegen.layer import Layer
from engine.codegen.library_call import CExpr, LibraryCall, library_kernel, render_call
from engine.codegen.literals import extend4, int_list, shape_text
from engine.codegen.variants import library_variants, tags
from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.ops.checks import same_elements
from engine.ops.options import (
    constant_input,
    constant_second_input,
    read_activation,
    required_attribute,
    write_activation,
)
from engine.ops.quant_params import zero_point_of
from engine.ops.spec import Arity, CForm, OpSpec, TfliteForm, Values, op_where

PAD_MAX_RANK = 4  # the kernel pads a 4-D tensor
PARAMETER_INPUT_TYPES = {1: ("int32",)}  # PAD's paddings, RESHAPE's new shape
PARAMETER_INPUT_LABELS = ("in", None)  # the layer's comment leaves the parameter tensor out


# ---- PAD ----
@library_kernel("tl_pad_s8")
class PadCall(LibraryCall):
    """PAD of a 4-D tensor with a constant."""

    input: CExpr
    in_dims: CExpr
    pad_before: CExpr
    pad_after: CExpr
    pad_value: int
    output: CExpr


def read_pad(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    """The paddings come from the constant input 1: a (before, after) pair per dimension."""
    paddings = constant_input(inputs, tensors, 1, where, "paddings")
    if paddings.size % 2:
        raise ModelFormatError(f"{where}: the paddings tensor has {paddings.size} values, not pairs")
    return {"paddings": tuple((int(a), int(b)) for a, b in paddings.reshape(-1, 2))}


def write_pad(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    paddings = tuple((int(a), int(b)) for a, b in constant_second_input(op, graph, where, "paddings").reshape(-1, 2))
    if "paddings" in op.attrs and paddings != tuple(tuple(p) for p in op.attrs["paddings"]):
        raise ValueError(f"{where}: attribute paddings {op.attrs['paddings']} disagrees with the paddings tensor {paddings}")
    return schema.BuiltinOptions.PadOptions, schema.PadOptionsT()


def check_pad(graph: Graph, op: Op, where: str) -> None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    paddings = tuple(op.attrs.get("paddings", ()))
    if len(x.shape) > PAD_MAX_RANK or len(paddings) != len(x.shape):
        raise ModelFormatError(f"{where}: {len(paddings)} padding pairs for an input of rank {len(x.shape)} (at most {PAD_MAX_RANK})")
    if any(v < 0 for pair in paddings for v in pair):
        raise ModelFormatError(f"{where}: paddings {paddings} include a negative one")
    expected = tuple(d + a + b for d, (a, b) in zip(x.shape, paddings))
    if expected != tuple(y.shape):
        raise ModelFormatError(f"{where}: output shape {tuple(y.shape)} is not the padded input {expected}")


def pad(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """Padding with the output zero point (TFLM's PAD for int8, no constant input)."""
    paddings = op.attrs.get("paddings") or tuple((int(a), int(b)) for a, b in values[op.inputs[1]].reshape(-1, 2))
    return np.pad(values[op.inputs[0]], paddings, constant_values=zero_point_of(graph.tensors[op.outputs[0]]))


def emit_pad(g: EmitContext, position: int, op: Op) -> Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    paddings = [tuple(int(v) for v in p) for p in op.attrs["paddings"]]
    if len(paddings) != len(x.shape):
        raise UnsupportedOpError(f"{where}: {len(paddings)} padding pairs for a rank {len(x.shape)} input")
    if any(v < 0 for p in paddings for v in p):
        raise UnsupportedOpError(f"{where}: negative paddings {paddings} are not supported")
    dims = extend4(x.shape, where)
    paddings = [(0, 0)] * (4 - len(paddings)) + paddings
    expected = tuple(d + a + b for d, (a, b) in zip(dims, paddings))
    if expected != extend4(y.shape, where):
        raise UnsupportedOpError(f"{where}: output {shape_text(y.shape)} is not the padded input {shape_text(expected)}")
    call = PadCall(input=g.ptr(op.inputs[0], const=True), in_dims=int_list(dims),
                   pad_before=int_list([a for a, _ in paddings]), pad_after=int_list([b for _, b in paddings]),
                   pad_value=zero_point_of(y), output=g.ptr(op.outputs[0]))
    return Layer(f"paddings {paddings}", [render_call(call)], tags("pad", "library"))


# ---- RESHAPE ----
def write_reshape(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    """The new shape from the constant input 1 if there is one, else the output's shape."""
    options = schema.ReshapeOptionsT()
    if len(op.inputs) > 1 and op.inputs[1] >= 0 and graph.tensors[op.inputs[1]].data is not None:
        options.newShape = np.asarray(graph.tensors[op.inputs[1]].data, dtype=np.int32).ravel()
    else:
        options.newShape = np.asarray(graph.tensors[op.outputs[0]].shape, dtype=np.int32)
    return schema.BuiltinOptions.ReshapeOptions, options


def reshape(graph: Graph, op: Op, values: Values) -> np.ndarray:
    return values[op.inputs[0]].reshape(graph.tensors[op.outputs[0]].shape)


def emit_reshape(g: EmitContext, position: int, op: Op) -> Layer:
    """No code where the output shares the input's bytes (engine.planner aliases them), else a copy."""
    x, y = op.inputs[0], op.outputs[0]
    if g.tensor(x).data is None and g.plan.placements[x].offset == g.plan.placements[y].offset:
        return Layer("in place, no code", [], tags("reshape", "in-place"))
    call = f"memmove({g.ptr(y)}, {g.ptr(x, const=True)}, {g.tensor(y).nbytes});"
    return Layer("copy", [call], tags("reshape", "copy"))


# ---- CONCATENATION ----
@library_kernel("tl_concat_s8")
class ConcatCall(LibraryCall):
    """One input, seen as [outer][copy_size], into its slice of output rows output_stride apart."""

    input: CExpr
    outer: int
    copy_size: int
    output: CExpr
    output_stride: int


def read_concatenation(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    rank = len(tensors[inputs[0]].shape) if inputs[0] >= 0 else 0
    axis = int(options.axis)
    return {"axis": axis + rank if axis < 0 else axis, "activation": read_activation(options, where)}


def write_concatenation(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = schema.ConcatenationOptionsT()
    options.axis = int(required_attribute(op, "axis", where))
    options.fusedActivationFunction = write_activation(op, where)
    return schema.BuiltinOptions.ConcatenationOptions, options


def check_concatenation(graph: Graph, op: Op, where: str) -> None:
    """Inputs of the output's rank, equal to it but along the axis, filling it along the axis."""
    y = graph.tensors[op.outputs[0]]
    rank = len(y.shape)
    axis = op.attrs.get("axis", -1)
    if not isinstance(axis, (int, np.integer)) or not 0 <= axis < rank:
        raise ModelFormatError(f"{where}: axis {axis!r} is outside the output's rank {rank}")
    total = 0
    for position, t in enumerate(op.inputs):
        x = graph.tensors[t]
        if len(x.shape) != rank or any(a != b for i, (a, b) in enumerate(zip(x.shape, y.shape)) if i != axis):
            raise ModelFormatError(f"{where}: input {position} shape {tuple(x.shape)} does not concatenate into {tuple(y.shape)} along axis {axis}")
        total += x.shape[axis]
    if total != y.shape[axis]:
        raise ModelFormatError(f"{where}: inputs give {total} along axis {axis}, the output has {y.shape[axis]}")


def check_imported_concatenation(graph: Graph, op: Op, where: str) -> None:
    """TFLM concatenates int8 only as a copy: every input quantised like the output, no activation."""
    out = graph.tensors[op.outputs[0]]
    if op.attrs.get("activation", "NONE") != "NONE":
        raise UnsupportedOpError(f"{where} has a fused activation, which TFLite Micro does not support")
    for position, t in enumerate(op.inputs):
        tensor = graph.tensors[t]
        if (tensor.scale, tensor.zero_point) != (out.scale, out.zero_point):
            raise UnsupportedOpError(
                f"{where} input {position} is quantised with "
                f"scale {tensor.scale} zero point {tensor.zero_point}, the output with {out.scale} {out.zero_point}; "
                "TFLite Micro (and so the engine) needs them equal"
            )


def concatenation(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """A byte-for-byte join. TFLM refuses an int8 CONCATENATION whose inputs differ from the
    output in scale or zero point, or that has a fused activation; so does the reference."""
    out = graph.tensors[op.outputs[0]]
    where = op_where(graph, op)
    if op.attrs.get("activation", "NONE") != "NONE":
        raise UnsupportedOpError(f"{where}: a fused activation ({op.attrs['activation']}) is not supported (TFLM refuses it)")
    for position, t in enumerate(op.inputs):
        inp = graph.tensors[t]
        if out.dtype == "int8" and (np.float32(inp.scale[0]) != np.float32(out.scale[0])
                                    or zero_point_of(inp) != zero_point_of(out)):
            raise UnsupportedOpError(
                f"{where}: input {position} '{inp.name}' has scale {inp.scale[0]:g}, zero point {zero_point_of(inp)} but "
                f"the output has {out.scale[0]:g}, {zero_point_of(out)}; TFLM does not requantise in CONCATENATION "
                "(insert a QUANTIZE)"
            )
    return np.concatenate([values[t] for t in op.inputs], axis=op.attrs["axis"])


def emit_concatenation(g: EmitContext, position: int, op: Op) -> Layer:
    """One copy per input into its slice of each output row."""
    where = g.where(op)
    y = g.tensor(op.outputs[0])
    if op.attrs.get("activation", "NONE") != "NONE":
        raise UnsupportedOpError(f"{where}: a fused activation ({op.attrs['activation']}) is not supported (TFLM refuses it)")
    axis = int(op.attrs["axis"])
    rank = len(y.shape)
    axis = axis + rank if axis < 0 else axis
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    row = int(np.prod(y.shape[axis:], dtype=np.int64))
    lines, offset = [], 0
    for t in op.inputs:
        x = g.tensor(t)
        if len(x.shape) != rank:
            raise UnsupportedOpError(f"{where}: input '{x.name}' has rank {len(x.shape)}, the output {rank}")
        copy = int(np.prod(x.shape[axis:], dtype=np.int64))
        out = g.ptr(op.outputs[0])
        target = f"{out} + {offset}" if offset else out
        lines.append(render_call(ConcatCall(input=g.ptr(t, const=True), outer=outer, copy_size=copy, output=target,
                                                output_stride=row)))
        offset += copy
    if offset != row:
        raise UnsupportedOpError(f"{where}: the inputs fill {offset} of the output's {row} values per row")
    return Layer(f"axis {axis}", lines, tags("concatenation", "library"))


PAD = OpSpec(
    "PAD", Arity(2, 2), check_pad, pad, input_types=PARAMETER_INPUT_TYPES,
    tflite=TfliteForm(schema.BuiltinOptions.PadOptions, version=2, read=read_pad, write=write_pad, optional=True),
    c=CForm(emit_pad, library_variants("pad", "library"), input_labels=PARAMETER_INPUT_LABELS, library_calls=(PadCall,)),
)
RESHAPE = OpSpec(
    "RESHAPE", Arity(1, 2), same_elements, reshape, input_types=PARAMETER_INPUT_TYPES,
    tflite=TfliteForm(schema.BuiltinOptions.ReshapeOptions, version=1, write=write_reshape, optional=True),
    c=CForm(emit_reshape, library_variants("reshape", "in-place", "copy"), input_labels=PARAMETER_INPUT_LABELS),
)
CONCATENATION = OpSpec(
    "CONCATENATION", Arity(1, 64), check_concatenation, concatenation, import_check=check_imported_concatenation,
    tflite=TfliteForm(schema.BuiltinOptions.ConcatenationOptions, version=2, read=read_concatenation,
                      write=write_concatenation),
    c=CForm(emit_concatenation, library_variants("concatenation", "library"), input_labels=None,
            library_calls=(ConcatCall,)),
)
