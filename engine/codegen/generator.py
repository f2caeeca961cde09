"""Code generation: a Graph and its memory plan -> `{prefix}.c` / `{prefix}.h` that call the
kernel library (engine/kernels) once per layer with every shape and quantisation constant baked in
as literals. Weights, biases and per-channel multipliers are `static const` arrays (flash); every
activation lives in one static arena at the planner's offsets.

Each op's family (engine.ops) emits its layer; the constants come from the family's Prepare step,
which computes them exactly as TFLite Micro's does (float32 scales widened to double,
`quantize_multiplier`), so the C is bit-exact with TFLM.

Two kernel sets (engine.codegen.kernel_sets): "portable" calls the C kernel library
(engine/kernels/*.c) with literal arguments; "optimized" (the default) generates one static
function per CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and ADD with every shape baked in, built
from the inline blocks of engine/kernels/tl_opt.h (SIMD on cores with the DSP extension), and
calls the library for the rest. Where the plan lets an output overwrite its input
(`plan.overlaps`, engine.overlap), both sets use a kernel whose access order makes that safe."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import jinja2
import numpy as np

from engine.codegen.context import EmitContext
from engine.codegen.kernel_sets import check_kernel_set
from engine.codegen.layer import layer_comment
from engine.codegen.literals import comment_safe, shape_text
from engine.codegen.widening import widened_layers
from engine.errors import UnsupportedOpError
from engine.ir import Graph, Tensor
from engine.memory_plan import MemoryPlan
from engine.ops import OPS
from engine.ops.quant_params import zero_point_of
from engine.resources import kernels_dir, templates_dir

TEMPLATES_DIR = templates_dir()
KERNELS_DIR = kernels_dir()
_PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class GeneratedModel:
    prefix: str
    files: dict[str, str]  # {f"{prefix}.c": ..., f"{prefix}.h": ...}
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    weight_bytes: int  # flash taken by the constant arrays
    widened_bytes: int = 0  # of which the int16 copies of weights cost beyond int8 (choose_wide)
    variants: tuple[tuple[str, ...], ...] = ()  # per op: the code paths chosen (KERNEL_VARIANTS)
    input_offset: int = 0  # where the input tensor starts in the arena (`{prefix}_input()`)
    static_scratch_bytes: int = 0  # the static scratch buffer outside the arena (0: none)


@dataclass(frozen=True)
class _LayerText:
    """A layer as the template writes it: its comment and its lines."""

    comment: str
    lines: list[str]


def kernel_library_digest() -> str:
    """A short hash of the kernel library's sources and headers: generated C names it, so that a
    build cached by the hash of the generated files is rebuilt when an included header changes."""
    digest = hashlib.sha256()
    for path in sorted(KERNELS_DIR.iterdir()):
        if path.suffix in (".c", ".h"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _check_interface(graph: Graph, plan: MemoryPlan) -> None:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedOpError(
            f"model {graph.name}: the generated C has exactly one input and one output; this graph has "
            f"{len(graph.inputs)} inputs and {len(graph.outputs)} outputs"
        )
    for role, index in (("input", graph.inputs[0]), ("output", graph.outputs[0])):
        tensor = graph.tensors[index]
        if tensor.data is not None:
            raise UnsupportedOpError(f"model {graph.name}: the graph {role} '{tensor.name}' is a constant tensor")
        if index not in plan.placements:
            raise UnsupportedOpError(f"model {graph.name}: the graph {role} '{tensor.name}' has no place in the memory plan")


def generate_c(graph: Graph, plan: MemoryPlan, prefix: str = "model", kernels: str = "optimized",
               wide_budget: int | None = None) -> GeneratedModel:
    """`{prefix}.c` and `{prefix}.h` for the graph, its activations at the offsets of `plan`, with
    the "optimized" per-layer kernels or the "portable" library calls. The optimised kernels store
    weights as int16 where that gains most per byte, within `wide_budget` extra bytes of flash
    (None: wherever they can)."""
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix {prefix!r} is not a C identifier")
    check_kernel_set(kernels)
    _check_interface(graph, plan)
    widened = widened_layers(graph, wide_budget) if kernels == "optimized" else []
    g = EmitContext(graph, plan, prefix, kernels, frozenset(p for c in widened for p in c.positions))
    layers, variants = [], []
    for position, op in enumerate(graph.ops):
        spec = OPS.get(op.kind)
        if spec is None:
            raise UnsupportedOpError(f"model {graph.name}: op {op.index} ({op.kind}) has no kernel")
        layer = spec.c.emit(g, position, op)
        unknown = set(layer.variant) - spec.c.variants[kernels]
        if unknown:
            raise AssertionError(f"{g.where(op)}: variant {sorted(unknown)} is missing from its family's variants[{kernels!r}]")
        layers.append(_LayerText(layer_comment(graph, op, spec.c.input_labels, layer.detail), layer.lines))
        variants.append(layer.variant)

    input_tensor = graph.tensors[graph.inputs[0]]
    output_tensor = graph.tensors[graph.outputs[0]]
    weight_bytes = sum(a.nbytes for a in g.arrays)
    env = _environment()
    context = dict(
        prefix=prefix,
        PREFIX=prefix.upper(),
        graph_name=comment_safe(graph.name),
        arena_bytes=max(plan.arena_bytes, 1),
        weight_bytes=weight_bytes,
        arrays=g.arrays,
        layers=layers,
        uses_float=g.uses_float,
        input=_io(input_tensor, plan.placements[graph.inputs[0]].offset),
        output=_io(output_tensor, plan.placements[graph.outputs[0]].offset),
        op_count=len(graph.ops),
        kernels=kernels,
        library=kernel_library_digest(),
        functions=g.functions,
        static_scratch=g.static_scratch,
    )
    files = {
        f"{prefix}.c": env.get_template("model.c.j2").render(**context),
        f"{prefix}.h": env.get_template("model.h.j2").render(**context),
    }
    return GeneratedModel(
        prefix=prefix,
        files=files,
        arena_bytes=max(plan.arena_bytes, 1),
        input_bytes=input_tensor.nbytes,
        output_bytes=output_tensor.nbytes,
        weight_bytes=weight_bytes,
        widened_bytes=sum(c.extra_bytes for c in widened),
        variants=tuple(variants),
        input_offset=plan.placements[graph.inputs[0]].offset,
        static_scratch_bytes=4 * ((g.static_scratch + 3) // 4),
    )


def _io(tensor: Tensor, offset: int) -> dict:
    quant = f", scale {float(np.float32(tensor.scale[0])):g}, zero point {zero_point_of(tensor)}" if tensor.scale else ""
    return dict(
        name=comment_safe(tensor.name),
        shape=shape_text(tensor.shape),
        dtype=tensor.dtype,
        quant=quant,
        bytes=tensor.nbytes,
        offset=offset,
    )
