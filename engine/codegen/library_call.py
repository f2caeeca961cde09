"""Calls of the C kernel library (engine/kernels/tl_kernels.h) as data. Each library kernel has a
frozen dataclass of its parameters (a LibraryCall, made by @library_kernel) whose fields, with the
fields of the parameter groups it holds (a ParameterGroup) read in place, are the C function's
parameters by name and in order; `render_call` writes the C statement. A field holds the C
expression passed (a str: a pointer, an array, a float literal) or an integer.
tests/test_library_calls.py checks each dataclass against the prototype it stands for, so the C
ABI cannot drift from the Python side."""
from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Callable, ClassVar, Iterator, TypeVar, dataclass_transform, get_type_hints

from engine.codegen.literals import c_int

CExpr = str  # a C expression: a pointer, an inline array, a float literal
Call = TypeVar("Call", bound="LibraryCall")


class ParameterGroup:
    """Parameters that stand together in several kernels' prototypes (a frozen dataclass)."""


class LibraryCall:
    """One call of the library kernel named FUNCTION."""

    FUNCTION: ClassVar[str]


@dataclass_transform(frozen_default=True)
def library_kernel(function: str) -> Callable[[type[Call]], type[Call]]:
    """Class decorator: the class, a LibraryCall, becomes the frozen dataclass of the parameters
    of the library kernel `function`."""
    def make(cls: type[Call]) -> type[Call]:
        cls.FUNCTION = function
        return dataclass(frozen=True)(cls)
    return make


@dataclass(frozen=True)
class StrideAndPadding(ParameterGroup):
    """A window's steps and the padding before its first row and column."""

    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int


@dataclass(frozen=True)
class PerChannelRequant(ParameterGroup):
    """Offsets, per-channel multiplier and shift arrays, and the clamp of a weighted kernel's output."""

    input_offset: int
    output_offset: int
    out_mult: CExpr
    out_shift: CExpr
    act_min: int
    act_max: int


def arguments(call: LibraryCall | ParameterGroup) -> Iterator[int | CExpr]:
    """The call's arguments in order, its parameter groups read in place."""
    for f in fields(call):
        value = getattr(call, f.name)
        if isinstance(value, ParameterGroup):
            yield from arguments(value)
        else:
            yield value


def render_call(call: LibraryCall) -> str:
    """The C statement `FUNCTION(arguments);`."""
    text = ", ".join(value if isinstance(value, str) else c_int(value) for value in arguments(call))
    return f"{call.FUNCTION}({text});"


def parameter_names(cls: type) -> list[str]:
    """The C parameter names a LibraryCall class stands for, its groups' fields read in place."""
    hints = get_type_hints(cls)
    names: list[str] = []
    for f in fields(cls):
        kind = hints[f.name]
        if isinstance(kind, type) and is_dataclass(kind) and issubclass(kind, ParameterGroup):
            names += parameter_names(kind)
        else:
            names.append(f.name)
    return names
