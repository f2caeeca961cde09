"""What an op family provides for each op kind it owns: one OpSpec, registered in engine.ops.OPS,
that the importer and exporter (its TfliteForm), the validator, the reference interpreter and the
code generator (its CForm) look up."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.codegen.context import EmitContext
from engine.codegen.layer import Layer
from engine.codegen.library_call import LibraryCall
from engine.ir import Graph, Op, Tensor

Values = dict[int, np.ndarray]  # tensor index -> its value during a reference run
# (builtin options or None, input indices, the tensors, where) -> the op's attributes
AttributeReader = Callable[[Any, tuple[int, ...], list[Tensor], str], dict[str, Any]]
# (op, graph, where) -> (BuiltinOptions type, the options object) for the exporter
OptionsWriter = Callable[[Op, Graph, str], tuple[int, Any]]
# (graph, op, where) -> None, or a ModelFormatError / UnsupportedOpError naming `where` and the field
Check = Callable[[Graph, Op, str], None]
ReferenceKernel = Callable[[Graph, Op, Values], np.ndarray]
# (the model being generated, op position, op) -> the layer's C and its variant tags
Emitter = Callable[[EmitContext, int, Op], Layer]
# (graph, op, kernel set) -> bytes of scratch its kernel needs in the arena
ScratchSize = Callable[[Graph, Op, str], int]
# (graph, op) -> (flash beyond int8, instructions saved) of int16 weights in the optimised kernel, or None
WideWeights = Callable[[Graph, Op], "tuple[int, float] | None"]


def no_attributes(options: Any, inputs: tuple[int, ...], tensors: list[Tensor], where: str) -> dict[str, Any]:
    """The attribute reader of an op without attributes."""
    return {}


@dataclass(frozen=True)
class Arity:
    """How many inputs and outputs an op kind takes; `optional`: input positions that may be -1."""

    min_inputs: int
    max_inputs: int
    optional: tuple[int, ...] = ()
    outputs: int = 1


@dataclass(frozen=True)
class TfliteForm:
    """The op in a .tflite file: its builtin options table, read into Op.attrs and written back."""

    options_type: int  # schema.BuiltinOptions
    version: int  # the operator version the TFLite converter writes for int8 models
    read: AttributeReader = no_attributes  # options (and constant inputs) -> Op.attrs
    write: OptionsWriter | None = None  # Op.attrs -> options; None: written without
    optional: bool = False  # whether a .tflite op may leave its options out


@dataclass(frozen=True)
class CForm:
    """The op in the generated C."""

    emit: Emitter  # its layer, for either kernel set
    variants: Mapping[str, frozenset[str]]  # kernel set -> every variant tag `emit` may choose
    scratch: ScratchSize | None = None  # None: its kernels need none
    wide_weights: WideWeights | None = None  # None: its weights stay int8
    # The inputs' names in the layer's comment, by position (the last for the rest; None: left
    # out). None: in0, in1, ... ("in" for one).
    input_labels: tuple[str | None, ...] | None = ("in",)
    library_calls: tuple[type[LibraryCall], ...] = ()  # the kernels of tl_kernels.h that `emit` calls


@dataclass(frozen=True)
class OpSpec:
    """One op kind, as its family implements it."""

    kind: str  # the TFLite builtin operator's name
    arity: Arity
    check: Check  # its attributes and shapes, as validate_graph refuses them
    reference: ReferenceKernel  # bit-exact with TFLite Micro's reference kernel
    tflite: TfliteForm | None  # None: an op of the engine's own rewrites (engine.patches), never in a .tflite file
    c: CForm
    input_types: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # by position; else int8
    output_types: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    import_check: Check | None = None  # what only a .tflite file is refused for (after validation)

    @property
    def builtin_code(self) -> int:
        """Its schema.BuiltinOperator."""
        return getattr(schema.BuiltinOperator, self.kind)

    def scratch_bytes(self, graph: Graph, op: Op, kernels: str) -> int:
        """Bytes of scratch the op's kernel in `kernels` needs (0: none)."""
        return self.c.scratch(graph, op, kernels) if self.c.scratch is not None else 0


def op_where(graph: Graph, op: Op) -> str:
    """How messages name an op: "model NAME: op INDEX (KIND)"."""
    return f"model {graph.name}: op {op.index} ({op.kind})"
