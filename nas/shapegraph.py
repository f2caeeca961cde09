"""The engine Graph of a network of a space without torch: the ops, tensors and shapes that
`engine.quantize.quantize_model` writes for a `TinyMobileNet` (pool "MEAN"), with constants of the
right shape and type but zero values and unit scales.

The memory planner and the kernels' scratch depend on shapes and op structure only, so this graph
gets the plan the firmware of the quantised model would get, at a fraction of the cost of building,
calibrating and quantising the torch model. `tests/test_nas_space.py` checks that on seeded
networks (the same ops and shapes, and the same arena)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.ir import Graph, Op, Tensor
from engine.torch_models import TinyMobileNetConfig

_ACTIVATION = {"relu": "RELU", "relu6": "RELU6"}


@dataclass
class _Builder:
    name: str
    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)

    def tensor(self, name: str, shape: tuple[int, ...], dtype: str = "int8", channels: int = 0,
               axis: int = 0, constant: bool = False) -> int:
        scale = (1.0,) * channels if channels else (1.0,)
        data = np.zeros(shape, dtype=np.int8 if dtype == "int8" else np.int32) if constant else None
        self.tensors.append(Tensor(name, shape, dtype, scale, (0,) * len(scale), axis, data))
        return len(self.tensors) - 1

    def values(self, name: str, values: list[int]) -> int:
        """An int32 constant that is not quantised (MEAN's axes, RESHAPE's shape)."""
        self.tensors.append(Tensor(name, (len(values),), "int32", data=np.array(values, dtype=np.int32)))
        return len(self.tensors) - 1

    def op(self, kind: str, inputs: tuple[int, ...], output: int, attrs: dict) -> int:
        self.ops.append(Op(kind, inputs, (output,), attrs, index=len(self.ops)))
        return output

    def conv(self, path: str, x: int, out_channels: int, kernel: int, stride: int, activation: str,
             depthwise: bool = False) -> int:
        _, h, w, c = self.tensors[x].shape
        if depthwise:
            weights = self.tensor(f"{path}/weights", (1, kernel, kernel, out_channels), channels=out_channels,
                                  axis=3, constant=True)
        else:
            weights = self.tensor(f"{path}/weights", (out_channels, kernel, kernel, c), channels=out_channels,
                                  constant=True)
        bias = self.tensor(f"{path}/bias", (out_channels,), "int32", channels=out_channels, constant=True)
        out = self.tensor(f"{path}/output", (1, math.ceil(h / stride), math.ceil(w / stride), out_channels))
        attrs = {"padding": "SAME", "stride_h": stride, "stride_w": stride, "activation": activation}
        if depthwise:
            attrs["depth_multiplier"] = out_channels // c
        return self.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", (x, weights, bias), out, attrs)


def network_graph(config: TinyMobileNetConfig, name: str = "model") -> Graph:
    """The int8 Graph (batch 1, NHWC) that quantising a TinyMobileNet of `config` would give,
    constants zero. Softmax is not written (the search's networks end at the classifier)."""
    if config.softmax:
        raise ValueError("network_graph: a network with a softmax is not supported")
    act = _ACTIVATION[config.activation]
    b = _Builder(name)
    size, channels = config.input_size, config.input_channels
    x = b.tensor("input", (1, size, size, channels))
    inputs = [x]
    x = b.conv("stem", x, config.stem_channels, config.stem_kernel, config.stem_stride, act)
    channels = config.stem_channels
    index = 0
    for stage in config.stages:
        for repeat in range(stage.repeats):
            path = f"blocks.{index}"
            stride = stage.stride if repeat == 0 else 1
            hidden = channels * stage.expand
            y = x
            if stage.expand != 1:
                y = b.conv(f"{path}.expand", y, hidden, 1, 1, act)
            y = b.conv(f"{path}.depthwise", y, hidden, stage.kernel, stride, act, depthwise=True)
            y = b.conv(f"{path}.project", y, stage.channels, 1, 1, "NONE")
            if stride == 1 and channels == stage.channels:
                shape = b.tensors[y].shape
                y = b.op("ADD", (x, y), b.tensor(f"{path}/add", shape), {"activation": "NONE"})
            x, channels, index = y, stage.channels, index + 1
    if config.head_channels:
        x = b.conv("head", x, config.head_channels, 1, 1, act)
        channels = config.head_channels
    axes = b.values("pool/axes", [1, 2])
    x = b.op("MEAN", (x, axes), b.tensor("pool/output", (1, 1, 1, channels)), {"axes": (1, 2), "keep_dims": True})
    shape = b.values("flatten/shape", [1, channels])
    x = b.op("RESHAPE", (x, shape), b.tensor("flatten/output", (1, channels)), {})
    weights = b.tensor("classifier/weights", (config.num_classes, channels), constant=True)
    bias = b.tensor("classifier/bias", (config.num_classes,), "int32", constant=True)
    x = b.op("FULLY_CONNECTED", (x, weights, bias), b.tensor("classifier/output", (1, config.num_classes)),
             {"activation": "NONE", "keep_num_dims": False})
    return Graph(name, b.tensors, b.ops, inputs, [x])
