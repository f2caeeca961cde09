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
from engine.quant import (
    INT32_MAX,
    INT32_MIN,
    activation_range,
    effective_scale,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
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


def _output_range(graph: Graph, op: Op) -> tuple[int, int]:
    out = _output(graph, op)
    return activation_range(op.attrs.get("activation", "NONE"), _scale(out), _zero_point(out))


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


def _channel_multipliers(input_scale: float, weights: Tensor, output_scale: float, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel (multiplier, shift), a per-tensor scale broadcast (TFLM's
    PopulateConvolutionQuantizationParams)."""
    scales = weights.scale if weights.per_channel else weights.scale * channels
    pairs = [quantize_multiplier(effective_scale(input_scale, s, output_scale)) for s in scales]
    return np.array([m for m, _ in pairs], dtype=np.int64), np.array([s for _, s in pairs], dtype=np.int64)


def _bias(graph: Graph, op: Op, values: Values, channels: int) -> np.ndarray:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return values[op.inputs[2]].astype(np.int64).reshape(channels)
    return np.zeros(channels, dtype=np.int64)


# ---- windows: TFLite's output size and padding ----
def _out_size(size: int, filter_size: int, stride: int, padding: str) -> int:
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size + stride - filter_size) // stride


def _pad_before(size: int, filter_size: int, stride: int, out: int) -> int:
    """TFLite's ComputePadding (dilation 1): half the total, the odd one going after."""
    total = (out - 1) * stride + filter_size - size
    return max(int(total / 2), 0)  # C division truncates toward zero


def _window_geometry(op: Op, height: int, width: int, kh: int, kw: int) -> tuple[int, int, int, int]:
    """(out_h, out_w, pad_top, pad_left) for the op's stride and padding."""
    sh, sw, padding = op.attrs["stride_h"], op.attrs["stride_w"], op.attrs["padding"]
    if padding == "EXPLICIT":  # a folded PAD (engine.fold)
        a = op.attrs
        out_h = (height + a["pad_top"] + a["pad_bottom"] - kh) // sh + 1
        out_w = (width + a["pad_left"] + a["pad_right"] - kw) // sw + 1
        return out_h, out_w, a["pad_top"], a["pad_left"]
    out_h, out_w = _out_size(height, kh, sh, padding), _out_size(width, kw, sw, padding)
    return out_h, out_w, _pad_before(height, kh, sh, out_h), _pad_before(width, kw, sw, out_w)


def _padded(x: np.ndarray, op: Op, kh: int, kw: int, fill: int) -> tuple[np.ndarray, int, int]:
    """x [N, H, W, C] with `fill` around it, cut so that every window of every output fits."""
    _, height, width, _ = x.shape
    out_h, out_w, top, left = _window_geometry(op, height, width, kh, kw)
    need_h = (out_h - 1) * op.attrs["stride_h"] + kh
    need_w = (out_w - 1) * op.attrs["stride_w"] + kw
    bottom, right = need_h - height - top, need_w - width - left
    x = np.pad(x, ((0, 0), (top, max(bottom, 0)), (left, max(right, 0)), (0, 0)), constant_values=fill)
    return x[:, :need_h, :need_w, :], out_h, out_w


def _tap(x: np.ndarray, op: Op, dy: int, dx: int, out_h: int, out_w: int) -> np.ndarray:
    """The input values that filter tap (dy, dx) meets, for every output position."""
    sh, sw = op.attrs["stride_h"], op.attrs["stride_w"]
    return x[:, dy : dy + sh * (out_h - 1) + 1 : sh, dx : dx + sw * (out_w - 1) + 1 : sw, :]


# ---- kernels, one per op kind ----
def conv_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """sum((x - zp_in) * w) + bias over each window (padding contributes nothing), rescaled per
    output channel, plus zp_out, clamped to the fused activation's range."""
    inp, weights, out = _tensor(graph, op, 0), _tensor(graph, op, 1), _output(graph, op)
    x = _input(values, op, 0).astype(np.float64) - _zero_point(inp)
    w = _input(values, op, 1).astype(np.float64)  # [O, KH, KW, I]; int8 filters are symmetric
    channels, kh, kw, depth = w.shape
    if x.shape[3] != depth:
        raise UnsupportedOpError(
            f"model {graph.name}: op {op.index} (CONV_2D): grouped convolution ({x.shape[3]} input channels, filter depth {depth}) is not supported"
        )
    x, out_h, out_w = _padded(x, op, kh, kw, 0)
    acc = np.zeros((x.shape[0] * out_h * out_w, channels), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            acc += _tap(x, op, dy, dx, out_h, out_w).reshape(-1, depth) @ w[:, dy, dx, :].T
    acc = acc.astype(np.int64) + _bias(graph, op, values, channels)
    multiplier, shift = _channel_multipliers(_scale(inp), weights, _scale(out), channels)
    result = _rescale(acc, multiplier, shift) + _zero_point(out)
    return _clamp(result, *_output_range(graph, op)).reshape(x.shape[0], out_h, out_w, channels)


def depthwise_conv_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """Output channel c * multiplier + m sees input channel c only, through filter column
    c * multiplier + m; otherwise as CONV_2D."""
    inp, weights, out = _tensor(graph, op, 0), _tensor(graph, op, 1), _output(graph, op)
    x = _input(values, op, 0).astype(np.int64) - _zero_point(inp)
    w = _input(values, op, 1).astype(np.int64)  # [1, KH, KW, C * M]
    _, kh, kw, channels = w.shape
    depth = x.shape[3]
    multiplier_count = channels // depth
    w = w.reshape(kh, kw, depth, multiplier_count)
    x, out_h, out_w = _padded(x, op, kh, kw, 0)
    acc = np.zeros((x.shape[0], out_h, out_w, depth, multiplier_count), dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            acc += _tap(x, op, dy, dx, out_h, out_w)[..., None] * w[dy, dx]
    acc = acc.reshape(x.shape[0], out_h, out_w, channels) + _bias(graph, op, values, channels)
    multiplier, shift = _channel_multipliers(_scale(inp), weights, _scale(out), channels)
    result = _rescale(acc, multiplier, shift) + _zero_point(out)
    return _clamp(result, *_output_range(graph, op))


def fully_connected(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """The input flattened to [batches, depth] times the weights [units, depth]. TFLM computes the
    multiplier as a convolution's (input * weight / output in double), per tensor or per channel."""
    inp, weights, out = _tensor(graph, op, 0), _tensor(graph, op, 1), _output(graph, op)
    w = _input(values, op, 1).astype(np.float64) - _zero_point(weights)  # [O, D]
    channels, depth = w.shape
    x = (_input(values, op, 0).astype(np.float64) - _zero_point(inp)).reshape(-1, depth)
    acc = (x @ w.T).astype(np.int64) + _bias(graph, op, values, channels)
    multiplier, shift = _channel_multipliers(_scale(inp), weights, _scale(out), channels)
    result = _rescale(acc, multiplier, shift) + _zero_point(out)
    return _clamp(result, *_output_range(graph, op))


def add(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """TFLM's int8 ADD: both inputs to a common scale with 20 bits of headroom, then rescaled;
    broadcasting as TFLM does (numpy's rules)."""
    first, second, out = _tensor(graph, op, 0), _tensor(graph, op, 1), _output(graph, op)
    left_shift = 20
    twice_max = 2 * float(max(np.float32(_scale(first)), np.float32(_scale(second))))
    m1, s1 = quantize_multiplier(float(np.float32(_scale(first))) / twice_max)
    m2, s2 = quantize_multiplier(float(np.float32(_scale(second))) / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * float(np.float32(_scale(out)))))
    a = (_input(values, op, 0).astype(np.int64) - _zero_point(first)) << left_shift
    b = (_input(values, op, 1).astype(np.int64) - _zero_point(second)) << left_shift
    total = _rescale(a, m1, s1) + _rescale(b, m2, s2)
    result = _rescale(total, mo, so) + _zero_point(out)
    return _clamp(result, *_output_range(graph, op))


def average_pool_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """Sum of the raw values inside the input, divided by how many there are, rounded half away
    from zero (TFLM's int8 AveragePool: input and output share scale and zero point)."""
    x = _input(values, op, 0).astype(np.int64)
    kh, kw = op.attrs["filter_h"], op.attrs["filter_w"]
    padded, out_h, out_w = _padded(x, op, kh, kw, 0)
    inside, _, _ = _padded(np.ones((1,) + x.shape[1:3] + (1,), dtype=np.int64), op, kh, kw, 0)
    total = np.zeros((x.shape[0], out_h, out_w, x.shape[3]), dtype=np.int64)
    count = np.zeros((1, out_h, out_w, 1), dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            total += _tap(padded, op, dy, dx, out_h, out_w)
            count += _tap(inside, op, dy, dx, out_h, out_w)
    result = _round_half_away_divide(total, np.maximum(count, 1))
    return _clamp(result, *_output_range(graph, op))


def max_pool_2d(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """The largest raw value inside the input under each window, clamped to the activation range."""
    x = _input(values, op, 0).astype(np.int64)
    kh, kw = op.attrs["filter_h"], op.attrs["filter_w"]
    padded, out_h, out_w = _padded(x, op, kh, kw, np.iinfo(np.int64).min)
    result = np.full((x.shape[0], out_h, out_w, x.shape[3]), np.iinfo(np.int64).min, dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            result = np.maximum(result, _tap(padded, op, dy, dx, out_h, out_w))
    return _clamp(result, *_output_range(graph, op))


def mean(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """TFLM's int8 MEAN (QuantizedMeanOrSum): the sum of x - zp over the axes, rescaled by
    input/output scale with 1/count folded into the multiplier as far as precision allows. TFLM
    takes this one path for every axis set, keep_dims or not, same quantisation or not."""
    inp, out = _tensor(graph, op, 0), _output(graph, op)
    x = _input(values, op, 0).astype(np.int64)
    axes = tuple(sorted({int(a) + x.ndim if int(a) < 0 else int(a) for a in _input(values, op, 1).ravel()}))
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    multiplier, shift = quantize_multiplier(float(np.float32(_scale(inp))) / float(np.float32(_scale(out))))
    fold = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << fold) // count
    shift -= fold
    total = (x - _zero_point(inp)).sum(axis=axes)
    result = _rescale(total, multiplier, shift) + _zero_point(out)
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
        multiplier, shift = quantize_multiplier(float(np.float32(_scale(inp))) / float(np.float32(_scale(out))))
        result = _rescale(x.astype(np.int64) - _zero_point(inp), multiplier, shift) + out_zp
    info = np.iinfo(_NUMPY[out.dtype])
    return _clamp(result, info.min, info.max)


def dequantize(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """scale * (q - zp) as one float32 multiplication."""
    inp = _tensor(graph, op, 0)
    q = (_input(values, op, 0).astype(np.int64) - _zero_point(inp)).astype(np.float32)
    return np.float32(_scale(inp)) * q


# ---- SOFTMAX: gemmlowp fixed point ----
_SCALED_DIFF_INTEGER_BITS = 5
_ACCUMULATION_INTEGER_BITS = 12


def softmax(graph: Graph, op: Op, values: Values) -> np.ndarray:
    """TFLM's int8 softmax: exp of (x - max) * beta in Q5.26 by gemmlowp's exp_on_negative_values,
    the sum in Q12.19, its reciprocal by Newton-Raphson, output scale 1/256, zero point -128."""
    inp = _tensor(graph, op, 0)
    x = _input(values, op, 0).astype(np.int64)
    multiplier, left_shift, diff_min = softmax_parameters(_scale(inp), op.attrs.get("beta", 1.0))
    diff = x - x.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    scaled = saturating_rounding_doubling_high_mul(np.where(used, diff, 0) << left_shift, multiplier)
    exps = _exp_on_negative_values(scaled, _SCALED_DIFF_INTEGER_BITS)
    exps_accum = rounding_divide_by_pot(exps, _ACCUMULATION_INTEGER_BITS)  # Rescale<12> of a Q0.31
    total = np.where(used, exps_accum, 0).sum(axis=-1, keepdims=True)
    reciprocal, bits_over_unit = _reciprocal(total, _ACCUMULATION_INTEGER_BITS)
    exponent = bits_over_unit + 31 - 8
    if np.any(exponent > 31):
        raise OverflowError(
            f"model {graph.name}: op {op.index} (SOFTMAX): a row's sum of exponentials reaches 2^{int(bits_over_unit.max())}, "
            "beyond TFLite's int8 softmax (its output shift would exceed 31; TFLM aborts on this input)"
        )
    unsaturated = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(reciprocal, exps), exponent)
    result = np.where(used, np.clip(unsaturated - 128, -128, 127), -128)
    return result


def softmax_parameters(input_scale: float, beta: float) -> tuple[int, int, int]:
    """(input multiplier, left shift, diff_min): TFLite's PreprocessSoftmaxScaling and
    CalculateInputRadius for Q5.26 differences."""
    real = min(
        float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << (31 - _SCALED_DIFF_INTEGER_BITS)),
        (1 << 31) - 1.0,
    )
    multiplier, left_shift = quantize_multiplier(real)
    radius = ((1 << _SCALED_DIFF_INTEGER_BITS) - 1) * (1 << (31 - _SCALED_DIFF_INTEGER_BITS)) / (1 << left_shift)
    return multiplier, left_shift, -int(np.floor(radius))


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
