"""The sliding window of CONV_2D, DEPTHWISE_CONV_2D and the pools: its attributes (padding,
strides, fused activation) read from and written to TFLite options and checked; its geometry
(TFLite's ComputePaddingHeightWidth, dilation 1); and the numpy views of a padded input that the
reference kernels sum over."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Op
from engine.ops.checks import require_int, shape_with_rank
from engine.ops.options import read_activation, required_attribute, write_activation

PADDINGS = ("SAME", "VALID", "EXPLICIT")  # EXPLICIT: a PAD folded into a convolution (engine.fold)
_PADDING_NAMES = {schema.Padding.SAME: "SAME", schema.Padding.VALID: "VALID"}
_PADDING_CODES = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}
_EXPLICIT_PADS = ("pad_top", "pad_bottom", "pad_left", "pad_right")


# ---- attributes ----
def read_window(options: Any, where: str) -> dict[str, Any]:
    """padding, stride_h, stride_w and activation from Conv2D, DepthwiseConv2D or Pool2D options."""
    if getattr(options, "dilationHFactor", 1) != 1 or getattr(options, "dilationWFactor", 1) != 1:
        raise UnsupportedOpError(
            f"{where}: dilation {options.dilationHFactor}x{options.dilationWFactor} is not supported (only 1)"
        )
    if options.padding not in _PADDING_NAMES:
        raise ModelFormatError(f"{where}: padding is {options.padding}, neither SAME (0) nor VALID (1)")
    return {
        "padding": _PADDING_NAMES[options.padding],
        "stride_h": int(options.strideH),
        "stride_w": int(options.strideW),
        "activation": read_activation(options, where),
    }


def write_window(options: Any, op: Op, where: str) -> Any:
    """`options` with the op's padding, strides and activation set."""
    padding = required_attribute(op, "padding", where)
    if padding not in _PADDING_CODES:
        raise ValueError(f"{where}: padding {padding!r} is neither SAME nor VALID")
    options.padding = _PADDING_CODES[padding]
    options.strideH = int(required_attribute(op, "stride_h", where))
    options.strideW = int(required_attribute(op, "stride_w", where))
    options.fusedActivationFunction = write_activation(op, where)
    return options


def check_window_attributes(op: Op, where: str) -> None:
    """A padding of PADDINGS, strides of 1 or more, and the four pads of an EXPLICIT padding."""
    if op.attrs.get("padding") not in PADDINGS:
        raise ModelFormatError(f"{where}: padding {op.attrs.get('padding')!r} is not one of {', '.join(PADDINGS)}")
    require_int(op, "stride_h", where)
    require_int(op, "stride_w", where)
    if op.attrs["padding"] == "EXPLICIT":
        for key in _EXPLICIT_PADS:
            require_int(op, key, where, low=0)


def _window_out(size: int, k: int, stride: int, op: Op, before: str, after: str) -> int:
    padding = op.attrs["padding"]
    if padding == "SAME":
        return (size + stride - 1) // stride
    if padding == "VALID":
        return (size - k) // stride + 1
    return (size + int(op.attrs[before]) + int(op.attrs[after]) - k) // stride + 1


def check_window_output(graph: Graph, op: Op, where: str, kh: int, kw: int, channels: int) -> None:
    """A rank 4 input and output, the output of the size the window gives, with `channels`."""
    n, h, w, _ = shape_with_rank(graph, op.inputs[0], 4, "input", where)
    on, oh, ow, oc = shape_with_rank(graph, op.outputs[0], 4, "output", where)
    sh, sw = int(op.attrs["stride_h"]), int(op.attrs["stride_w"])
    expected = (n, _window_out(h, kh, sh, op, "pad_top", "pad_bottom"), _window_out(w, kw, sw, op, "pad_left", "pad_right"), channels)
    if min(expected[1:3]) < 1:
        raise ModelFormatError(f"{where}: a {kh}x{kw} window with {op.attrs['padding']} padding does not fit the {h}x{w} input")
    if (on, oh, ow, oc) != expected:
        raise ModelFormatError(
            f"{where}: output shape {(on, oh, ow, oc)} but input {(n, h, w)}, filter {kh}x{kw}, stride {sh}x{sw}, "
            f"{op.attrs['padding']} padding and {channels} channels give {expected}"
        )


# ---- geometry ----
@dataclass(frozen=True)
class Window:
    """Where each output's window starts: output (y, x) reads input rows from y * stride_h - pad_top."""
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    out_h: int
    out_w: int


def _out_size(size: int, filter_size: int, stride: int, padding: str) -> int:
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size + stride - filter_size) // stride


def _pad_before(size: int, filter_size: int, stride: int, out_size: int) -> int:
    """Half the total padding, the odd one going after."""
    total = (out_size - 1) * stride + filter_size - size
    return max(total, 0) // 2


def _checked_axis(size: int, filter_size: int, stride: int, out_size: int, padding: str, where: str, axis: str) -> int:
    expected = _out_size(size, filter_size, stride, padding)
    if expected != out_size:
        raise UnsupportedOpError(
            f"{where}: output {axis} is {out_size} but {padding} padding with filter {filter_size}, stride {stride} "
            f"on {size} gives {expected}"
        )
    return _pad_before(size, filter_size, stride, out_size)


def prepare_window(attrs: Mapping[str, Any], input_hw: tuple[int, int], filter_hw: tuple[int, int],
                   output_hw: tuple[int, int], where: str) -> Window:
    """The window of an op with SAME, VALID or EXPLICIT (a folded PAD, engine.fold; negative where a
    patch skips rows of a larger region, engine.patches) padding; refuses an output size that
    the padding does not give."""
    (h, w), (kh, kw), (oh, ow) = input_hw, filter_hw, output_hw
    sh, sw = int(attrs["stride_h"]), int(attrs["stride_w"])
    if attrs["padding"] == "EXPLICIT":
        pt, pb, pl, pr = (int(attrs[k]) for k in _EXPLICIT_PADS)
        expected = ((h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1)
        if expected != (oh, ow):
            raise UnsupportedOpError(f"{where}: output {oh}x{ow} does not match explicit padding {(pt, pb, pl, pr)}")
        return Window(sh, sw, pt, pl, oh, ow)
    pt = _checked_axis(h, kh, sh, oh, attrs["padding"], where, "height")
    pl = _checked_axis(w, kw, sw, ow, attrs["padding"], where, "width")
    return Window(sh, sw, pt, pl, oh, ow)


# ---- numpy views for the reference kernels ----
def padded(x: np.ndarray, window: Window, kh: int, kw: int, fill: int) -> np.ndarray:
    """x [N, H, W, C] with `fill` around it, cut so that every window of every output fits."""
    _, height, width, _ = x.shape
    need_h = (window.out_h - 1) * window.stride_h + kh
    need_w = (window.out_w - 1) * window.stride_w + kw
    top, left = window.pad_top, window.pad_left
    x = x[:, max(0, -top):, max(0, -left):, :]  # a negative pad skips rows or columns
    top, left = max(0, top), max(0, left)
    bottom, right = need_h - x.shape[1] - top, need_w - x.shape[2] - left
    x = np.pad(x, ((0, 0), (top, max(bottom, 0)), (left, max(right, 0)), (0, 0)), constant_values=fill)
    return x[:, :need_h, :need_w, :]


def tap(x: np.ndarray, window: Window, dy: int, dx: int) -> np.ndarray:
    """The input values that filter tap (dy, dx) meets, for every output position."""
    sh, sw, out_h, out_w = window.stride_h, window.stride_w, window.out_h, window.out_w
    return x[:, dy : dy + sh * (out_h - 1) + 1 : sh, dx : dx + sw * (out_w - 1) + 1 : sw, :]
