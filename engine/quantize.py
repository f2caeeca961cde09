"""Post-training int8 quantisation of the torch blocks of `engine.torch_models` into the Graph IR,
with TFLite's conventions:

- BatchNorm folded into the conv weights and bias;
- activations int8 asymmetric per tensor, from the min / max seen over the calibration data (the
  range always holds 0); a fused ReLU / ReLU6 is the conv's activation attribute;
- weights int8 symmetric (zero point 0, values in [-127, 127]): per output channel for CONV_2D and
  DEPTHWISE_CONV_2D, per tensor for FULLY_CONNECTED (as the TFLite converter does);
- biases int32 with scale input_scale * weight_scale[c], zero point 0;
- SOFTMAX output with scale 1/256 and zero point -128.

The quantiser walks the known module types only (`TinyMobileNet`, `nn.Sequential`, `ConvBNAct`,
`InvertedResidual`, `nn.AdaptiveAvgPool2d(1)`, `nn.Flatten`, `nn.Linear`, `nn.Softmax`, and the
no-ops `nn.Identity` / `nn.Dropout`); anything else is refused with the module's name. Calibration
runs the model itself in float64, piece by piece, as the walk emits the ops."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.quant import round_half_away
from engine.torch_models import ConvBNAct, InvertedResidual, TinyMobileNet

POOL_OPS = ("MEAN", "AVERAGE_POOL_2D")
SOFTMAX_SCALE = 1.0 / 256.0
SOFTMAX_ZERO_POINT = -128


def f32(value: float) -> float:
    """A Python float that a float32 holds exactly (what a .tflite file stores)."""
    return float(np.float32(value))


def activation_params(rmin: float, rmax: float, qmin: int = -128, qmax: int = 127) -> tuple[float, int]:
    """(scale, zero point) of an asymmetric int8 tensor for the real range [rmin, rmax], widened
    to hold 0 so that 0 is exact (TFLite's min/max calibration)."""
    rmin, rmax = min(float(rmin), 0.0), max(float(rmax), 0.0)
    if rmax - rmin <= 1e-12:
        return 1.0, 0  # a tensor that is always 0
    scale = f32((rmax - rmin) / (qmax - qmin))
    zero_point = qmin - rmin / scale
    return scale, int(min(max(round_half_away(zero_point), qmin), qmax))


def symmetric_weights(weights: np.ndarray, axis: int | None) -> tuple[np.ndarray, tuple[float, ...]]:
    """int8 weights in [-127, 127] and their scales (max |w| / 127), per slice along `axis` or per tensor."""
    weights = np.asarray(weights, dtype=np.float64)
    if axis is None:
        peaks = np.array([np.abs(weights).max(initial=0.0)])
        shape = (1,) * weights.ndim
    else:
        peaks = np.abs(np.moveaxis(weights, axis, 0)).reshape(weights.shape[axis], -1).max(axis=1, initial=0.0)
        shape = [1] * weights.ndim
        shape[axis] = -1
    scales = tuple(f32(p / 127.0) if p > 0 else 1.0 for p in peaks)
    quantised = _round(weights / np.asarray(scales, dtype=np.float64).reshape(shape))
    return np.clip(quantised, -127, 127).astype(np.int8), scales


def quantize_bias(bias: np.ndarray, input_scale: float, weight_scales: tuple[float, ...]) -> tuple[np.ndarray, tuple[float, ...]]:
    """int32 bias and its scales, input_scale * weight_scale per channel (broadcast if per tensor)."""
    bias = np.asarray(bias, dtype=np.float64)
    scales = tuple(f32(input_scale * s) for s in weight_scales)
    per_channel = np.asarray(scales if len(scales) == len(bias) else scales * len(bias), dtype=np.float64)
    quantised = np.clip(_round(bias / per_channel), -(2**31), 2**31 - 1)
    return quantised.astype(np.int32), scales


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d | nn.Identity) -> tuple[np.ndarray, np.ndarray]:
    """The conv's weights [out, in/groups, kh, kw] and bias [out] with BatchNorm (eval mode) folded in."""
    weight = conv.weight.detach().double().numpy()
    bias = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(conv.out_channels)
    if isinstance(bn, nn.Identity):
        return weight, bias
    gamma = bn.weight.detach().double().numpy() if bn.weight is not None else np.ones(bn.num_features)
    beta = bn.bias.detach().double().numpy() if bn.bias is not None else np.zeros(bn.num_features)
    factor = gamma / np.sqrt(bn.running_var.detach().double().numpy() + bn.eps)
    return weight * factor[:, None, None, None], (bias - bn.running_mean.detach().double().numpy()) * factor + beta


def quantize_model(model: nn.Module, calibration: torch.Tensor | Iterable[torch.Tensor], *,
                   name: str = "model", pool: str = "MEAN") -> Graph:
    """The int8 Graph of `model` (batch 1, NHWC), calibrated on `calibration`: one NCHW float
    tensor or several batches of them. `pool` is how global average pooling is written:
    MEAN over H, W (keep_dims) or AVERAGE_POOL_2D over the whole map. `model` is not modified."""
    if pool not in POOL_OPS:
        raise ValueError(f"pool {pool!r}: one of {', '.join(POOL_OPS)}")
    batches = [calibration] if isinstance(calibration, torch.Tensor) else list(calibration)
    if not batches:
        raise ValueError("no calibration data")
    data = torch.cat([b.detach().to(torch.float64) for b in batches], dim=0)
    if data.ndim != 4:
        raise ValueError(f"calibration data must be NCHW images, got shape {tuple(data.shape)}")
    walker = _Walker(name=name, pool=pool)
    with torch.no_grad():
        float_model = copy.deepcopy(model).double().eval()
        state = walker.graph_input(data)
        state = walker.walk(float_model, state, path="")
    return walker.finish(state)


def quantize_input(graph: Graph, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Float NCHW images -> the graph's int8 NHWC input, one row per image."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    tensor = graph.tensors[graph.inputs[0]]
    x = np.transpose(images.astype(np.float64), (0, 2, 3, 1)) if images.ndim == 4 else images.astype(np.float64)
    q = _round(x / tensor.scale[0]) + tensor.zero_point[0]
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize_output(graph: Graph, values: np.ndarray, output: int = 0) -> np.ndarray:
    """int8 output values -> real values, with the graph's output quantisation."""
    tensor = graph.tensors[graph.outputs[output]]
    return (np.asarray(values, dtype=np.float64) - tensor.zero_point[0]) * tensor.scale[0]


# ---- the walk ----
@dataclass
class _State:
    """Where the walk is: the IR tensor holding the value, and that value in float over the calibration data."""

    tensor: int
    value: torch.Tensor  # NCHW, or [N, C] after flatten


@dataclass
class _Walker:
    name: str
    pool: str
    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)

    # -- graph building --
    def add_tensor(self, tensor: Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def activation(self, name: str, value: torch.Tensor, shape: tuple[int, ...]) -> int:
        scale, zero_point = activation_params(float(value.min()), float(value.max()))
        return self.add_tensor(Tensor(name, shape, "int8", (scale,), (zero_point,)))

    def add_op(self, kind: str, inputs: tuple[int, ...], outputs: tuple[int, ...], attrs: dict | None = None) -> None:
        self.ops.append(Op(kind, inputs, outputs, attrs or {}, index=len(self.ops)))

    def graph_input(self, data: torch.Tensor) -> _State:
        _, c, h, w = data.shape
        index = self.activation("input", data, (1, h, w, c))
        self.inputs.append(index)
        return _State(index, data)

    def finish(self, state: _State) -> Graph:
        if not self.ops:
            raise UnsupportedOpError(f"model {self.name}: the model has no layers the quantiser knows")
        return Graph(self.name, self.tensors, self.ops, list(self.inputs), [state.tensor])

    # -- modules --
    def walk(self, module: nn.Module, state: _State, path: str) -> _State:
        handler = _HANDLERS.get(type(module))
        if handler is None:
            where = f"module '{path}'" if path else "the model"
            known = ", ".join(sorted(t.__name__ for t in _HANDLERS))
            raise UnsupportedOpError(
                f"model {self.name}: {where} ({type(module).__name__}) is not supported by the quantiser (known: {known})"
            )
        return handler(self, module, state, path)

    def sequence(self, module: nn.Sequential, state: _State, path: str) -> _State:
        for child_name, child in module.named_children():
            state = self.walk(child, state, f"{path}.{child_name}" if path else child_name)
        return state

    def skip(self, module: nn.Module, state: _State, path: str) -> _State:
        return state

    def conv_bn_act(self, module: ConvBNAct, state: _State, path: str) -> _State:
        conv = module.conv
        where = f"model {self.name}: module '{path}' (ConvBNAct)"
        self._require_nchw(state, where)
        if tuple(conv.dilation) != (1, 1):
            raise UnsupportedOpError(f"{where}: dilation {tuple(conv.dilation)} is not supported (only 1)")
        if conv.padding_mode != "zeros" or tuple(conv.padding) != (0, 0):
            raise UnsupportedOpError(f"{where}: the conv must have padding 0 (ConvBNAct pads TFLite-SAME itself)")
        if not isinstance(module.bn, (nn.BatchNorm2d, nn.Identity)):
            raise UnsupportedOpError(f"{where}: module '{path}.bn' ({type(module.bn).__name__}) is not supported")
        activation = _ACTIVATION_NAMES.get(type(module.act))
        if activation is None:
            raise UnsupportedOpError(
                f"{where}: activation module '{path}.act' ({type(module.act).__name__}) is not supported "
                f"(ReLU, ReLU6, Identity are)"
            )
        output = module(state.value)
        weight, bias = fold_batchnorm(conv, module.bn)
        input_tensor = self.tensors[state.tensor]
        depthwise = conv.groups > 1
        if depthwise:
            if conv.groups != conv.in_channels:
                raise UnsupportedOpError(f"{where}: grouped conv with groups={conv.groups} (only 1 or in_channels)")
            kind = "DEPTHWISE_CONV_2D"
            tflite_weight = np.transpose(weight, (1, 2, 3, 0))  # [out, 1, kh, kw] -> [1, kh, kw, out]
            axis = 3
        else:
            kind = "CONV_2D"
            tflite_weight = np.transpose(weight, (0, 2, 3, 1))  # [out, in, kh, kw] -> [out, kh, kw, in]
            axis = 0
        q_weight, w_scales = symmetric_weights(tflite_weight, axis)
        q_bias, b_scales = quantize_bias(bias, input_tensor.scale[0], w_scales)
        channels = conv.out_channels
        w_index = self.add_tensor(Tensor(f"{path}/weights", q_weight.shape, "int8", w_scales, (0,) * channels, axis, q_weight))
        b_index = self.add_tensor(Tensor(f"{path}/bias", q_bias.shape, "int32", b_scales, (0,) * channels, 0, q_bias))
        _, c, h, w = output.shape
        out_index = self.activation(f"{path}/output", _clamp_to_activation(output, activation), (1, h, w, c))
        attrs = {"padding": "SAME", "stride_h": int(conv.stride[0]), "stride_w": int(conv.stride[1]), "activation": activation}
        if depthwise:
            attrs["depth_multiplier"] = conv.out_channels // conv.in_channels
        self.add_op(kind, (state.tensor, w_index, b_index), (out_index,), attrs)
        return _State(out_index, output)

    def inverted_residual(self, module: InvertedResidual, state: _State, path: str) -> _State:
        block_input = state
        inner = state
        for part in ("expand", "depthwise", "project"):
            child = getattr(module, part)
            if child is not None:
                inner = self.walk(child, inner, f"{path}.{part}")
        if not module.use_residual:
            return inner
        total = block_input.value + inner.value
        _, c, h, w = total.shape
        out_index = self.activation(f"{path}/add", total, (1, h, w, c))
        self.add_op("ADD", (block_input.tensor, inner.tensor), (out_index,), {"activation": "NONE"})
        return _State(out_index, total)

    def global_pool(self, module: nn.AdaptiveAvgPool2d, state: _State, path: str) -> _State:
        where = f"model {self.name}: module '{path}' (AdaptiveAvgPool2d)"
        self._require_nchw(state, where)
        size = module.output_size if isinstance(module.output_size, tuple) else (module.output_size,) * 2
        if tuple(size) != (1, 1):
            raise UnsupportedOpError(f"{where}: output size {module.output_size} is not supported (only 1: global pooling)")
        output = module(state.value)
        _, c, h, w = state.value.shape
        source = self.tensors[state.tensor]
        if self.pool == "MEAN":
            axes = self.add_tensor(Tensor(f"{path}/axes", (2,), "int32", data=np.array([1, 2], dtype=np.int32)))
            out_index = self.activation(f"{path}/output", output, (1, 1, 1, c))
            self.add_op("MEAN", (state.tensor, axes), (out_index,), {"axes": (1, 2), "keep_dims": True})
        else:  # AVERAGE_POOL_2D keeps its input's quantisation, as TFLite requires
            out_index = self.add_tensor(Tensor(f"{path}/output", (1, 1, 1, c), "int8", source.scale, source.zero_point))
            self.add_op("AVERAGE_POOL_2D", (state.tensor,), (out_index,), {
                "padding": "VALID", "stride_h": 1, "stride_w": 1, "activation": "NONE", "filter_h": h, "filter_w": w,
            })
        return _State(out_index, output)

    def flatten(self, module: nn.Flatten, state: _State, path: str) -> _State:
        where = f"model {self.name}: module '{path}' (Flatten)"
        if module.start_dim != 1 or module.end_dim != -1:
            raise UnsupportedOpError(f"{where}: only Flatten(1, -1) is supported")
        if state.value.ndim == 2:
            return state
        if state.value.ndim != 4 or tuple(state.value.shape[2:]) != (1, 1):
            raise UnsupportedOpError(
                f"{where}: flattening a {tuple(state.value.shape[1:])} map is not supported "
                f"(NCHW and NHWC orders differ); pool to 1x1 first"
            )
        c = int(state.value.shape[1])
        source = self.tensors[state.tensor]
        shape = self.add_tensor(Tensor(f"{path}/shape", (2,), "int32", data=np.array([1, c], dtype=np.int32)))
        out_index = self.add_tensor(Tensor(f"{path}/output", (1, c), "int8", source.scale, source.zero_point))
        self.add_op("RESHAPE", (state.tensor, shape), (out_index,), {})
        return _State(out_index, state.value.flatten(1))

    def linear(self, module: nn.Linear, state: _State, path: str) -> _State:
        where = f"model {self.name}: module '{path}' (Linear)"
        if state.value.ndim != 2:
            raise UnsupportedOpError(f"{where}: input of shape {tuple(state.value.shape)}; flatten to [N, C] first")
        output = module(state.value)
        weight = module.weight.detach().double().numpy()
        bias = module.bias.detach().double().numpy() if module.bias is not None else np.zeros(module.out_features)
        q_weight, w_scales = symmetric_weights(weight, None)
        q_bias, b_scales = quantize_bias(bias, self.tensors[state.tensor].scale[0], w_scales)
        w_index = self.add_tensor(Tensor(f"{path}/weights", q_weight.shape, "int8", w_scales, (0,), 0, q_weight))
        b_index = self.add_tensor(Tensor(f"{path}/bias", q_bias.shape, "int32", b_scales, (0,), 0, q_bias))
        out_index = self.activation(f"{path}/output", output, (1, module.out_features))
        self.add_op("FULLY_CONNECTED", (state.tensor, w_index, b_index), (out_index,), {"activation": "NONE", "keep_num_dims": False})
        return _State(out_index, output)

    def softmax(self, module: nn.Softmax, state: _State, path: str) -> _State:
        where = f"model {self.name}: module '{path}' (Softmax)"
        if state.value.ndim != 2 or module.dim not in (1, -1):
            raise UnsupportedOpError(f"{where}: only a softmax over the last axis of [N, C] logits is supported")
        output = module(state.value)
        out_index = self.add_tensor(Tensor(
            f"{path}/output", (1, int(state.value.shape[1])), "int8", (SOFTMAX_SCALE,), (SOFTMAX_ZERO_POINT,)
        ))
        self.add_op("SOFTMAX", (state.tensor,), (out_index,), {"beta": 1.0})
        return _State(out_index, output)

    def _require_nchw(self, state: _State, where: str) -> None:
        if state.value.ndim != 4:
            raise UnsupportedOpError(f"{where}: needs an image-shaped input, got {tuple(state.value.shape)}")


_ACTIVATION_NAMES: dict[type, str] = {nn.ReLU: "RELU", nn.ReLU6: "RELU6", nn.Identity: "NONE"}

_HANDLERS: dict[type, Callable[[_Walker, nn.Module, _State, str], _State]] = {
    TinyMobileNet: _Walker.sequence,
    nn.Sequential: _Walker.sequence,
    ConvBNAct: _Walker.conv_bn_act,
    InvertedResidual: _Walker.inverted_residual,
    nn.AdaptiveAvgPool2d: _Walker.global_pool,
    nn.Flatten: _Walker.flatten,
    nn.Linear: _Walker.linear,
    nn.Softmax: _Walker.softmax,
    nn.Identity: _Walker.skip,
    nn.Dropout: _Walker.skip,
}


def _clamp_to_activation(value: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "RELU":
        return value.clamp(min=0.0)
    if activation == "RELU6":
        return value.clamp(0.0, 6.0)
    return value


def _round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero, as std::round (numpy's round goes to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)
