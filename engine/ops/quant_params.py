"""Reading a tensor's quantisation and an op's fused activation range, as TFLite Micro's Prepare
steps read them."""
from __future__ import annotations

import numpy as np

from engine.errors import UnsupportedOpError
from engine.ir import Op, Tensor
from engine.quant import activation_range


def scale_of(tensor: Tensor, where: str) -> float:
    """The tensor's (first) scale as TFLM holds it: a float32, widened to double."""
    if not tensor.scale:
        raise UnsupportedOpError(f"{where}: tensor '{tensor.name}' has no quantisation parameters")
    return float(np.float32(tensor.scale[0]))


def zero_point_of(tensor: Tensor) -> int:
    """The tensor's (first) zero point; 0 where it has none."""
    return int(tensor.zero_point[0]) if tensor.zero_point else 0


def output_range(op: Op, out: Tensor, where: str) -> tuple[int, int]:
    """(min, max) of the op's int8 output under its fused activation (CalculateActivationRangeQuantized)."""
    return activation_range(op.attrs.get("activation", "NONE"), scale_of(out, where), zero_point_of(out))
