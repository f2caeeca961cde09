"""What an op family provides for each op kind it owns: one OpSpec, registered in engine.ops.OPS,
that the importer, the exporter, the validator and the reference interpreter look up."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from engine.ir import Graph, Op, Tensor

Values = dict[int, np.ndarray]  # tensor index -> its value during a reference run
# (builtin options or None, input indices, the tensors, where) -> the op's attributes
AttributeReader = Callable[[Any, tuple[int, ...], list[Tensor], str], dict[str, Any]]
# (op, graph, where) -> (BuiltinOptions type, the options object) for the exporter
OptionsWriter = Callable[[Op, Graph, str], tuple[int, Any]]
# (graph, op, where) -> None, or a ModelFormatError / UnsupportedOpError naming `where` and the field
Check = Callable[[Graph, Op, str], None]
ReferenceKernel = Callable[[Graph, Op, Values], np.ndarray]


@dataclass(frozen=True)
class Arity:
    """How many inputs and outputs an op kind takes; `optional`: input positions that may be -1."""

    min_inputs: int
    max_inputs: int
    optional: tuple[int, ...] = ()
    outputs: int = 1


@dataclass(frozen=True)
class OpSpec:
    """One op kind, as its family implements it."""

    kind: str  # the TFLite builtin operator's name
    builtin_code: int  # schema.BuiltinOperator
    options_type: int  # schema.BuiltinOptions of its options table
    options_optional: bool  # whether a .tflite op may leave its options out
    version: int  # the operator version the TFLite converter writes for int8 models
    arity: Arity
    read_attributes: AttributeReader  # .tflite options (and constant inputs) -> Op.attrs
    write_options: OptionsWriter | None  # Op.attrs -> .tflite options; None: written without
    check: Check  # its attributes and shapes, as validate_graph refuses them
    reference: ReferenceKernel  # bit-exact with TFLite Micro's reference kernel
    input_types: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # by position; else int8
    output_types: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    import_check: Check | None = None  # what only a .tflite file is refused for (after validation)


def op_where(graph: Graph, op: Op) -> str:
    """How messages name an op: "model NAME: op INDEX (KIND)"."""
    return f"model {graph.name}: op {op.index} ({op.kind})"


def no_attributes(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    """The attribute reader of an op without attributes."""
    return {}
