"""Small int8 graphs with seeded random weights and realistic quantisation, for testing the
reference interpreter and the C kernels against TFLM op by op.

Scales follow what the TFLite converter writes: int8 weights symmetric (zero point 0), per
channel or per tensor; int32 biases at scale input * weight; output scales chosen so that the
int8 output spans its range (about three standard deviations of the accumulator either side)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from engine.ir import Graph, Op, Tensor

# A uniform int8 value has a standard deviation of about 74 steps.
_INT8_STD = 74.0


def _f32(value: float) -> float:
    return float(np.float32(value))


class GraphBuilder:
    """Collects tensors and ops; `graph()` returns the finished Graph."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []

    def tensor(self, name: str, shape: Sequence[int], dtype: str = "int8", scale: Sequence[float] = (),
               zero_point: Sequence[int] = (), data: np.ndarray | None = None, quantized_dimension: int = 0) -> int:
        scale = tuple(_f32(s) for s in scale)
        self.tensors.append(Tensor(name, tuple(int(d) for d in shape), dtype, scale, tuple(int(z) for z in zero_point),
                                   quantized_dimension, data))
        return len(self.tensors) - 1

    def activation(self, name: str, shape: Sequence[int], scale: float, zero_point: int) -> int:
        return self.tensor(name, shape, "int8", (scale,), (zero_point,))

    def int32(self, name: str, values: Sequence) -> int:
        data = np.asarray(values, dtype=np.int32)
        return self.tensor(name, data.shape, "int32", data=data)

    def weights(self, rng: np.random.Generator, name: str, shape: Sequence[int], axis: int, per_channel: bool,
                base_scale: float = 0.005) -> int:
        channels = shape[axis]
        count = channels if per_channel else 1
        scales = base_scale * rng.uniform(0.5, 2.0, size=count)
        data = rng.integers(-127, 128, size=tuple(shape), dtype=np.int8)
        return self.tensor(name, shape, "int8", scales, (0,) * count, data, axis if per_channel else 0)

    def bias(self, rng: np.random.Generator, name: str, channels: int, input_scale: float, weights: int,
             spread: float) -> int:
        """int32 bias at scale input * weight (per channel where the weights are)."""
        w = self.tensors[weights]
        scales = [_f32(input_scale) * s for s in w.scale]
        data = rng.integers(-int(spread), int(spread) + 1, size=channels).astype(np.int32)
        return self.tensor(name, (channels,), "int32", scales, (0,) * len(scales), data)

    def op(self, kind: str, inputs: Sequence[int], outputs: Sequence[int], **attrs) -> Op:
        op = Op(kind, tuple(inputs), tuple(outputs), dict(attrs), index=len(self.ops))
        self.ops.append(op)
        return op

    def graph(self, inputs: Sequence[int], outputs: Sequence[int]) -> Graph:
        return Graph(self.name, self.tensors, self.ops, list(inputs), list(outputs))


# ---- quantisation choices ----
def _input_quant(rng: np.random.Generator) -> tuple[float, int]:
    return float(rng.uniform(0.01, 0.1)), int(rng.integers(-30, 31))


def _output_quant(rng: np.random.Generator, std: float, activation: str) -> tuple[float, int]:
    """An output scale spanning about +-3 standard deviations; after a RELU, [0, 6 std]."""
    scale = 6.0 * std / 255.0 * float(rng.uniform(0.8, 1.25))
    if activation in ("RELU", "RELU6"):
        return scale, -128 + int(rng.integers(0, 8))
    return scale, int(rng.integers(-20, 21))


def _accumulator_std(input_scale: float, weight_scale: float, terms: int) -> float:
    return input_scale * weight_scale * _INT8_STD * _INT8_STD * math.sqrt(terms)


def _mean_scale(builder: GraphBuilder, weights: int) -> float:
    return float(np.mean(builder.tensors[weights].scale))


def _window_out(size: int, k: int, stride: int, padding: str) -> int:
    return (size + stride - 1) // stride if padding == "SAME" else (size + stride - k) // stride


# ---- single-op graphs ----
def conv2d_model(rng: np.random.Generator, h: int, w: int, cin: int, cout: int, k: int | tuple[int, int], stride: int | tuple[int, int],
                 padding: str, activation: str, per_channel: bool) -> Graph:
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    b = GraphBuilder(f"conv_{h}x{w}x{cin}_{cout}_k{kh}x{kw}_s{sh}x{sw}_{padding}_{activation}_{'pc' if per_channel else 'pt'}")
    in_scale, in_zp = _input_quant(rng)
    x = b.activation("input", (1, h, w, cin), in_scale, in_zp)
    weights = b.weights(rng, "weights", (cout, kh, kw, cin), 0, per_channel)
    std = _accumulator_std(in_scale, _mean_scale(b, weights), kh * kw * cin)
    out_scale, out_zp = _output_quant(rng, std, activation)
    bias = b.bias(rng, "bias", cout, in_scale, weights, std / (in_scale * _mean_scale(b, weights)))
    oh, ow = _window_out(h, kh, sh, padding), _window_out(w, kw, sw, padding)
    y = b.activation("output", (1, oh, ow, cout), out_scale, out_zp)
    b.op("CONV_2D", (x, weights, bias), (y,), padding=padding, stride_h=sh, stride_w=sw, activation=activation)
    return b.graph([x], [y])


def depthwise_conv2d_model(rng: np.random.Generator, h: int, w: int, cin: int, multiplier: int, k: int | tuple[int, int],
                           stride: int | tuple[int, int], padding: str, activation: str, per_channel: bool) -> Graph:
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    cout = cin * multiplier
    b = GraphBuilder(f"dw_{h}x{w}x{cin}_m{multiplier}_k{kh}x{kw}_s{sh}x{sw}_{padding}_{activation}_{'pc' if per_channel else 'pt'}")
    in_scale, in_zp = _input_quant(rng)
    x = b.activation("input", (1, h, w, cin), in_scale, in_zp)
    weights = b.weights(rng, "weights", (1, kh, kw, cout), 3, per_channel, base_scale=0.02)
    std = _accumulator_std(in_scale, _mean_scale(b, weights), kh * kw)
    out_scale, out_zp = _output_quant(rng, std, activation)
    bias = b.bias(rng, "bias", cout, in_scale, weights, std / (in_scale * _mean_scale(b, weights)))
    oh, ow = _window_out(h, kh, sh, padding), _window_out(w, kw, sw, padding)
    y = b.activation("output", (1, oh, ow, cout), out_scale, out_zp)
    b.op("DEPTHWISE_CONV_2D", (x, weights, bias), (y,), padding=padding, stride_h=sh, stride_w=sw,
         activation=activation, depth_multiplier=multiplier)
    return b.graph([x], [y])


def fully_connected_model(rng: np.random.Generator, input_shape: Sequence[int], units: int, activation: str,
                          per_channel: bool, with_bias: bool = True) -> Graph:
    """FULLY_CONNECTED over the last `depth` values: input_shape[-1] is the depth when the input
    is 2D; a 4D input is flattened to [1, H*W*C] (batches 1)."""
    input_shape = tuple(input_shape)
    depth = input_shape[-1] if len(input_shape) == 2 else int(np.prod(input_shape[1:]))
    batches = int(np.prod(input_shape)) // depth
    b = GraphBuilder(f"fc_{'x'.join(map(str, input_shape))}_{units}_{activation}_{'pc' if per_channel else 'pt'}")
    in_scale, in_zp = _input_quant(rng)
    x = b.activation("input", input_shape, in_scale, in_zp)
    weights = b.weights(rng, "weights", (units, depth), 0, per_channel)
    std = _accumulator_std(in_scale, _mean_scale(b, weights), depth)
    out_scale, out_zp = _output_quant(rng, std, activation)
    inputs = [x, weights]
    if with_bias:
        inputs.append(b.bias(rng, "bias", units, in_scale, weights, std / (in_scale * _mean_scale(b, weights))))
    else:
        inputs.append(-1)
    y = b.activation("output", (batches, units), out_scale, out_zp)
    b.op("FULLY_CONNECTED", inputs, (y,), activation=activation, keep_num_dims=False)
    return b.graph([x], [y])


def add_model(rng: np.random.Generator, shape_a: Sequence[int], shape_b: Sequence[int], activation: str) -> Graph:
    b = GraphBuilder(f"add_{'x'.join(map(str, shape_a))}_{'x'.join(map(str, shape_b))}_{activation}")
    (sa, za), (sb, zb) = _input_quant(rng), _input_quant(rng)
    sb *= float(rng.choice([0.3, 1.0, 3.0]))
    a = b.activation("a", shape_a, sa, za)
    c = b.activation("b", shape_b, sb, zb)
    std = math.hypot(sa, sb) * _INT8_STD
    out_scale, out_zp = _output_quant(rng, std, activation)
    shape = np.broadcast_shapes(tuple(shape_a), tuple(shape_b))
    y = b.activation("output", shape, out_scale, out_zp)
    b.op("ADD", (a, c), (y,), activation=activation)
    return b.graph([a, c], [y])


def pool_model(rng: np.random.Generator, kind: str, h: int, w: int, c: int, filter_size: int | tuple[int, int],
               stride: int | tuple[int, int], padding: str, activation: str = "NONE") -> Graph:
    """AVERAGE_POOL_2D or MAX_POOL_2D; input and output share scale and zero point, as TFLite's
    converter writes them."""
    fh, fw = (filter_size, filter_size) if isinstance(filter_size, int) else filter_size
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    b = GraphBuilder(f"{kind.lower()}_{h}x{w}x{c}_f{fh}x{fw}_s{sh}x{sw}_{padding}_{activation}")
    scale, zp = _input_quant(rng)
    x = b.activation("input", (1, h, w, c), scale, zp)
    y = b.activation("output", (1, _window_out(h, fh, sh, padding), _window_out(w, fw, sw, padding), c), scale, zp)
    b.op(kind, (x,), (y,), padding=padding, stride_h=sh, stride_w=sw, activation=activation, filter_h=fh, filter_w=fw)
    return b.graph([x], [y])


def mean_model(rng: np.random.Generator, shape: Sequence[int], axes: Sequence[int], keep_dims: bool,
               same_quantization: bool = False) -> Graph:
    """MEAN with the axis tensor written as given (negative or unsorted axes kept: TFLM's special
    case for H,W looks at the raw tensor)."""
    shape = tuple(shape)
    rank = len(shape)
    resolved = sorted({a + rank if a < 0 else a for a in axes})
    b = GraphBuilder(f"mean_{'x'.join(map(str, shape))}_ax{'_'.join(map(str, axes))}_{'keep' if keep_dims else 'drop'}"
                     f"{'_same' if same_quantization else ''}")
    in_scale, in_zp = _input_quant(rng)
    x = b.activation("input", shape, in_scale, in_zp)
    axis = b.int32("axis", list(axes))
    if same_quantization:
        out_scale, out_zp = in_scale, in_zp
    else:
        count = int(np.prod([shape[a] for a in resolved]))
        out_scale, out_zp = _output_quant(rng, in_scale * _INT8_STD / math.sqrt(count), "NONE")
    out_shape = tuple(1 if i in resolved else d for i, d in enumerate(shape)) if keep_dims else tuple(
        d for i, d in enumerate(shape) if i not in resolved)
    y = b.activation("output", out_shape, out_scale, out_zp)
    b.op("MEAN", (x, axis), (y,), axes=tuple(resolved), keep_dims=keep_dims)
    return b.graph([x], [y])


def pad_model(rng: np.random.Generator, shape: Sequence[int], paddings: Sequence[tuple[int, int]]) -> Graph:
    shape = tuple(shape)
    paddings = tuple((int(a), int(z)) for a, z in paddings)
    b = GraphBuilder(f"pad_{'x'.join(map(str, shape))}_{'_'.join(f'{a}-{z}' for a, z in paddings)}")
    scale, zp = _input_quant(rng)
    x = b.activation("input", shape, scale, zp)
    p = b.int32("paddings", [list(pair) for pair in paddings])
    y = b.activation("output", tuple(d + a + z for d, (a, z) in zip(shape, paddings)), scale, zp)
    b.op("PAD", (x, p), (y,), paddings=paddings)
    return b.graph([x], [y])


def reshape_model(rng: np.random.Generator, shape: Sequence[int], new_shape: Sequence[int]) -> Graph:
    b = GraphBuilder(f"reshape_{'x'.join(map(str, shape))}_{'x'.join(map(str, new_shape))}")
    scale, zp = _input_quant(rng)
    x = b.activation("input", shape, scale, zp)
    s = b.int32("shape", list(new_shape))
    y = b.activation("output", new_shape, scale, zp)
    b.op("RESHAPE", (x, s), (y,))
    return b.graph([x], [y])


def softmax_model(rng: np.random.Generator, shape: Sequence[int], input_scale: float, beta: float = 1.0) -> Graph:
    """int8 SOFTMAX; the output is fixed at scale 1/256, zero point -128 (TFLite's requirement)."""
    b = GraphBuilder(f"softmax_{'x'.join(map(str, shape))}_s{input_scale:g}_b{beta:g}")
    x = b.activation("input", shape, input_scale, int(rng.integers(-20, 21)))
    y = b.activation("output", shape, 1.0 / 256, -128)
    b.op("SOFTMAX", (x,), (y,), beta=float(np.float32(beta)))
    return b.graph([x], [y])


def concatenation_model(rng: np.random.Generator, shapes: Sequence[Sequence[int]], axis: int, same_quantization: bool) -> Graph:
    shapes = [tuple(s) for s in shapes]
    rank = len(shapes[0])
    axis = axis + rank if axis < 0 else axis
    b = GraphBuilder(f"concat_{len(shapes)}_ax{axis}_{'same' if same_quantization else 'mixed'}")
    scale, zp = _input_quant(rng)
    inputs = []
    for i, shape in enumerate(shapes):
        s, z = (scale, zp) if same_quantization else _input_quant(rng)
        inputs.append(b.activation(f"input{i}", shape, s, z))
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    y = b.activation("output", out_shape, scale, zp)
    b.op("CONCATENATION", inputs, (y,), axis=axis, activation="NONE")
    return b.graph(inputs, [y])


def quantize_model(rng: np.random.Generator, shape: Sequence[int]) -> Graph:
    """float32 -> int8."""
    b = GraphBuilder(f"quantize_{'x'.join(map(str, shape))}")
    x = b.tensor("input", shape, "float32")
    scale, zp = _input_quant(rng)
    y = b.activation("output", shape, scale, zp)
    b.op("QUANTIZE", (x,), (y,))
    return b.graph([x], [y])


def requantize_model(rng: np.random.Generator, shape: Sequence[int], ratio: float) -> Graph:
    """int8 -> int8 with output scale = input scale * ratio."""
    b = GraphBuilder(f"requantize_{'x'.join(map(str, shape))}_r{ratio:g}")
    scale, zp = _input_quant(rng)
    x = b.activation("input", shape, scale, zp)
    y = b.activation("output", shape, scale * ratio, int(rng.integers(-30, 31)))
    b.op("QUANTIZE", (x,), (y,))
    return b.graph([x], [y])


def dequantize_model(rng: np.random.Generator, shape: Sequence[int]) -> Graph:
    b = GraphBuilder(f"dequantize_{'x'.join(map(str, shape))}")
    scale, zp = _input_quant(rng)
    x = b.activation("input", shape, scale, zp)
    y = b.tensor("output", shape, "float32")
    b.op("DEQUANTIZE", (x,), (y,))
    return b.graph([x], [y])


# ---- a small network using every op kind ----
def chain_model(rng: np.random.Generator, h: int = 12, w: int = 10, c: int = 3, classes: int = 5) -> Graph:
    """float input -> QUANTIZE -> PAD -> CONV (VALID, RELU6) -> DEPTHWISE (stride 2) and MAX_POOL
    -> ADD -> CONCATENATION -> AVERAGE_POOL -> MEAN -> RESHAPE -> FULLY_CONNECTED -> SOFTMAX ->
    DEQUANTIZE: every op kind, quantisation carried from op to op."""
    b = GraphBuilder("chain")
    x_float = b.tensor("input", (1, h, w, c), "float32")
    in_scale, in_zp = 1 / 64, int(rng.integers(-10, 11))
    x = b.activation("x_q", (1, h, w, c), in_scale, in_zp)
    b.op("QUANTIZE", (x_float,), (x,))

    paddings = ((0, 0), (1, 1), (1, 1), (0, 0))
    padded = b.activation("padded", (1, h + 2, w + 2, c), in_scale, in_zp)
    b.op("PAD", (x, b.int32("paddings", [list(p) for p in paddings])), (padded,), paddings=paddings)

    channels = 8
    cw = b.weights(rng, "conv_w", (channels, 3, 3, c), 0, True)
    std = _accumulator_std(in_scale, _mean_scale(b, cw), 9 * c)
    conv_scale = 6.0 / 255 if std * 3 > 6 else 3 * std / 255
    cb = b.bias(rng, "conv_b", channels, in_scale, cw, std / (in_scale * _mean_scale(b, cw)))
    conv = b.activation("conv", (1, h, w, channels), conv_scale, -128)
    b.op("CONV_2D", (padded, cw, cb), (conv,), padding="VALID", stride_h=1, stride_w=1, activation="RELU6")

    oh, ow = (h + 1) // 2, (w + 1) // 2
    dww = b.weights(rng, "dw_w", (1, 3, 3, channels), 3, True, base_scale=0.02)
    std = _accumulator_std(conv_scale, _mean_scale(b, dww), 9)
    dw_scale, dw_zp = _output_quant(rng, std, "RELU")
    dwb = b.bias(rng, "dw_b", channels, conv_scale, dww, std / (conv_scale * _mean_scale(b, dww)))
    dw = b.activation("dw", (1, oh, ow, channels), dw_scale, dw_zp)
    b.op("DEPTHWISE_CONV_2D", (conv, dww, dwb), (dw,), padding="SAME", stride_h=2, stride_w=2, activation="RELU",
         depth_multiplier=1)
    pooled = b.activation("maxpool", (1, oh, ow, channels), conv_scale, -128)
    b.op("MAX_POOL_2D", (conv,), (pooled,), padding="SAME", stride_h=2, stride_w=2, activation="NONE", filter_h=2, filter_w=2)

    sum_scale, sum_zp = _output_quant(rng, math.hypot(dw_scale, conv_scale) * _INT8_STD, "NONE")
    summed = b.activation("sum", (1, oh, ow, channels), sum_scale, sum_zp)
    b.op("ADD", (dw, pooled), (summed,), activation="NONE")
    cat = b.activation("concat", (1, oh, ow, 2 * channels), sum_scale, sum_zp)
    b.op("CONCATENATION", (summed, summed), (cat,), axis=3, activation="NONE")

    ph, pw = oh // 2, ow // 2
    avg = b.activation("avgpool", (1, ph, pw, 2 * channels), sum_scale, sum_zp)
    b.op("AVERAGE_POOL_2D", (cat,), (avg,), padding="VALID", stride_h=2, stride_w=2, activation="NONE", filter_h=2, filter_w=2)
    mean_scale, mean_zp = sum_scale / 2, int(rng.integers(-10, 11))
    mean = b.activation("mean", (1, 1, 1, 2 * channels), mean_scale, mean_zp)
    b.op("MEAN", (avg, b.int32("axes", [1, 2])), (mean,), axes=(1, 2), keep_dims=True)
    flat = b.activation("flat", (1, 2 * channels), mean_scale, mean_zp)
    b.op("RESHAPE", (mean, b.int32("shape", [1, 2 * channels])), (flat,))

    fw = b.weights(rng, "fc_w", (classes, 2 * channels), 0, False)
    std = _accumulator_std(mean_scale, _mean_scale(b, fw), 2 * channels)
    fb = b.bias(rng, "fc_b", classes, mean_scale, fw, std / (mean_scale * _mean_scale(b, fw)))
    logits_scale, logits_zp = _output_quant(rng, std, "NONE")
    # Scale weights, bias and logits together (the integers and the multiplier stay as they are)
    # so that logits are a few units apart and the softmax is not one-hot.
    factor = 0.03 / logits_scale
    for t in (fw, fb):
        b.tensors[t].scale = tuple(_f32(v * factor) for v in b.tensors[t].scale)
    logits_scale *= factor
    logits = b.activation("logits", (1, classes), logits_scale, logits_zp)
    b.op("FULLY_CONNECTED", (flat, fw, fb), (logits,), activation="NONE", keep_num_dims=False)
    probs = b.activation("probs", (1, classes), 1 / 256, -128)
    b.op("SOFTMAX", (logits,), (probs,), beta=1.0)
    out = b.tensor("output", (1, classes), "float32")
    b.op("DEQUANTIZE", (probs,), (out,))
    return b.graph([x_float], [out])


def random_inputs(graph: Graph, rng: np.random.Generator) -> list[np.ndarray]:
    """Uniform int8 inputs; float inputs spread over about twice their quantised range."""
    values = []
    for index in graph.inputs:
        t = graph.tensors[index]
        if t.dtype == "int8":
            values.append(rng.integers(-128, 128, size=t.shape, dtype=np.int8))
        else:
            values.append(rng.uniform(-2.0, 2.0, size=t.shape).astype(np.float32))
    return values
