"""Window geometry of CONV_2D, DEPTHWISE_CONV_2D and the pools: stride, output size and the
padding before the first row and column (TFLite's ComputePaddingHeightWidth, dilation 1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from engine.errors import UnsupportedOpError


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
    """The window of an op with SAME, VALID or EXPLICIT (a folded PAD, engine.fold) padding; refuses
    an output size that the padding does not give."""
    (h, w), (kh, kw), (oh, ow) = input_hw, filter_hw, output_hw
    sh, sw = int(attrs["stride_h"]), int(attrs["stride_w"])
    if attrs["padding"] == "EXPLICIT":
        pt, pb, pl, pr = (int(attrs[k]) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right"))
        expected = ((h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1)
        if expected != (oh, ow) or min(pt, pb, pl, pr) < 0:
            raise UnsupportedOpError(f"{where}: output {oh}x{ow} does not match explicit padding {(pt, pb, pl, pr)}")
        return Window(sh, sw, pt, pl, oh, ow)
    pt = _checked_axis(h, kh, sh, oh, attrs["padding"], where, "height")
    pl = _checked_axis(w, kw, sw, ow, attrs["padding"], where, "width")
    return Window(sh, sw, pt, pl, oh, ow)
