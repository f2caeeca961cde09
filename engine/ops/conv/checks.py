"""CONV_2D and DEPTHWISE_CONV_2D checks: the window's attributes, the weights, and the shapes."""
from __future__ import annotations

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op
from engine.ops.checks import require_int, shape_with_rank
from engine.ops.weighted import check_channels, check_weights
from engine.ops.window import check_window_attributes, check_window_output


def check_conv(graph: Graph, op: Op, where: str) -> None:
    """Filter [out, kh, kw, in] with in the input's depth (no groups)."""
    check_window_attributes(op, where)
    check_weights(graph, op, where, channel_axis=0)
    _, _, _, c = shape_with_rank(graph, op.inputs[0], 4, "input", where)
    oc, kh, kw, ic = shape_with_rank(graph, op.inputs[1], 4, "filter", where)
    if ic != c:
        raise UnsupportedOpError(f"{where}: filter depth {ic} differs from the input depth {c} (grouped convolution)")
    check_window_output(graph, op, where, kh, kw, oc)
    check_channels(graph, op, oc, where)


def check_depthwise(graph: Graph, op: Op, where: str) -> None:
    """Filter [1, kh, kw, in * multiplier], the multiplier agreeing with depth_multiplier if given."""
    check_window_attributes(op, where)
    if "depth_multiplier" in op.attrs:
        require_int(op, "depth_multiplier", where)
    check_weights(graph, op, where, channel_axis=3)
    _, _, _, c = shape_with_rank(graph, op.inputs[0], 4, "input", where)
    one, kh, kw, oc = shape_with_rank(graph, op.inputs[1], 4, "filter", where)
    if one != 1 or oc % c:
        raise ModelFormatError(f"{where}: filter shape {(one, kh, kw, oc)} for {c} input channels (need [1, kh, kw, {c} x multiplier])")
    multiplier = op.attrs.get("depth_multiplier", oc // c)
    if multiplier * c != oc:
        raise ModelFormatError(f"{where}: depth_multiplier {multiplier} with {c} input channels gives {multiplier * c}, the filter has {oc}")
    check_window_output(graph, op, where, kh, kw, oc)
    check_channels(graph, op, oc, where)
