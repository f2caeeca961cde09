"""CONV_2D and DEPTHWISE_CONV_2D attributes: read from a .tflite op's options, written back."""
from __future__ import annotations

from typing import Any

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.ir import Graph, Op, Tensor
from engine.ops.window import read_window, write_window


def read_conv(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    return read_window(options, where)


def read_depthwise(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    """depth_multiplier as the options give it (TFLM's kernels use it); the check compares it with
    the filter's channels."""
    attrs = read_window(options, where)
    attrs["depth_multiplier"] = int(options.depthMultiplier)
    return attrs


def write_conv(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    return schema.BuiltinOptions.Conv2DOptions, write_window(schema.Conv2DOptionsT(), op, where)


def write_depthwise(op: Op, graph: Graph, where: str) -> tuple[int, Any]:
    options = write_window(schema.DepthwiseConv2DOptionsT(), op, where)
    multiplier = op.attrs.get("depth_multiplier")
    if multiplier is None:
        channels_in = graph.tensors[op.inputs[0]].shape[-1]
        multiplier = graph.tensors[op.inputs[1]].shape[-1] // channels_in if channels_in else 1
    options.depthMultiplier = int(multiplier)
    return schema.BuiltinOptions.DepthwiseConv2DOptions, options
