"""A numpy interpreter of the Graph IR, bit-exact with TFLite Micro's reference kernels.

Every kernel follows TFLM's integer arithmetic (engine.quant for the rescaling, gemmlowp-style
fixed point for SOFTMAX); nothing is computed in float except where TFLM itself uses float
(QUANTIZE from float32, DEQUANTIZE). Accumulators are int64; the convolution and fully connected
sums are taken through float64 matrix products, which are exact for integers below 2^53."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.prepare import (
    Window,
    prepare_add,
    prepare_conv,
    prepare_fully_connected,
    prepare_mean,
    prepare_pool,
    prepare_requantize,
    prepare_softmax,
)
from engine.prepare.softmax import ACCUMULATION_INTEGER_BITS, SCALED_DIFF_INTEGER_BITS
from engine.quant import (
    INT32_MAX,
    INT32_MIN,
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)

Values = dict[int, np.ndarray]
Kernel = Callable[[Graph, Op, Values], np.ndarray]


# ---- running a graph ----
def run_reference(graph: Graph, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The graph's outputs for `inputs`, computed the way TFLM computes them."""
    values = run_reference_all(graph, inputs)
    return [values[t] for t in graph.outputs]


def run_reference_all(graph: Graph, inputs: Sequence[np.ndarray]) -> Values:
    """Every tensor's value (constants, inputs, intermediates, outputs) after one run."""
    if len(inputs) != len(graph.inputs):
        raise ValueError(f"model {graph.name} takes {len(graph.inputs)} inputs, got {len(inputs)}")
    values: Values = {i: t.data for i, t in enumerate(graph.tensors) if t.data is not None}
    for index, value in zip(graph.inputs, inputs):
        values[index] = _as_tensor(graph.tensors[index], value, graph.name)
    for op in graph.ops:
        kernel = KERNELS.get(op.kind)
        if kernel is None:
            raise UnsupportedOpError(f"model {graph.name}: op {op.index} ({op.kind}) has no reference kernel")
        result = kernel(graph, op, values)
        out = graph.tensors[op.outputs[0]]
        values[op.outputs[0]] = result.astype(_NUMPY[out.dtype], copy=False).reshape(out.shape)
    return values


_NUMPY = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "float32": np.float32, "uint8": np.uint8}


def _as_tensor(tensor: Tensor, value: np.ndarray, model: str) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype != _NUMPY[tensor.dtype]:
        raise ValueError(f"model {model}: input '{tensor.name}' is {tensor.dtype}, got {value.dtype}")
    if value.size != tensor.elements:
        raise ValueError(f"model {model}: input '{tensor.name}' has shape {tensor.shape}, got {value.shape}")
    return value.reshape(tensor.shape)


# ---- small helpers ----
def _scale(t: Tensor) -> float:
    return t.scale[0]


def _zero_point(t: Tensor) -> int:
    return t.zero_point[0] if t.zero_point else 0


def _input(values: Values, op: Op, position: int) -> np.ndarray:
    return values[op.inputs[position]]


def _tensor(graph: Graph, op: Op, position: int) -> Tensor:
    return graph.tensors[op.inputs[position]]


def _output(graph: Graph, op: Op) -> Tensor:
    return graph.tensors[op.outputs[0]]


def _clamp(x: np.ndarray, low: int, high: int) -> np.ndarray:
    return np.clip(x, low, high)


def _c_divide(x: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """C's integer division: the quotient truncated toward zero."""
    q = np.abs(x) // np.abs(n)
    return np.where((x < 0) != (np.asarray(n) < 0), -q, q)


def _round_half_away_divide(x: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """TFLM's `acc > 0 ? (acc + n/2) / n : (acc - n/2) / n`, in C integer arithmetic."""
    half = np.asarray(n) // 2
    return np.where(x > 0, _c_divide(x + half, n), _c_divide(x - half, n))


def _rescale(acc: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    return multiply_by_quantized_multiplier(acc, multiplier, shift)


def _bias(graph: Graph, op: Op, values: Values, channels: int) -> np.ndarray:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return values[op.inputs[2]].astype(np.int64).reshape(channels)
    return np.zeros(channels, dtype=np.int64)


# ---- windows (engine.prepare.window gives stride, output size and padding) ----
def _where(graph: Graph, op: Op) -> str:
    return f"model {graph.name}: op {op.index} ({op.kind})"


def _padded(x: np.ndarray, window: Window, kh: int, kw: int, fill: int) -> np.ndarray:
    """x [N, H, W, C] with `fill` around it, cut so that every window of every output fits."""
    _, height, width, _ = x.shape
    need_h = (window.out_h - 1) * window.stride_h + kh
    need_w = (window.out_w - 1) * window.stride_w + kw
    top, left = window.pad_top, window.pad_left
    bottom, right = need_h - height - top, need_w - width - left
    x = np.pad(x, ((0, 0), (top, max(bottom, 0)), (left, max(right, 0)), (0, 0)), constant_values=fill)
    return x[:, :need_h, :need_w, :]


def _tap(x: np.ndarray, window: Window, dy: int, dx: int) -> np.ndarray:
    """The input values that filter tap (dy, dx) meets, for every output position."""
    sh, sw, out_h, out_w = window.stride_h, window.stride_w, window.out_h, window.out_w
    return x[:, dy : dy + sh * (out_h - 1) + 1 : sh, dx : dx + sw * (out_w - 1) + 1 : sw, :]


def _requantized(acc: np.ndarray, multipliers: Sequence[int], shifts: Sequence[int], output_offset: int,
                 low: int, high: int) -> np.ndarray:
    """acc rescaled per channel (the last axis), plus the output zero point, clamped."""
    m, s = np.array(multipliers, dtype=np.int64), np.array(shifts, dtype=np.int64)
    return _clamp(_rescale(acc, m, s) + output_offset, low, high)


# ---- kernels, one per op kind ----
def conv_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """sum((x - zp_in) * w) + bias over each window (padding contributes nothing), rescaled per
    output channel, plus zp_out, clamped to the fused activation's range."""
    w = _input(values, op, 1).astype(np.float64)  # [O, KH, KW, I]; int8 filters are symmetric
    channels, kh, kw, depth = w.shape
    if _input(values, op, 0).shape[3] != depth:
        raise UnsupportedOpError(
            f"model {graph.name}: op {op.index} (CONV_2D): grouped convolution ({_input(values, op, 0).shape[3]} input channels, filter depth {depth}) is not supported"
        )
    p = prepare_conv(graph, op, _where(graph, op))
    x = _padded(_input(values, op, 0).astype(np.float64) + p.input_offset, p.window, kh, kw, 0)
    out_h, out_w = p.window.out_h, p.window.out_w
    acc = np.zeros((x.shape[0] * out_h * out_w, channels), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            acc += _tap(x, p.window, dy, dx).reshape(-1, depth) @ w[:, dy, dx, :].T
    acc = acc.astype(np.int64) + _bias(graph, op, values, channels)
    result = _requantized(acc, p.multipliers, p.shifts, p.output_offset, p.output_min, p.output_max)
    return result.reshape(x.shape[0], out_h, out_w, channels)


def depthwise_conv_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """Output channel c * multiplier + m sees input channel c only, through filter column
    c * multiplier + m; otherwise as CONV_2D."""
    p = prepare_conv(graph, op, _where(graph, op))
    x = _input(values, op, 0).astype(np.int64) + p.input_offset
    w = _input(values, op, 1).astype(np.int64)  # [1, KH, KW, C * M]
    _, kh, kw, channels = w.shape
    depth = x.shape[3]
    multiplier_count = channels // depth
    w = w.reshape(kh, kw, depth, multiplier_count)
    x = _padded(x, p.window, kh, kw, 0)
    out_h, out_w = p.window.out_h, p.window.out_w
    acc = np.zeros((x.shape[0], out_h, out_w, depth, multiplier_count), dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            acc += _tap(x, p.window, dy, dx)[..., None] * w[dy, dx]
    acc = acc.reshape(x.shape[0], out_h, out_w, channels) + _bias(graph, op, values, channels)
    return _requantized(acc, p.multipliers, p.shifts, p.output_offset, p.output_min, p.output_max)


def fully_connected(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """The input flattened to [batches, depth] times the weights [units, depth]. TFLM computes the
    multiplier as a convolution's (input * weight / output in double), per tensor or per channel."""
    weights = _tensor(graph, op, 1)
    w = _input(values, op, 1).astype(np.float64) - _zero_point(weights)  # [O, D]
    channels, depth = w.shape
    p = prepare_fully_connected(graph, op, channels, _where(graph, op))
    x = (_input(values, op, 0).astype(np.float64) + p.input_offset).reshape(-1, depth)
    acc = (x @ w.T).astype(np.int64) + _bias(graph, op, values, channels)
    return _requantized(acc, p.multipliers, p.shifts, p.output_offset, p.output_min, p.output_max)


def add(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """TFLM's int8 ADD: both inputs to a common scale with 20 bits of headroom, then rescaled;
    broadcasting as TFLM does (numpy's rules)."""
    p = prepare_add(graph, op, _where(graph, op))
    a = (_input(values, op, 0).astype(np.int64) + p.input1_offset) << p.left_shift
    b = (_input(values, op, 1).astype(np.int64) + p.input2_offset) << p.left_shift
    total = _rescale(a, p.input1_multiplier, p.input1_shift) + _rescale(b, p.input2_multiplier, p.input2_shift)
    result = _rescale(total, p.output_multiplier, p.output_shift) + p.output_offset
    return _clamp(result, p.output_min, p.output_max)


def average_pool_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """Sum of the raw values inside the input, divided by how many there are, rounded half away
    from zero (TFLM's int8 AveragePool: input and output share scale and zero point)."""
    x = _input(values, op, 0).astype(np.int64)
    p = prepare_pool(graph, op, _where(graph, op))
    kh, kw, window = p.filter_h, p.filter_w, p.window
    padded = _padded(x, window, kh, kw, 0)
    inside = _padded(np.ones((1,) + x.shape[1:3] + (1,), dtype=np.int64), window, kh, kw, 0)
    total = np.zeros((x.shape[0], window.out_h, window.out_w, x.shape[3]), dtype=np.int64)
    count = np.zeros((1, window.out_h, window.out_w, 1), dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            total += _tap(padded, window, dy, dx)
            count += _tap(inside, window, dy, dx)
    result = _round_half_away_divide(total, np.maximum(count, 1))
    return _clamp(result, p.output_min, p.output_max)


def max_pool_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """The largest raw value inside the input under each window, clamped to the activation range."""
    x = _input(values, op, 0).astype(np.int64)
    p = prepare_pool(graph, op, _where(graph, op))
    padded = _padded(x, p.window, p.filter_h, p.filter_w, np.iinfo(np.int64).min)
    result = np.full((x.shape[0], p.window.out_h, p.window.out_w, x.shape[3]), np.iinfo(np.int64).min, dtype=np.int64)
    for dy in range(p.filter_h):
        for dx in range(p.filter_w):
            result = np.maximum(result, _tap(padded, p.window, dy, dx))
    return _clamp(result, p.output_min, p.output_max)


def mean(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """TFLM's int8 MEAN (QuantizedMeanOrSum): the sum of x - zp over the axes, rescaled by
    input/output scale with 1/count folded into the multiplier as far as precision allows. TFLM
    takes this one path for every axis set, keep_dims or not, same quantisation or not."""
    x = _input(values, op, 0).astype(np.int64)
    axes = tuple(sorted({int(a) + x.ndim if int(a) < 0 else int(a) for a in _input(values, op, 1).ravel()}))
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    p = prepare_mean(graph, op, count, _where(graph, op))
    total = (x - p.input_zero_point).sum(axis=axes)
    result = _rescale(total, p.multiplier, p.shift) + p.output_zero_point
    return _clamp(result, -128, 127)


def pad(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """Padding with the output zero point (TFLM's PAD for int8, no constant input)."""
    paddings = op.attrs.get("paddings") or tuple((int(a), int(b)) for a, b in _input(values, op, 1).reshape(-1, 2))
    x = _input(values, op, 0)
    return np.pad(x, paddings, constant_values=_zero_point(_output(graph, op)))


def reshape(graph: Graph, op: Op, values: Values) -> np.ndarray:
    return _input(values, op, 0).reshape(_output(graph, op).shape)


def concatenation(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """A byte-for-byte join. TFLM refuses an int8 CONCATENATION whose inputs differ from the
    output in scale or zero point, or that has a fused activation; so does the reference."""
    out = _output(graph, op)
    where = f"model {graph.name}: op {op.index} (CONCATENATION)"
    if op.attrs.get("activation", "NONE") != "NONE":
        raise UnsupportedOpError(f"{where}: a fused activation ({op.attrs['activation']}) is not supported (TFLM refuses it)")
    for position, t in enumerate(op.inputs):
        inp = graph.tensors[t]
        if out.dtype == "int8" and (np.float32(_scale(inp)) != np.float32(_scale(out)) or _zero_point(inp) != _zero_point(out)):
            raise UnsupportedOpError(
                f"{where}: input {position} '{inp.name}' has scale {_scale(inp):g}, zero point {_zero_point(inp)} but the output "
                f"has {_scale(out):g}, {_zero_point(out)}; TFLM does not requantise in CONCATENATION (insert a QUANTIZE)"
            )
    return np.concatenate([values[t] for t in op.inputs], axis=op.attrs["axis"])


def quantize(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """float32 -> int8 (AffineQuantize) or int8 -> int8 (Requantize, input/output scale in double)."""
    inp, out = _tensor(graph, op, 0), _output(graph, op)
    x = _input(values, op, 0)
    out_zp = _zero_point(out)
    if inp.dtype == "float32":  # AffineQuantize: round(x / scale) in float32, half away from zero
        q = (x.astype(np.float32) / np.float32(_scale(out))).astype(np.float64)
        rounded = np.sign(q) * np.floor(np.abs(q) + 0.5)
        result = np.clip(rounded, INT32_MIN, INT32_MAX).astype(np.int64) + out_zp
    else:  # Requantize
        p = prepare_requantize(graph, op, _where(graph, op))
        result = _rescale(x.astype(np.int64) - p.input_zero_point, p.multiplier, p.shift) + p.output_zero_point
    info = np.iinfo(_NUMPY[out.dtype])
    return _clamp(result, info.min, info.max)


def dequantize(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """scale * (q - zp) as one float32 multiplication."""
    inp = _tensor(graph, op, 0)
    q = (_input(values, op, 0).astype(np.int64) - _zero_point(inp)).astype(np.float32)
    return np.float32(_scale(inp)) * q


# ---- SOFTMAX: gemmlowp fixed point ----
def softmax(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """TFLM's int8 softmax: exp of (x - max) * beta in Q5.26 by gemmlowp's exp_on_negative_values,
    the sum in Q12.19, its reciprocal by Newton-Raphson, output scale 1/256, zero point -128."""
    inp = _tensor(graph, op, 0)
    x = _input(values, op, 0).astype(np.int64)
    p = prepare_softmax(_scale(inp), op.attrs.get("beta", 1.0))
    multiplier, left_shift, diff_min = p.input_multiplier, p.input_left_shift, p.diff_min
    diff = x - x.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    scaled = saturating_rounding_doubling_high_mul(np.where(used, diff, 0) << left_shift, multiplier)
    exps = _exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
    exps_accum = rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS)  # Rescale<12> of a Q0.31
    total = np.where(used, exps_accum, 0).sum(axis=-1, keepdims=True)
    reciprocal, bits_over_unit = _reciprocal(total, ACCUMULATION_INTEGER_BITS)
    exponent = bits_over_unit + 31 - 8
    if np.any(exponent > 31):
        raise OverflowError(
            f"model {graph.name}: op {op.index} (SOFTMAX): a row's sum of exponentials reaches 2^{int(bits_over_unit.max())}, "
            "beyond TFLite's int8 softmax (its output shift would exceed 31; TFLM aborts on this input)"
        )
    unsaturated = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(reciprocal, exps), exponent)
    result = np.where(used, np.clip(unsaturated - 128, -128, 127), -128)
    return result


def _wrap32(x: np.ndarray) -> np.ndarray:
    """Two's complement int32 wrap of int64 values (C's int32 overflow on the targets)."""
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _saturating_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """exp(a) for a Q0.31 in [-1/4, 0): Taylor series around -1/8."""
    srdhm = saturating_rounding_doubling_high_mul
    constant_term = 1895147668  # exp(-1/8) in Q0.31
    one_third = 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(_wrap32(srdhm(_wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return _wrap32(constant_term + srdhm(constant_term, _wrap32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242))


def _exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """exp(a) for a Q(integer_bits) value a <= 0, as a Q0.31 (gemmlowp's exp_on_negative_values)."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _saturating_shift_left(a_mod_quarter_minus_one_quarter, integer_bits)
    )
    remainder = a_mod_quarter_minus_one_quarter - a
    for exponent, factor in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (fractional_bits + exponent)
            result = np.where(remainder & bit, saturating_rounding_doubling_high_mul(result, factor), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) for a Q0.31 in [0, 1): three Newton-Raphson steps in Q2.29."""
    srdhm = saturating_rounding_doubling_high_mul
    total = a + INT32_MAX
    half_denominator = _c_divide(total + np.where(total >= 0, 1, -1), 2)  # RoundingHalfSum(a, 1)
    x = _wrap32(1515870810 + srdhm(half_denominator, -1010580540))  # 48/17 - 32/17 * d
    one = 1 << 29  # 1.0 in Q2.29
    for _ in range(3):
        residual = _wrap32(one - srdhm(half_denominator, x))
        x = _wrap32(x + _saturating_shift_left(srdhm(x, residual), 2))
    return _saturating_shift_left(x, 1)


def _reciprocal(x: np.ndarray, integer_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetReciprocal: (1 / x as a Q0.31 scaled into [0.5, 1), bits of x above one)."""
    x = np.asarray(x, dtype=np.int64)
    headroom_plus_one = 32 - _bit_length(x & 0xFFFFFFFF)
    bits_over_unit = integer_bits - headroom_plus_one
    shifted_minus_one = _wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return _one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), bits_over_unit


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values below 2^32."""
    length = np.zeros_like(x)
    value = x.copy()
    for step in (16, 8, 4, 2, 1):
        high = value >= (1 << step)
        length += np.where(high, step, 0)
        value = np.where(high, value >> step, value)
    return length + (value > 0)


KERNELS: dict[str, Kernel] = {
    "CONV_2D": conv_2d,
    "DEPTHWISE_CONV_2D": depthwise_conv_2d,
    "FULLY_CONNECTED": fully_connected,
    "ADD": add,
    "AVERAGE_POOL_2D": average_pool_2d,
    "MAX_POOL_2D": max_pool_2d,
    "MEAN": mean,
    "PAD": pad,
    "RESHAPE": reshape,
    "SOFTMAX": softmax,
    "CONCATENATION": concatenation,
    "QUANTIZE": quantize,
    "DEQUANTIZE": dequantize,
}
