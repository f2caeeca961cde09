"""The engine's intermediate representation: plain data, no behaviour.

Layouts follow TFLite: activations NHWC; CONV_2D filters [out, kh, kw, in]; DEPTHWISE_CONV_2D
filters [1, kh, kw, in * multiplier]; FULLY_CONNECTED weights [out, in]; biases int32 [out].
Quantisation is affine: real = scale * (q - zero_point), per tensor or per channel along
`quantized_dimension`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ACTIVATIONS = ("NONE", "RELU", "RELU6")
DTYPES = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "float32": np.float32, "uint8": np.uint8}


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str  # a key of DTYPES
    scale: tuple[float, ...] = ()  # empty: not quantised
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0
    data: np.ndarray | None = None  # constants only (weights, biases, shapes)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.elements * np.dtype(DTYPES[self.dtype]).itemsize

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass
class Op:
    kind: str  # one of engine.ops.OP_KINDS (TFLite's builtin operator names)
    inputs: tuple[int, ...]  # tensor indices; -1 for an absent optional input (a missing bias)
    outputs: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    index: int = 0  # the op's position in the source model, for messages


@dataclass
class Graph:
    """A network: tensors by index, ops in execution order, graph inputs and outputs."""

    name: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def producers(self) -> dict[int, int]:
        """tensor index -> index in `ops` of the op writing it."""
        return {t: i for i, op in enumerate(self.ops) for t in op.outputs}

    def consumers(self) -> dict[int, list[int]]:
        """tensor index -> indices in `ops` of the ops reading it."""
        readers: dict[int, list[int]] = {}
        for i, op in enumerate(self.ops):
            for t in op.inputs:
                if t >= 0:
                    readers.setdefault(t, []).append(i)
        return readers
