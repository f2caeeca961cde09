"""The Python side of the kernel library's ABI: each kernel declared in engine/kernels/tl_kernels.h
has one dataclass of parameters (engine.codegen.library_call.LibraryCall, registered by its op
family in OpSpec.c.library_calls) whose fields, parameter groups read in place, are the C
parameters by name and in order; pointers and floats are C expressions, the rest integers."""
from __future__ import annotations

import dataclasses
import re
from typing import get_type_hints

import pytest

from engine.codegen.generator import KERNELS_DIR
from engine.codegen.library_call import LibraryCall, ParameterGroup, parameter_names, render_call
from engine.ops import OPS
from engine.ops.conv.calls import Conv1x1StreamCall, DepthwiseConvInplaceCall
from engine.ops.pooling import AvgPoolCall, MeanCall

HEADER = KERNELS_DIR / "tl_kernels.h"
_PROTOTYPE = re.compile(r"\bvoid\s+(tl_\w+)\s*\(([^)]*)\)\s*;")


def prototypes() -> dict[str, list[tuple[str, str]]]:
    """Every function tl_kernels.h declares: name -> [(C type, parameter name)] in order."""
    text = re.sub(r"/\*.*?\*/", " ", HEADER.read_text(), flags=re.DOTALL)
    found = {}
    for name, params in _PROTOTYPE.findall(text):
        pairs = []
        for param in params.split(","):
            words = " ".join(param.split())
            match = re.fullmatch(r"(.*?[\s*])(\w+)", words)
            assert match is not None, f"{name}: cannot read parameter {param!r}"
            pairs.append((match.group(1).strip(), match.group(2)))
        found[name] = pairs
    return found


def library_calls() -> dict[str, type[LibraryCall]]:
    calls = [cls for spec in OPS.values() for cls in spec.c.library_calls]
    assert len({cls.FUNCTION for cls in calls}) == len(calls), "a kernel has two dataclasses"
    return {cls.FUNCTION: cls for cls in calls}


def leaf_types(cls: type) -> list[type]:
    """The Python type of each C parameter, groups read in place."""
    hints, kinds = get_type_hints(cls), []
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        kinds += leaf_types(kind) if isinstance(kind, type) and issubclass(kind, ParameterGroup) else [kind]
    return kinds


def test_the_parser_reads_every_prototype():
    found = prototypes()
    assert len(found) == HEADER.read_text().count("\nvoid tl_")
    assert [p for _, p in found["tl_concat_s8"]] == ["input", "outer", "copy_size", "output", "output_stride"]


def test_every_kernel_has_a_dataclass_and_every_dataclass_a_kernel():
    assert set(library_calls()) == set(prototypes())


@pytest.mark.parametrize("function", sorted(prototypes()))
def test_fields_are_the_c_parameters_in_order(function: str):
    cls = library_calls()[function]
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    assert parameter_names(cls) == [name for _, name in prototypes()[function]]


@pytest.mark.parametrize("function", sorted(prototypes()))
def test_pointers_and_floats_are_expressions_the_rest_integers(function: str):
    c_types = [c_type for c_type, _ in prototypes()[function]]
    expected = [str if "*" in c_type or c_type == "float" else int for c_type in c_types]
    assert leaf_types(library_calls()[function]) == expected


def _build(kind: type, leaves: list) -> object:
    """An instance of `kind` whose leaf fields take `leaves` in order."""
    hints, arguments = get_type_hints(kind), {}
    for field in dataclasses.fields(kind):
        hint = hints[field.name]
        grouped = isinstance(hint, type) and issubclass(hint, ParameterGroup)
        arguments[field.name] = _build(hint, leaves) if grouped else leaves.pop(0)
    return kind(**arguments)


@pytest.mark.parametrize("function", sorted(prototypes()))
def test_a_call_renders_its_arguments_in_order(function: str):
    cls = library_calls()[function]
    names, kinds = parameter_names(cls), leaf_types(cls)
    numbers = iter(range(-(2**31), 0))  # INT32_MIN first, which C must read as an int32
    leaves = [f"p_{name}" if kind is str else next(numbers) for name, kind in zip(names, kinds)]
    expected = ["(-2147483647 - 1)" if leaf == -(2**31) else str(leaf) for leaf in leaves]
    assert render_call(_build(cls, list(leaves))) == f"{function}({', '.join(expected)});"


def test_scratch_sizes_agree_with_the_header():
    """The scratch each kernel's comment in tl_kernels.h asks for, and its dataclass's function."""
    text = " ".join(HEADER.read_text().split())
    assert '"channel-plane" variant. scratch: out_h * out_w bytes.' in text
    assert DepthwiseConvInplaceCall.scratch_bytes(out_h=5, out_w=7) == 35
    assert '"pixel-stream" variant. scratch: in_c bytes.' in text
    assert Conv1x1StreamCall.scratch_bytes(in_c=24) == 24
    assert "scratch holds `channels` int32 sums" in text
    assert AvgPoolCall.scratch_bytes(channels=24) == 4 * 24
    assert "scratch holds out_size int32 sums" in text
    assert MeanCall.scratch_bytes(out_size=10) == 4 * 10
