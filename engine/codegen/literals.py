"""C text for the generated model: integer and float literals, shapes in comments, inline int32
arrays, and the constant arrays that hold weights and per-channel constants in flash."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.errors import UnsupportedOpError

CTYPES = {"int8": "int8_t", "int32": "int32_t", "float32": "float", "int16": "int16_t", "uint8": "uint8_t"}
_CTYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4, "float": 4}
_VALUES_PER_LINE = {"int8_t": 24, "uint8_t": 24, "int16_t": 16, "int32_t": 10, "float": 6}


def c_int(value: int) -> str:
    """An integer literal; INT32_MIN written so that C reads it as an int32."""
    value = int(value)
    return "(-2147483647 - 1)" if value == -(2**31) else str(value)


def c_float(value: float) -> str:
    """A float32 literal, exact (C99 hexadecimal)."""
    return float(np.float32(value)).hex() + "f"


def shape_text(shape: Sequence[int]) -> str:
    """A shape as comments write it: 1x8x8x3, or "scalar"."""
    return "x".join(str(d) for d in shape) if shape else "scalar"


def int_list(values: Sequence[int]) -> str:
    """An inline `const int32_t[]` compound literal."""
    return "(const int32_t[]){" + ", ".join(c_int(v) for v in values) + "}"


def extend4(shape: Sequence[int], where: str) -> tuple[int, int, int, int]:
    """A shape of rank 4 or less as 4-D, ones in front."""
    if len(shape) > 4:
        raise UnsupportedOpError(f"{where}: rank {len(shape)} tensors are not supported (at most 4 dimensions)")
    return tuple([1] * (4 - len(shape)) + [int(d) for d in shape])  # type: ignore[return-value]


def comment_safe(text: str) -> str:
    """Text that cannot end or break a C block comment."""
    return text.replace("*/", "* /").replace("\n", " ")


@dataclass
class ConstArray:
    """A `static const` array of the generated C: its name, C type, literal values and comment."""

    name: str
    ctype: str
    values: list[str]
    comment: str

    @property
    def nbytes(self) -> int:
        return len(self.values) * _CTYPE_BYTES[self.ctype]

    @property
    def body(self) -> str:
        per_line = _VALUES_PER_LINE[self.ctype]
        lines = [", ".join(self.values[i : i + per_line]) for i in range(0, len(self.values), per_line)]
        return ",\n".join("    " + line for line in lines)
