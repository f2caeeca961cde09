"""Seeded random graphs for differential testing: small networks of the shapes MCUNet-style models
are made of (a first layer on 1 to 4 channels, inverted-residual blocks, heads), with the options
that choose kernel variants drawn at random: explicit PADs (symmetric or not) that fold into the
convolution after them, kernels 1/3/5/7, strides 1 and 2, SAME and VALID padding, odd sizes,
expand ratios 3/4/6, depth multipliers, per-channel weight scales with extreme and negative
values, and RELU, RELU6 or no activation.

`random_graph(seed)` is deterministic. Graphs stay small (a few thousand values a tensor) so that
hundreds of them build and run in seconds; each has one int8 input and one output."""
from __future__ import annotations

from typing import Callable

import numpy as np

from engine.ir import Graph
from engine.synth import GraphBuilder, _accumulator_std, _input_quant, _output_quant

ACTIVATIONS = ("NONE", "RELU", "RELU6")
EXPAND_RATIOS = (3, 4, 6)
KERNELS = (1, 3, 5, 7)
# ADD's output multipliers (2 max(input scales) / (2^20 output scale)) of the modes other than the usual one.
ADD_OUTPUT_MULTIPLIERS = ((2.0 ** -30, 2.0 ** -25), (0.13, 0.49), (0.5, 0.95))
# Effective scales (input * weight / output) forced onto a few channels, by requantisation mode:
# a right shift of 1 or 2 (RQ_ANY), more than 23 (RQ_EVEN), or none (the portable mode).
EXTREME_SCALES = {"any": (0.26, 0.49), "even": (2.0 ** -30, 2.0 ** -25), "portable": (0.5, 4.0)}


class _Net:
    """A chain of layers on one running tensor, each layer's quantisation taken from the last."""

    def __init__(self, rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> None:
        self.rng = rng
        self.b = GraphBuilder(name)
        scale, zp = _input_quant(rng)
        self.input = self.x = self.b.activation("input", shape, scale, zp)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.b.tensors[self.x].shape

    def quant(self, tensor: int | None = None) -> tuple[float, int]:
        t = self.b.tensors[self.x if tensor is None else tensor]
        return t.scale[0], t.zero_point[0]

    def activation(self) -> str:
        return str(self.rng.choice(ACTIVATIONS))

    def _extremes(self, weights: int, in_scale: float, out_scale: float, axis_channels: int) -> None:
        """Give a few channels a negative scale or an effective scale of an extreme requantisation mode."""
        t = self.b.tensors[weights]
        if len(t.scale) < 2 or self.rng.random() < 0.35:
            return
        scales = list(t.scale)
        for c in self.rng.choice(axis_channels, size=min(axis_channels, int(self.rng.integers(1, 4))), replace=False):
            kind = self.rng.choice(["negative", *EXTREME_SCALES])
            if kind == "negative":
                scales[c] = -scales[c]
            else:
                low, high = EXTREME_SCALES[kind]
                sign = -1.0 if self.rng.random() < 0.3 else 1.0
                scales[c] = sign * float(np.float32(self.rng.uniform(low, high) * out_scale / in_scale))
        t.scale = tuple(float(np.float32(s)) for s in scales)

    def pad(self, top: int, bottom: int, left: int, right: int) -> None:
        n, h, w, c = self.shape
        paddings = ((0, 0), (top, bottom), (left, right), (0, 0))
        scale, zp = self.quant()
        y = self.b.activation("padded", (n, h + top + bottom, w + left + right, c), scale, zp)
        self.b.op("PAD", (self.x, self.b.int32("paddings", [list(p) for p in paddings])), (y,), paddings=paddings)
        self.x = y

    def conv(self, co: int, k: tuple[int, int], stride: int, padding: str, activation: str | None = None) -> None:
        n, h, w, ci = self.shape
        activation = activation or self.activation()
        in_scale, _ = self.quant()
        weights = self.b.weights(self.rng, "conv_w", (co, k[0], k[1], ci), 0, per_channel=self.rng.random() < 0.8)
        mean_w = float(np.mean(np.abs(self.b.tensors[weights].scale)))
        std = _accumulator_std(in_scale, mean_w, k[0] * k[1] * ci)
        out_scale, out_zp = _output_quant(self.rng, std, activation)
        bias = self.b.bias(self.rng, "conv_b", co, in_scale, weights, std / (in_scale * mean_w))
        self._extremes(weights, in_scale, out_scale, co)
        oh, ow = _out(h, k[0], stride, padding), _out(w, k[1], stride, padding)
        y = self.b.activation("conv", (n, oh, ow, co), out_scale, out_zp)
        self.b.op("CONV_2D", (self.x, weights, bias), (y,), padding=padding, stride_h=stride, stride_w=stride,
                  activation=activation)
        self.x = y

    def depthwise(self, multiplier: int, k: tuple[int, int], stride: int, padding: str) -> None:
        n, h, w, c = self.shape
        activation = self.activation()
        in_scale, _ = self.quant()
        co = c * multiplier
        weights = self.b.weights(self.rng, "dw_w", (1, k[0], k[1], co), 3, per_channel=self.rng.random() < 0.8,
                                 base_scale=0.02)
        mean_w = float(np.mean(np.abs(self.b.tensors[weights].scale)))
        std = _accumulator_std(in_scale, mean_w, k[0] * k[1])
        out_scale, out_zp = _output_quant(self.rng, std, activation)
        bias = self.b.bias(self.rng, "dw_b", co, in_scale, weights, std / (in_scale * mean_w))
        self._extremes(weights, in_scale, out_scale, co)
        oh, ow = _out(h, k[0], stride, padding), _out(w, k[1], stride, padding)
        y = self.b.activation("dw", (n, oh, ow, co), out_scale, out_zp)
        self.b.op("DEPTHWISE_CONV_2D", (self.x, weights, bias), (y,), padding=padding, stride_h=stride,
                  stride_w=stride, activation=activation, depth_multiplier=multiplier)
        self.x = y

    def fully_connected(self, units: int, batches: int = 1) -> None:
        depth = int(np.prod(self.shape)) // batches
        if self.shape != (batches, depth):
            self.reshape((batches, depth))
        activation = self.activation()
        in_scale, _ = self.quant()
        per_channel = self.rng.random() < 0.5
        weights = self.b.weights(self.rng, "fc_w", (units, depth), 0, per_channel)
        if not per_channel and self.rng.random() < 0.25:  # a weight zero point (TFLM takes it for per-tensor weights)
            self.b.tensors[weights].zero_point = (int(self.rng.integers(-20, 21)),)
        mean_w = float(np.mean(np.abs(self.b.tensors[weights].scale)))
        std = _accumulator_std(in_scale, mean_w, depth)
        out_scale, out_zp = _output_quant(self.rng, std, activation)
        with_bias = self.rng.random() < 0.8
        bias = self.b.bias(self.rng, "fc_b", units, in_scale, weights, std / (in_scale * mean_w)) if with_bias else -1
        if per_channel:
            self._extremes(weights, in_scale, out_scale, units)
        y = self.b.activation("fc", (batches, units), out_scale, out_zp)
        self.b.op("FULLY_CONNECTED", (self.x, weights, bias), (y,), activation=activation, keep_num_dims=False)
        self.x = y

    def reshape(self, shape: tuple[int, ...]) -> None:
        scale, zp = self.quant()
        y = self.b.activation("reshaped", shape, scale, zp)
        self.b.op("RESHAPE", (self.x, self.b.int32("shape", list(shape))), (y,))
        self.x = y

    def add(self, other: int, broadcast_shape: tuple[int, ...] | None = None) -> None:
        """ADD of the running tensor and `other` (an earlier tensor, or a constant). A third of the
        time the output scale puts the output multiplier, twice the larger input scale over 2^20
        times the output scale, in the range of another requantisation mode."""
        activation = self.activation()
        (sa, _), (sb, _) = self.quant(), self.quant(other)
        std = float(np.hypot(sa, sb)) * 74.0
        out_scale, out_zp = _output_quant(self.rng, std, activation)
        if self.rng.random() < 0.5:
            low, high = ADD_OUTPUT_MULTIPLIERS[int(self.rng.integers(len(ADD_OUTPUT_MULTIPLIERS)))]
            out_scale = float(np.float32(2 * max(sa, sb) / (2 ** 20 * self.rng.uniform(low, high))))
        y = self.b.activation("sum", broadcast_shape or self.shape, out_scale, out_zp)
        self.b.op("ADD", (self.x, other), (y,), activation=activation)
        self.x = y

    def pool(self, kind: str, f: int, stride: int, padding: str) -> None:
        n, h, w, c = self.shape
        scale, zp = self.quant()
        y = self.b.activation("pool", (n, _out(h, f, stride, padding), _out(w, f, stride, padding), c), scale, zp)
        self.b.op(kind, (self.x,), (y,), padding=padding, stride_h=stride, stride_w=stride, activation="NONE",
                  filter_h=f, filter_w=f)
        self.x = y

    def mean(self) -> None:
        n, h, w, c = self.shape
        in_scale, _ = self.quant()
        out_scale, out_zp = _output_quant(self.rng, in_scale * 74.0 / np.sqrt(h * w), "NONE")
        y = self.b.activation("mean", (n, 1, 1, c), out_scale, out_zp)
        self.b.op("MEAN", (self.x, self.b.int32("axes", [1, 2])), (y,), axes=(1, 2), keep_dims=True)
        self.x = y

    def constant(self, shape: tuple[int, ...]) -> int:
        scale, zp = _input_quant(self.rng)
        data = self.rng.integers(-128, 128, size=shape, dtype=np.int8)
        return self.b.tensor("constant", shape, "int8", (scale,), (zp,), data)

    def softmax(self) -> None:
        y = self.b.activation("probs", self.shape, 1.0 / 256, -128)
        self.b.op("SOFTMAX", (self.x,), (y,), beta=1.0)
        self.x = y

    def graph(self) -> Graph:
        return self.b.graph([self.input], [self.x])


def _out(size: int, k: int, stride: int, padding: str) -> int:
    return (size + stride - 1) // stride if padding == "SAME" else (size + stride - k) // stride


def _size(rng: np.random.Generator, low: int, high: int) -> int:
    return int(rng.integers(low, high + 1))


def _window(rng: np.random.Generator, net: _Net, k: int) -> tuple[int, str]:
    """A stride and a padding for a k x k window: an explicit PAD before it (then VALID) a third of
    the time, symmetric or not."""
    stride = int(rng.choice((1, 2)))
    if k > 1 and rng.random() < 0.35:
        half = k // 2
        if rng.random() < 0.5:
            net.pad(half, half, half, half)
        else:
            net.pad(*(int(v) for v in rng.integers(0, half + 1, size=4)))
        return stride, "VALID"
    padding = str(rng.choice(("SAME", "VALID")))
    return stride, padding


def _first_layer(rng: np.random.Generator, seed: int) -> Graph:
    k = int(rng.choice(KERNELS))
    size = _size(rng, k + 2, 23)
    net = _Net(rng, f"rand{seed}-first-layer", (1, size, _size(rng, k + 2, 23), _size(rng, 1, 4)))
    stride, padding = _window(rng, net, k)
    net.conv(_size(rng, 1, 24), (k, k), stride, padding)
    return net.graph()


def _inverted_residual(rng: np.random.Generator, seed: int) -> Graph:
    c, k = _size(rng, 2, 12), int(rng.choice(KERNELS[1:]))
    net = _Net(rng, f"rand{seed}-mbconv", (1, _size(rng, k, 14), _size(rng, k, 14), c))
    skip = net.x
    net.conv(c * int(rng.choice(EXPAND_RATIOS)), (1, 1), 1, "SAME")
    stride, padding = _window(rng, net, k)
    net.depthwise(1, (k, k), stride, padding)
    residual = net.shape[1:3] == net.b.tensors[skip].shape[1:3] and rng.random() < 0.7
    net.conv(c if residual else _size(rng, 2, 16), (1, 1), 1, "SAME", "NONE")
    if residual:
        net.add(skip)
    return net.graph()


def _depthwise(rng: np.random.Generator, seed: int) -> Graph:
    kh, kw = int(rng.choice(KERNELS)), int(rng.choice(KERNELS))
    net = _Net(rng, f"rand{seed}-depthwise", (1, _size(rng, kh + 1, 17), _size(rng, kw + 1, 17), _size(rng, 1, 6)))
    stride, padding = _window(rng, net, min(kh, kw))
    net.depthwise(int(rng.choice((1, 1, 2, 3, 4))), (kh, kw), stride, padding)
    return net.graph()


def _large_plane_depthwise(rng: np.random.Generator, seed: int) -> Graph:
    """A depthwise convolution whose channel plane is too large for the optimised kernel (the
    library one runs), after a 1x1 convolution: in place, or beside it when a residual ADD reads
    the convolution's output later."""
    net = _Net(rng, f"rand{seed}-wide-plane", (1, _size(rng, 66, 80), _size(rng, 66, 80), 1))
    net.conv(2, (1, 1), 1, "SAME")
    skip = net.x
    net.depthwise(1, (3, 3), 1, "SAME")
    if rng.random() < 0.5:
        net.add(skip)
    return net.graph()


def _head(rng: np.random.Generator, seed: int) -> Graph:
    net = _Net(rng, f"rand{seed}-head", (1, _size(rng, 2, 9), _size(rng, 2, 9), 4 * _size(rng, 1, 6) + int(rng.integers(0, 2))))
    if rng.random() < 0.5:
        net.mean()
    else:
        f = min(net.shape[1], net.shape[2])
        net.pool("AVERAGE_POOL_2D", f, 1, "VALID")
    net.fully_connected(_size(rng, 2, 20))
    if rng.random() < 0.5:
        net.softmax()
    return net.graph()


def _fully_connected(rng: np.random.Generator, seed: int) -> Graph:
    batches = int(rng.choice((1, 1, 1, 2, 3)))
    net = _Net(rng, f"rand{seed}-fc", (batches, _size(rng, 1, 300)))
    net.fully_connected(_size(rng, 1, 40), batches)
    if rng.random() < 0.4:
        net.fully_connected(_size(rng, 1, 20), batches)
    return net.graph()


def _pool(rng: np.random.Generator, seed: int) -> Graph:
    net = _Net(rng, f"rand{seed}-pool", (1, _size(rng, 4, 16), _size(rng, 4, 16), _size(rng, 1, 12)))
    f = _size(rng, 2, 4)
    net.pool(str(rng.choice(("AVERAGE_POOL_2D", "MAX_POOL_2D"))), f, int(rng.choice((1, 2))), str(rng.choice(("SAME", "VALID"))))
    return net.graph()


def _residual_pair(rng: np.random.Generator, seed: int) -> Graph:
    """Two branches of one input added: an ADD through tables (large) or the library (small), or
    a broadcast ADD of a per-pixel mean."""
    net = _Net(rng, f"rand{seed}-add", (1, _size(rng, 3, 24), _size(rng, 3, 24), _size(rng, 2, 8)))
    first = net.x
    net.conv(net.shape[3], (1, 1), 1, "SAME")
    if rng.random() < 0.3:
        branch = net.x
        net.mean()
        net.add(branch, broadcast_shape=net.b.tensors[branch].shape)
    else:
        net.add(first)
    return net.graph()


def _float_io(rng: np.random.Generator, seed: int) -> Graph:
    """float32 in -> QUANTIZE -> two branches joined by CONCATENATION -> QUANTIZE (int8 to int8) ->
    DEQUANTIZE -> float32 out."""
    b = GraphBuilder(f"rand{seed}-float-io")
    shape = (1, _size(rng, 2, 8), _size(rng, 2, 8), _size(rng, 1, 6))
    x = b.tensor("input", shape, "float32")
    net = _Net(rng, b.name, shape)
    net.b, net.input = b, x
    scale, zp = _input_quant(rng)
    net.x = b.activation("quantized", shape, scale, zp)
    b.op("QUANTIZE", (x,), (net.x,))
    first = net.x
    net.pool("MAX_POOL_2D", 1, 1, "SAME")
    joined = b.activation("joined", (*shape[:3], 2 * shape[3]), scale, zp)
    axis = 3
    b.op("CONCATENATION", (first, net.x), (joined,), axis=axis, activation="NONE")
    s2, z2 = _input_quant(rng)
    net.x = b.activation("requantized", b.tensors[joined].shape, s2, z2)
    b.op("QUANTIZE", (joined,), (net.x,))
    y = b.tensor("output", b.tensors[net.x].shape, "float32")
    b.op("DEQUANTIZE", (net.x,), (y,))
    return b.graph([x], [y])


def _unfolded_pad(rng: np.random.Generator, seed: int) -> Graph:
    """A PAD that no convolution reads (a pooling does), so it runs as its own op; then a
    constant reshaped (a copy) and added to the result."""
    net = _Net(rng, f"rand{seed}-pad", (1, _size(rng, 3, 10), _size(rng, 3, 10), _size(rng, 1, 6)))
    net.pad(*(int(v) for v in rng.integers(0, 3, size=4)))
    net.pool("MAX_POOL_2D", 2, 1, "VALID")
    c = net.shape[3]
    flat = net.constant((1, c))
    scale, zp = net.b.tensors[flat].scale[0], net.b.tensors[flat].zero_point[0]
    shaped = net.b.activation("constant_4d", (1, 1, 1, c), scale, zp)
    net.b.op("RESHAPE", (flat, net.b.int32("shape", [1, 1, 1, c])), (shaped,))
    net.add(shaped, broadcast_shape=net.shape)
    return net.graph()


def _batched_conv(rng: np.random.Generator, seed: int) -> Graph:
    """A convolution on a batch of two (the library kernel)."""
    net = _Net(rng, f"rand{seed}-batch", (2, _size(rng, 3, 9), _size(rng, 3, 9), _size(rng, 1, 5)))
    k = int(rng.choice(KERNELS[:2]))
    net.conv(_size(rng, 1, 8), (k, k), 1, "SAME")
    return net.graph()


PATTERNS: tuple[tuple[Callable[[np.random.Generator, int], Graph], int], ...] = (
    (_first_layer, 6),
    (_inverted_residual, 6),
    (_depthwise, 5),
    (_head, 3),
    (_fully_connected, 3),
    (_pool, 2),
    (_residual_pair, 3),
    (_large_plane_depthwise, 2),
    (_batched_conv, 1),
    (_float_io, 1),
    (_unfolded_pad, 1),
)


def random_graph(seed: int) -> Graph:
    """One random graph, the same for the same seed."""
    rng = np.random.default_rng([20261206, seed])
    weights = np.array([w for _, w in PATTERNS], dtype=float)
    make = PATTERNS[int(rng.choice(len(PATTERNS), p=weights / weights.sum()))][0]
    return make(rng, seed)
