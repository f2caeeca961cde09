"""SOFTMAX (TFLM's int8 SoftmaxPrepare: PreprocessSoftmaxScaling and CalculateInputRadius)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.quant import quantize_multiplier

SCALED_DIFF_INTEGER_BITS = 5  # differences x - max as Q5.26
ACCUMULATION_INTEGER_BITS = 12  # the sum of exponentials as Q12.19


@dataclass(frozen=True)
class SoftmaxParams:
    input_multiplier: int  # beta * input scale in Q5.26 units, Q31
    input_left_shift: int
    diff_min: int  # differences below this contribute nothing


def prepare_softmax(input_scale: float, beta: float) -> SoftmaxParams:
    bits = SCALED_DIFF_INTEGER_BITS
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << (31 - bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    radius = math.floor(((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift))
    return SoftmaxParams(multiplier, left_shift, -radius)
