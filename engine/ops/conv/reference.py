"""CONV_2D and DEPTHWISE_CONV_2D in numpy, bit-exact with TFLite Micro's reference kernels. The
convolution's sums go through float64 matrix products, exact for integers below 2^53."""
from __future__ import annotations

import numpy as np

from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op
from engine.ops.conv.prepare import prepare_conv
from engine.ops.spec import Values, op_where
from engine.ops.weighted import bias_values, requantized
from engine.ops.window import padded, tap


def conv_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """sum((x - zp_in) * w) + bias over each window (padding contributes nothing), rescaled per
    output channel, plus zp_out, clamped to the fused activation's range."""
    where = op_where(graph, op)
    x, w = values[op.inputs[0]], values[op.inputs[1]].astype(np.float64)  # [O, KH, KW, I]; symmetric
    channels, kh, kw, depth = w.shape
    if x.shape[3] != depth:
        raise UnsupportedOpError(
            f"{where}: grouped convolution ({x.shape[3]} input channels, filter depth {depth}) is not supported"
        )
    p = prepare_conv(graph, op, where)
    x = padded(x.astype(np.float64) + p.input_offset, p.window, kh, kw, 0)
    out_h, out_w = p.window.out_h, p.window.out_w
    acc = np.zeros((x.shape[0] * out_h * out_w, channels), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            acc += tap(x, p.window, dy, dx).reshape(-1, depth) @ w[:, dy, dx, :].T
    acc = acc.astype(np.int64) + bias_values(op, values, channels)
    result = requantized(acc, p.multipliers, p.shifts, p.output_offset, p.output_min, p.output_max)
    return result.reshape(x.shape[0], out_h, out_w, channels)


def depthwise_conv_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """Output channel c * multiplier + m sees input channel c only, through filter column
    c * multiplier + m; otherwise as CONV_2D."""
    p = prepare_conv(graph, op, op_where(graph, op))
    x = values[op.inputs[0]].astype(np.int64) + p.input_offset
    w = values[op.inputs[1]].astype(np.int64)  # [1, KH, KW, C * M]
    _, kh, kw, channels = w.shape
    depth = x.shape[3]
    multiplier_count = channels // depth
    w = w.reshape(kh, kw, depth, multiplier_count)
    x = padded(x, p.window, kh, kw, 0)
    out_h, out_w = p.window.out_h, p.window.out_w
    acc = np.zeros((x.shape[0], out_h, out_w, depth, multiplier_count), dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            acc += tap(x, p.window, dy, dx)[..., None] * w[dy, dx]
    acc = acc.reshape(x.shape[0], out_h, out_w, channels) + bias_values(op, values, channels)
    return requantized(acc, p.multipliers, p.shifts, p.output_offset, p.output_min, p.output_max)
