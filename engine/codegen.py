"""Code generation: a Graph and its memory plan -> `{prefix}.c` / `{prefix}.h` that call the
kernel library (engine/kernels) once per layer with every shape and quantisation constant baked in
as literals. Weights, biases and per-channel multipliers are `static const` arrays (flash); every
activation lives in one static arena at the planner's offsets.

The constants come from engine.prepare, which computes them exactly as TFLite Micro's Prepare step
does (float32 scales widened to double, `quantize_multiplier`), so the C is bit-exact with TFLM.

Two kernel sets: "portable" calls the C kernel library (engine/kernels/*.c) with literal arguments;
"optimized" (the default) generates one static function per CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED and ADD with every shape baked in, built from the inline blocks of
engine/kernels/tl_opt.h (SIMD on cores with the DSP extension), and calls the library for the rest.
Where the plan lets an output overwrite its input (`plan.overlaps`, engine.overlap), both sets use a
kernel whose access order makes that safe."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import jinja2
import numpy as np

from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.memory_plan import MemoryPlan
from engine.ops.conv.prepare import prepare_conv
from engine.ops.elementwise import ADD_LEFT_SHIFT, prepare_add
from engine.ops.fully_connected import prepare_fully_connected
from engine.ops.pooling import prepare_mean, prepare_pool
from engine.ops.quant_params import scale_of as _scale
from engine.ops.quant_params import zero_point_of as _zp
from engine.ops.quantize import prepare_requantize
from engine.ops.softmax import prepare_softmax
from engine.ops.window import prepare_window
from engine.overlap import padded_plane_bytes, pixel_stream_bytes, plane_fits
from engine.quant import multiply_by_quantized_multiplier
from engine.resources import kernels_dir, templates_dir

TEMPLATES_DIR = templates_dir()
KERNELS_DIR = kernels_dir()
_PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CTYPES = {"int8": "int8_t", "int32": "int32_t", "float32": "float", "int16": "int16_t", "uint8": "uint8_t"}
_VALUES_PER_LINE = {"int8_t": 24, "uint8_t": 24, "int16_t": 16, "int32_t": 10, "float": 6}
KERNEL_SETS = ("optimized", "portable")
SCRATCH_ALIGNMENT = 8  # LDRD needs word-aligned operands; 8 keeps int64 views possible


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


@dataclass
class _Array:
    name: str
    ctype: str
    values: list[str]
    comment: str

    @property
    def nbytes(self) -> int:
        return len(self.values) * {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4, "float": 4}[self.ctype]

    @property
    def body(self) -> str:
        per_line = _VALUES_PER_LINE[self.ctype]
        lines = [", ".join(self.values[i : i + per_line]) for i in range(0, len(self.values), per_line)]
        return ",\n".join("    " + line for line in lines)


@dataclass
class _Layer:
    comment: str
    lines: list[str] = field(default_factory=list)
    variant: tuple[str, ...] = ()  # the code paths chosen for this layer (KERNEL_VARIANTS)


def _tags(family: str, *choices: object) -> tuple[str, ...]:
    """A layer's variant: "family:choice" for each choice that applies (falsy ones are left out)."""
    return tuple(f"{family}:{choice}" for choice in choices if choice)


_RQ = ("rq-portable", "rq-any", "rq-even", "rq-even-zp")
_LIBRARY = ("conv:library", "dw:library", "dw:library-inplace", "add:library", "add:broadcast", "add:output-over-input",
            "avgpool:library", "maxpool:library", "mean:library", "pad:library", "reshape:in-place", "reshape:copy",
            "softmax:library", "concatenation:library", "quantize:float", "quantize:requantize", "dequantize:library")
# Every code path code generation can choose, per kernel set: a layer's variant is a subset. The
# differential test (tests/test_differential.py) checks that its random graphs reach each one.
KERNEL_VARIANTS: dict[str, frozenset[str]] = {
    "portable": frozenset(_LIBRARY + ("conv:library-stream", "fc:library", "fc:library-per-channel")),
    "optimized": frozenset(_LIBRARY + (
        "conv:window", "conv:pointwise-ascending", "conv:pointwise-descending", "conv:int8-weights",
        "conv:int16-weights", "conv:odd-pixels", "conv:explicit-padding", "conv:output-over-input", "conv:clamped",
        "conv:long-product", "conv:ragged-depth", "dw:clamped", "fc:ragged-depth", "fc:clamped",
        *(f"conv:{m}" for m in _RQ), "conv:rq-signed",
        "dw:two-rows", "dw:one-row", "dw:odd-columns", "dw:odd-rows", "dw:multiplier", "dw:pair-taps", "dw:single-taps",
        "dw:explicit-padding", "dw:output-over-input", *(f"dw:{m}" for m in _RQ), "dw:rq-signed",
        "fc:int8-weights", "fc:int16-weights", "fc:per-channel-requant", "fc:one-requant", "fc:batches", "fc:tail-rows",
        "fc:no-bias", "fc:library", *(f"fc:{m}" for m in _RQ), "fc:rq-signed",
        "add:tables", *(f"add:{m}" for m in _RQ), "avgpool:four-channels",
    )),
}


# ---- scratch ----
def kernel_scratch(graph: Graph, kernels: str = "portable") -> dict[int, int]:
    """Bytes of scratch each op's kernel needs, by op position (0 where none), for the kernel set
    `kernels`. Plan with kernels="optimized" to give the optimised kernels their scratch inside
    the arena; otherwise generate_c finds them room in the arena (bytes no live tensor uses at
    that step) or, failing that, a static buffer outside it."""
    if kernels not in KERNEL_SETS:
        raise ValueError(f"kernels {kernels!r}: one of {', '.join(KERNEL_SETS)}")
    needs: dict[int, int] = {}
    for position, op in enumerate(graph.ops):
        if op.kind == "AVERAGE_POOL_2D":
            needs[position] = 4 * graph.tensors[op.inputs[0]].shape[-1]  # int32 sums per channel
        elif op.kind == "MEAN":
            needs[position] = 4 * graph.tensors[op.outputs[0]].elements  # int32 sum per output
        elif kernels == "optimized":
            needs[position] = optimized_scratch(graph, op)
        else:
            needs[position] = 0
    return needs


def optimized_scratch(graph: Graph, op: Op) -> int:
    """Scratch of the optimised kernel of one op (0 if it has none or falls back to the library)."""
    try:
        if op.kind == "CONV_2D":
            shape = _conv_shape(graph, op)
            return shape.scratch if shape.optimizable else 0
        if op.kind == "DEPTHWISE_CONV_2D":
            shape = _depthwise_shape(graph, op)
            return shape.scratch if shape.optimizable else 0
    except (KeyError, ValueError, IndexError, UnsupportedOpError):
        return 0
    return 0


# ---- literals ----
def _int(value: int) -> str:
    value = int(value)
    return "(-2147483647 - 1)" if value == -(2**31) else str(value)


def _float(value: float) -> str:
    """A float32 literal, exact (C99 hexadecimal)."""
    return float(np.float32(value)).hex() + "f"


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def _int_list(values: Sequence[int]) -> str:
    return "(const int32_t[]){" + ", ".join(_int(v) for v in values) + "}"


def _extend4(shape: Sequence[int], where: str) -> tuple[int, int, int, int]:
    if len(shape) > 4:
        raise UnsupportedOpError(f"{where}: rank {len(shape)} tensors are not supported (at most 4 dimensions)")
    return tuple([1] * (4 - len(shape)) + [int(d) for d in shape])  # type: ignore[return-value]


class _Generator:
    def __init__(self, graph: Graph, plan: MemoryPlan, prefix: str, kernels: str = "portable",
                 wide_budget: int | None = None) -> None:
        self.graph = graph
        self.plan = plan
        self.prefix = prefix
        self.kernels = kernels
        self.arrays: list[_Array] = []
        self.array_of_tensor: dict[int, str] = {}
        self.uses_float = False
        self.functions: list[str] = []  # static per-layer functions (optimised kernels)
        self.static_scratch = 0  # bytes of the scratch buffer outside the arena (0: none needed)
        self.overlaps = dict(getattr(plan, "overlaps", {}) or {})
        widened = _widened(graph, wide_budget) if kernels == "optimized" else []
        self.wide: set[int] = {c.position for c in widened}
        self.widened_bytes = sum(c.extra_bytes for c in widened)  # flash beyond int8 of the int16 copies

    @property
    def optimized(self) -> bool:
        return self.kernels == "optimized"

    def function(self, position: int, body: list[str]) -> str:
        """Define `static void {prefix}_op{position}(void)` with `body`; the call to it."""
        name = f"{self.prefix}_op{position}"
        text = "\n".join([f"static __attribute__((noinline)) void {name}(void)", "{"] + [("    " + line) if line else "" for line in body] + ["}"])
        self.functions.append(text)
        return f"{name}();"

    def room(self, position: int, op: Op, needed: int) -> str:
        """A `uint8_t *` expression for `needed` bytes of scratch at this op, 8-byte aligned: the
        plan's scratch for the op if large enough, else arena bytes that no tensor alive at this
        step uses, else a static buffer outside the arena."""
        if needed <= 0:
            return "NULL"
        size = self.plan.scratch_sizes.get(position, 0)
        if size >= needed and self.plan.scratch_offsets[position] % SCRATCH_ALIGNMENT == 0:
            return f"&{self.prefix}_arena[{self.plan.scratch_offsets[position]}]"
        if position in self.overlaps and not self.optimized:
            raise UnsupportedOpError(
                f"{self.where(op)}: the plan overlaps its output with its input but gives its kernel {size} bytes "
                f"of scratch; it needs {needed}"
            )
        free = self.free_arena(position, needed)
        if free is not None:
            return f"&{self.prefix}_arena[{free}]"
        self.static_scratch = max(self.static_scratch, needed)
        return f"(uint8_t *){self.prefix}_scratch"

    def free_arena(self, position: int, needed: int) -> int | None:
        """The lowest aligned arena offset with `needed` bytes that nothing alive at this step uses."""
        busy = [(p.offset, p.offset + p.size) for p in self.plan.placements.values()
                if p.first_step <= position <= p.last_step and p.size > 0]
        if position in self.plan.scratch_offsets:
            start = self.plan.scratch_offsets[position]
            busy.append((start, start + self.plan.scratch_sizes[position]))
        candidate = 0
        for start, end in sorted(busy):
            if candidate + needed <= start:
                return candidate
            candidate = max(candidate, -(-end // SCRATCH_ALIGNMENT) * SCRATCH_ALIGNMENT)
        return candidate if candidate + needed <= self.plan.arena_bytes else None

    # -- naming and pointers --
    def where(self, op: Op) -> str:
        return f"model {self.graph.name}: op {op.index} ({op.kind})"

    def const_array(self, index: int) -> str:
        if index in self.array_of_tensor:
            return self.array_of_tensor[index]
        tensor = self.graph.tensors[index]
        ctype = _CTYPES[tensor.dtype]
        data = np.asarray(tensor.data).ravel()
        if tensor.dtype == "float32":
            values = [_float(v) for v in data]
            self.uses_float = True
        else:
            values = [_int(v) for v in data.astype(np.int64)]
        name = f"{self.prefix}_t{index}"
        comment = f"tensor {index} '{_comment_safe(tensor.name)}': {_shape(tensor.shape)} {tensor.dtype}"
        self.arrays.append(_Array(name, ctype, values or ["0"], comment))
        self.array_of_tensor[index] = name
        return name

    def int32_array(self, name: str, values: Sequence[int], comment: str) -> str:
        full = f"{self.prefix}_{name}"
        self.arrays.append(_Array(full, "int32_t", [_int(v) for v in values], comment))
        return full

    def ptr(self, index: int, *, const: bool = False) -> str:
        """A C expression pointing at tensor `index`: its arena bytes, or its constant array."""
        if index < 0:
            return "NULL"
        tensor = self.graph.tensors[index]
        ctype = _CTYPES[tensor.dtype]
        if tensor.dtype == "float32":
            self.uses_float = True
        if tensor.data is not None:
            return self.const_array(index)
        placement = self.plan.placements.get(index)
        if placement is None:
            raise UnsupportedOpError(f"model {self.graph.name}: tensor {index} '{tensor.name}' has no place in the memory plan")
        qualifier = "const " if const else ""
        return f"({qualifier}{ctype} *)&{self.prefix}_arena[{placement.offset}]"

    def scratch(self, position: int, op: Op, needed: int) -> str:
        if needed <= 0:
            return "NULL"
        size = self.plan.scratch_sizes.get(position, 0)
        if size < needed:
            raise UnsupportedOpError(
                f"{self.where(op)}: the memory plan gives its kernel {size} bytes of scratch; it needs {needed} "
                "(plan with engine.codegen.kernel_scratch)"
            )
        return f"(int32_t *)&{self.prefix}_arena[{self.plan.scratch_offsets[position]}]"

    def tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]

    def describe(self, op: Op, extra: str = "") -> str:
        """The layer's comment: op index and kind, shapes and types in and out, and `extra`."""
        weighted = op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
        parts = []
        for position, t in enumerate(op.inputs):
            if t < 0 or (op.kind in ("MEAN", "PAD", "RESHAPE") and position == 1):
                continue
            if weighted:
                label = ("in", "filter", "bias")[min(position, 2)]
            else:
                label = "in" if len(op.inputs) == 1 or (position == 0 and op.kind != "ADD" and op.kind != "CONCATENATION") else f"in{position}"
            tensor = self.tensor(t)
            parts.append(f"{label} {_shape(tensor.shape)} {tensor.dtype}")
        for t in op.outputs:
            parts.append(f"out {_shape(self.tensor(t).shape)} {self.tensor(t).dtype}")
        text = f"op {op.index} ({op.kind}): " + ", ".join(parts)
        return _comment_safe(text + (f"; {extra}" if extra else ""))


def _comment_safe(text: str) -> str:
    return text.replace("*/", "* /").replace("\n", " ")


# ---- shapes of the windowed ops ----
def _groups(k: int) -> int:
    """Groups of four values in a vector of k (the last one padded with zeros)."""
    return -(-k // 4)


def _padding_text(op: Op, pt: int, pl: int) -> str:
    return f"{op.attrs['padding']} (pad top {pt}, left {pl})"


@dataclass(frozen=True)
class _ConvShape:
    n: int
    h: int
    w: int
    ci: int
    co: int
    kh: int
    kw: int
    oh: int
    ow: int
    sh: int
    sw: int
    pt: int
    pl: int

    @property
    def pointwise(self) -> bool:
        """1x1, stride 1, no padding: output pixel p reads input pixel p only."""
        return (self.kh, self.kw, self.sh, self.sw, self.pt, self.pl) == (1, 1, 1, 1, 0, 0) and \
            (self.oh, self.ow) == (self.h, self.w)

    @property
    def k4(self) -> int:
        return _groups(self.kh * self.kw * self.ci)

    @property
    def scratch(self) -> int:
        """Two pixels widened to int16 (16 bytes a group), and a window's bytes unless pointwise."""
        return pixel_stream_bytes(self.ci) if self.pointwise else 20 * self.k4

    @property
    def optimizable(self) -> bool:
        return self.n == 1 and min(self.ci, self.co, self.oh, self.ow) > 0


def _conv_shape(graph: Graph, op: Op, where: str = "") -> _ConvShape:
    x, w, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    n, h, wd, c = x.shape
    oc, kh, kw, ic = w.shape
    _, oh, ow, occ = y.shape
    if ic != c:
        raise UnsupportedOpError(f"{where}: grouped convolution (filter depth {ic}, input depth {c}) is not supported")
    if occ != oc:
        raise UnsupportedOpError(f"{where}: output depth {occ} differs from the filter's {oc}")
    win = prepare_window(op.attrs, (h, wd), (kh, kw), (oh, ow), where)
    return _ConvShape(n, h, wd, c, oc, kh, kw, oh, ow, win.stride_h, win.stride_w, win.pad_top, win.pad_left)


@dataclass(frozen=True)
class _DepthwiseShape:
    n: int
    h: int
    w: int
    c: int
    mult: int
    kh: int
    kw: int
    oh: int
    ow: int
    sh: int
    sw: int
    pt: int
    pl: int

    @property
    def rows(self) -> int:
        """Rows of the padded channel plane: those the windows reach."""
        return (self.oh - 1) * self.sh + self.kh

    @property
    def width(self) -> int:
        """Bytes a plane row: output pairs read whole words from x * stride on."""
        return (self.ow + self.ow % 2 - 2) * self.sw + 4 * _groups(self.sw + self.kw)

    @property
    def scratch(self) -> int:
        return padded_plane_bytes(self.oh, self.ow, self.kh, self.kw, self.sh, self.sw)

    @property
    def two_rows(self) -> bool:
        """Stride 1: output rows go in pairs that share plane rows."""
        return self.sh == 1 and self.oh >= 2

    @property
    def optimizable(self) -> bool:
        """Batch 1, and a channel plane that costs little SRAM (engine.overlap.plane_fits: a
        one-channel input would otherwise be copied whole)."""
        fits = plane_fits(self.scratch, self.n * self.h * self.w * self.c)
        return self.n == 1 and min(self.c, self.oh, self.ow) > 0 and fits


def _depthwise_shape(graph: Graph, op: Op, where: str = "") -> _DepthwiseShape:
    x, w, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    n, h, wd, c = x.shape
    _, kh, kw, oc = w.shape
    _, oh, ow, occ = y.shape
    if c == 0 or oc % c != 0 or occ != oc:
        raise UnsupportedOpError(f"{where}: {oc} filter channels are not a multiple of {c} input channels")
    win = prepare_window(op.attrs, (h, wd), (kh, kw), (oh, ow), where)
    return _DepthwiseShape(n, h, wd, c, oc // c, kh, kw, oh, ow, win.stride_h, win.stride_w, win.pad_top, win.pad_left)


def _bias_values(g: _Generator, op: Op, channels: int) -> np.ndarray:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return np.asarray(g.tensor(op.inputs[2]).data, dtype=np.int64).ravel()
    return np.zeros(channels, dtype=np.int64)


# ---- one function per op kind ----
def _conv(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    shape = _conv_shape(g.graph, op, where)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    params = prepare_conv(g.graph, op, where)
    mults, shifts, lo, hi = list(params.multipliers), list(params.shifts), params.output_min, params.output_max
    extra = f"stride {shape.sh}x{shape.sw}, {_padding_text(op, shape.pt, shape.pl)}, {op.attrs.get('activation', 'NONE')}"
    rule = g.overlaps.get(position)
    if rule is not None and not shape.pointwise:
        raise UnsupportedOpError(f"{where}: the plan overlaps its output with its input ({rule.kind}) but it is not a 1x1 stride-1 convolution")
    if g.optimized and shape.optimizable:
        body = _opt_conv(g, position, op, shape, mults, shifts, lo, hi)
        how = "two pixels x two channels a step, " + ("int16 weights" if position in g.wide else "int8 weights")
        if rule is not None:
            how += f", output over its input ({rule.kind}, {'descending' if shape.co > shape.ci else 'ascending'})"
        order = ("pointwise-descending" if shape.co > shape.ci else "pointwise-ascending") if shape.pointwise else "window"
        variant = _tags("conv", order, "int16-weights" if position in g.wide else "int8-weights",
                        *_rq_tags(_requant_mode(mults, shifts)), (shape.oh * shape.ow) % 2 and "odd-pixels",
                        op.attrs["padding"] == "EXPLICIT" and "explicit-padding", rule is not None and "output-over-input",
                        (lo > -128 or hi < 127) and "clamped", shape.k4 > FUSED_STEPS and "long-product",
                        (shape.kh * shape.kw * shape.ci) % 4 and "ragged-depth")
        return _Layer(g.describe(op, f"{extra}; {how}"), [g.function(position, body)], variant)
    mult, shift, bias = _library_constants(g, position, op, mults, shifts)
    if rule is not None:
        call = (
            f"tl_conv_1x1_stream_s8({g.ptr(op.inputs[0], const=True)}, {shape.h * shape.w}, {shape.ci}, {g.ptr(op.inputs[1])}, "
            f"{bias}, {g.ptr(op.outputs[0])}, {shape.co}, {_int(-_zp(x))}, {_int(_zp(y))}, {mult}, {shift}, {lo}, {hi}, "
            f"(int8_t *){g.room(position, op, shape.ci)});"
        )
        return _Layer(g.describe(op, f"{extra}; output over its input ({rule.kind})"), [call], _tags("conv", "library-stream"))
    call = (
        f"tl_conv_s8({g.ptr(op.inputs[0], const=True)}, {shape.n}, {shape.h}, {shape.w}, {shape.ci}, {g.ptr(op.inputs[1])}, "
        f"{shape.kh}, {shape.kw}, {bias}, {g.ptr(op.outputs[0])}, {shape.oh}, {shape.ow}, {shape.co}, {shape.sh}, {shape.sw}, "
        f"{shape.pt}, {shape.pl}, {_int(-_zp(x))}, {_int(_zp(y))}, {mult}, {shift}, {lo}, {hi});"
    )
    return _Layer(g.describe(op, extra), [call], _tags("conv", "library"))


def _library_constants(g: _Generator, position: int, op: Op, mults: list[int], shifts: list[int]) -> tuple[str, str, str]:
    """The per-channel multiplier and shift arrays and the bias pointer a library kernel takes."""
    mult = g.int32_array(f"op{position}_mult", mults, f"op {op.index}: per-channel multipliers")
    shift = g.int32_array(f"op{position}_shift", shifts, f"op {op.index}: per-channel shifts")
    bias = g.ptr(op.inputs[2], const=True) if len(op.inputs) > 2 else "NULL"
    return mult, shift, bias


def _depthwise(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    shape = _depthwise_shape(g.graph, op, where)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    params = prepare_conv(g.graph, op, where)
    mults, shifts, lo, hi = list(params.multipliers), list(params.shifts), params.output_min, params.output_max
    extra = (f"depth multiplier {shape.mult}, stride {shape.sh}x{shape.sw}, {_padding_text(op, shape.pt, shape.pl)}, "
             f"{op.attrs.get('activation', 'NONE')}")
    rule = g.overlaps.get(position)
    if rule is not None and (shape.mult != 1 or shape.n != 1):
        raise UnsupportedOpError(f"{where}: the plan overlaps its output with its input ({rule.kind}) but its depth multiplier is {shape.mult}")
    if g.optimized and shape.optimizable:
        body = _opt_depthwise(g, position, op, shape, mults, shifts, lo, hi)
        how = "channel planes, two outputs a step"
        if rule is not None:
            how += f", output over its input ({rule.kind})"
        kinds = {e[0] for ops in _dw_schedule(shape.kw, shape.sw) for e in ops}
        variant = _tags("dw", "two-rows" if shape.two_rows else "one-row", shape.ow % 2 and "odd-columns",
                        shape.two_rows and shape.oh % 2 and "odd-rows", shape.mult > 1 and "multiplier",
                        "pair" in kinds and "pair-taps", "single" in kinds and "single-taps",
                        *_rq_tags(_requant_mode(mults, shifts)), op.attrs["padding"] == "EXPLICIT" and "explicit-padding",
                        rule is not None and "output-over-input", (lo > -128 or hi < 127) and "clamped")
        return _Layer(g.describe(op, f"{extra}; {how}"), [g.function(position, body)], variant)
    mult, shift, bias = _library_constants(g, position, op, mults, shifts)
    if rule is not None:
        call = (
            f"tl_depthwise_conv_inplace_s8({g.ptr(op.inputs[0], const=True)}, {shape.h}, {shape.w}, {shape.c}, "
            f"{g.ptr(op.inputs[1])}, {shape.kh}, {shape.kw}, {bias}, {g.ptr(op.outputs[0])}, {shape.oh}, {shape.ow}, "
            f"{shape.sh}, {shape.sw}, {shape.pt}, {shape.pl}, {_int(-_zp(x))}, {_int(_zp(y))}, {mult}, {shift}, {lo}, {hi}, "
            f"(int8_t *){g.room(position, op, shape.oh * shape.ow)});"
        )
        return _Layer(g.describe(op, f"{extra}; output over its input ({rule.kind})"), [call], _tags("dw", "library-inplace"))
    call = (
        f"tl_depthwise_conv_s8({g.ptr(op.inputs[0], const=True)}, {shape.n}, {shape.h}, {shape.w}, {shape.c}, "
        f"{g.ptr(op.inputs[1])}, {shape.kh}, {shape.kw}, {shape.mult}, {bias}, {g.ptr(op.outputs[0])}, {shape.oh}, "
        f"{shape.ow}, {shape.sh}, {shape.sw}, {shape.pt}, {shape.pl}, {_int(-_zp(x))}, {_int(_zp(y))}, {mult}, {shift}, "
        f"{lo}, {hi});"
    )
    return _Layer(g.describe(op, extra), [call], _tags("dw", "library"))


def _fc_shape(g: _Generator, op: Op, where: str) -> tuple[int, int, int]:
    """(batches, depth, units) of a FULLY_CONNECTED."""
    x, w, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    if len(w.shape) != 2:
        raise UnsupportedOpError(f"{where}: weights of shape {_shape(w.shape)} (need [units, depth])")
    units, depth = w.shape
    if depth == 0 or x.elements % depth:
        raise UnsupportedOpError(f"{where}: input of {x.elements} values is not a whole number of rows of {depth}")
    batches = x.elements // depth
    if y.elements != batches * units:
        raise UnsupportedOpError(f"{where}: output {_shape(y.shape)} does not hold {batches} x {units} values")
    return batches, depth, units


def _fully_connected(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, w, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    batches, depth, units = _fc_shape(g, op, where)
    params = prepare_fully_connected(g.graph, op, units, where)
    mults, shifts, lo, hi = list(params.multipliers), list(params.shifts), params.output_min, params.output_max
    filter_offset = params.filter_offset
    if g.optimized and (filter_offset == 0 or position in g.wide):
        body = _opt_fully_connected(g, position, op, batches, depth, units, filter_offset, mults, shifts, lo, hi)
        how = f"one vector x {GEMV_ROWS} rows a step, widened on the fly, " + ("int16 weights" if position in g.wide else "int8 weights")
        variant = _tags("fc", "int16-weights" if position in g.wide else "int8-weights", *_rq_tags(_requant_mode(mults, shifts)),
                        "per-channel-requant" if len(set(zip(mults, shifts))) > 1 else "one-requant",
                        batches > 1 and "batches", units % GEMV_ROWS and "tail-rows", depth % 4 and "ragged-depth",
                        (lo > -128 or hi < 127) and "clamped",
                        not (len(op.inputs) > 2 and op.inputs[2] >= 0) and "no-bias")
        return _Layer(g.describe(op, f"{op.attrs.get('activation', 'NONE')}; {how}"), [g.function(position, body)], variant)
    bias = g.ptr(op.inputs[2], const=True) if len(op.inputs) > 2 else "NULL"
    head = f"{g.ptr(op.inputs[0], const=True)}, {g.ptr(op.inputs[1])}, {bias}, {g.ptr(op.outputs[0])}, {batches}, {depth}, {units}"
    if len(w.scale) > 1:
        mult = g.int32_array(f"op{position}_mult", mults, f"op {op.index}: per-channel multipliers")
        shift = g.int32_array(f"op{position}_shift", shifts, f"op {op.index}: per-channel shifts")
        call = (f"tl_fully_connected_per_channel_s8({head}, {_int(-_zp(x))}, {_int(_zp(y))}, {mult}, {shift}, "
                f"{lo}, {hi});")
        return _Layer(g.describe(op, op.attrs.get("activation", "NONE")), [call], _tags("fc", "library-per-channel"))
    else:
        call = (f"tl_fully_connected_s8({head}, {_int(-_zp(x))}, {_int(filter_offset)}, {_int(_zp(y))}, {_int(mults[0])}, "
                f"{shifts[0]}, {lo}, {hi});")
    return _Layer(g.describe(op, op.attrs.get("activation", "NONE")), [call], _tags("fc", "library"))


# ---- the optimised kernels' constants and bodies ----
GEMV_ROWS = 6  # TL_MV_ROWS of tl_opt.h
FUSED_STEPS = 32  # TL_FUSED_STEPS of tl_opt.h: longer products loop in the fused assembly block
# Instructions that int16 ("wide") weights save per multiply-accumulate against int8 weights
# widened in the loop by SXTB16. Measured under QEMU's mps2-an500 (Cortex-M7): MCUNet's F746 model
# (CONV_2D only) on qemu-h743, where all its int16 copies fit, ran 117,569,080 instructions with
# every candidate int16 and 130,811,200 with none, over 56.2 M multiply-accumulates; ad01_int8
# (FULLY_CONNECTED only) on qemu-f746 ran 256,560 with every candidate int16 and 386,800 with 2 KB
# of them left (its flash budget at 318,824 B), over 0.26 M. The inner loops alone account for
# 3/16 and 8/24.
WIDE_SAVING_PER_MAC = {"CONV_2D": 0.236, "FULLY_CONNECTED": 0.49}


@dataclass(frozen=True)
class WideningCandidate:
    """A layer whose weights the optimised kernels can store as int16: what it costs in flash and
    what it is estimated to save."""

    position: int
    extra_bytes: int  # flash beyond the int8 words
    saved_instructions: float

    @property
    def gain_per_byte(self) -> float:
        return self.saved_instructions / max(self.extra_bytes, 1)


def widening_candidates(graph: Graph) -> list[WideningCandidate]:
    """The CONV_2D and FULLY_CONNECTED layers of the optimised kernels that can take int16 weights,
    best gain per byte first."""
    candidates = []
    for position, op in enumerate(graph.ops):
        try:
            if op.kind == "CONV_2D":
                shape = _conv_shape(graph, op)
                if not shape.optimizable:
                    continue
                extra, macs = shape.co * shape.k4 * 4, shape.oh * shape.ow * shape.co * shape.kh * shape.kw * shape.ci
            elif op.kind == "FULLY_CONNECTED":
                units, depth = graph.tensors[op.inputs[1]].shape
                batches = graph.tensors[op.inputs[0]].elements // max(depth, 1)
                extra, macs = units * _groups(depth) * 4, batches * units * depth
            else:
                continue
        except (KeyError, ValueError, IndexError, UnsupportedOpError):
            continue
        candidates.append(WideningCandidate(position, extra, WIDE_SAVING_PER_MAC[op.kind] * macs))
    return sorted(candidates, key=lambda c: (-c.gain_per_byte, c.position))


def choose_wide(graph: Graph, budget: int | None = None) -> set[int]:
    """Positions of the layers whose weights go int16: best gain per byte first, while their extra
    flash stays within `budget` bytes (None: every candidate)."""
    return {c.position for c in _widened(graph, budget)}


def _widened(graph: Graph, budget: int | None) -> list[WideningCandidate]:
    """The candidates choose_wide takes, in its order."""
    chosen, spent = [], 0
    for candidate in widening_candidates(graph):
        if budget is None or spent + candidate.extra_bytes <= budget:
            chosen.append(candidate)
            spent += candidate.extra_bytes
    return chosen


def _int32_words(values: np.ndarray) -> list[int]:
    """int64 values taken modulo 2^32 as signed int32."""
    words = (np.asarray(values, dtype=np.int64).ravel() + (1 << 31)) % (1 << 32) - (1 << 31)
    return [int(v) for v in words]


def _pack_gemm(weights: np.ndarray, block: int, wide: bool) -> list[int]:
    """Weights [rows][k] (int8 values, or int16 ones when wide) as int32 words for tl_gemm_2px
    (block 2) or tl_gemv (block GEMV_ROWS): blocks of `block` rows, each k4 groups of `block` rows of one
    group (int16 pairs (k0,k2),(k1,k3) when wide, else the four bytes as one word), then the rows
    left over one by one. k is padded with zeros to a multiple of 4."""
    rows, k = weights.shape
    k4 = _groups(k)
    padded = np.zeros((rows, 4 * k4), dtype=np.int64)
    padded[:, :k] = weights
    g = padded.reshape(rows, k4, 4)
    if wide:
        units = np.stack([(g[..., 0] & 0xFFFF) | (g[..., 2] << 16), (g[..., 1] & 0xFFFF) | (g[..., 3] << 16)], axis=-1)
    else:
        units = ((g[..., 0] & 0xFF) | ((g[..., 1] & 0xFF) << 8) | ((g[..., 2] & 0xFF) << 16) | (g[..., 3] << 24))[..., None]
    full = rows // block * block
    lanes = units.shape[-1]
    parts = [units[:full].reshape(full // block, block, k4, lanes).transpose(0, 2, 1, 3).ravel(), units[full:].ravel()]
    return _int32_words(np.concatenate(parts))


# Requantisation modes of tl_opt.h's tl_out8 (TL_RQ_*), cheapest last.
RQ_PORTABLE, RQ_ANY, RQ_EVEN, RQ_EVEN_ZP = 0, 1, 2, 3
RQ_SIGNED = 4  # a flag beside the mode: some multiplier is negative (TL_RQ_SIGNED)
RQ_BASE = 3  # the mode without its flag
EVEN_ZP_MAX_SHIFT = 23  # with zp folded into the rounding constant, hi stays within 32 bits


def _requant_mode(mults: Sequence[int], shifts: Sequence[int]) -> int:
    """The cheapest tl_out8 mode that is exact for every channel (right shifts e = -shift). The
    fast modes round by the product's sign: where a channel's multiplier is negative (a negative
    weight scale, as in MCUNet's F746 model) they carry RQ_SIGNED, which reads that sign from
    acc ^ (m >> 31). The multiplier -2^31 (TFLite's saturating case) takes the portable mode."""
    if any(m <= -(2**31) for m in mults):
        return RQ_PORTABLE
    signed = RQ_SIGNED if any(m < 0 for m in mults) else 0
    shifts_used = [-s for m, s in zip(mults, shifts) if m != 0]
    if all(e >= 3 for e in shifts_used):
        return (RQ_EVEN_ZP if all(e <= EVEN_ZP_MAX_SHIFT for e in shifts_used) else RQ_EVEN) | signed
    if all(e >= 1 for e in shifts_used):
        return RQ_ANY | signed
    return RQ_PORTABLE


def _rq_tags(mode: int) -> tuple[str, ...]:
    """A requantisation mode's variant tags: the mode, and whether it reads a negative multiplier's sign."""
    return (_RQ[mode & RQ_BASE], "rq-signed" if mode & RQ_SIGNED else "")


def _rq_params(m: int, shift: int, mode: int, zp: int) -> tuple[int, int]:
    """(h, sh) of one channel for tl_out8 in `mode` (see tl_opt.h); a zero multiplier gives 0."""
    mode &= RQ_BASE
    if mode == RQ_PORTABLE:
        return 0, shift
    e = -shift if m != 0 else 3
    h = 0
    if mode in (RQ_EVEN, RQ_EVEN_ZP):
        h = 1 << (e - 2)
        if mode == RQ_EVEN_ZP:
            h += zp << (e - 1)
    return h, e - 1


def _rq_rows(bias: np.ndarray, mults: Sequence[int], shifts: Sequence[int], zp: int, with_h: bool = True) -> tuple[list[int], int]:
    """Per channel {bias, multiplier, h, sh} ({bias, multiplier, sh} without h), flattened; and the mode."""
    mode = _requant_mode(mults, shifts)
    rows = []
    for b, m, s in zip(bias, mults, shifts):
        h, sh = _rq_params(int(m), int(s), mode, zp)
        rows += [int(b), int(m), h, sh] if with_h else [int(b), int(m), sh]
    return rows, mode


def _pair_literal(value: int) -> str:
    """Two int16 lanes holding `value`, as an int32 literal (SXTAB16's addend)."""
    return _int(_int32_words(np.array([(value & 0xFFFF) | (value << 16)]))[0])


def _opt_conv(g: _Generator, position: int, op: Op, shape: _ConvShape, mults: list[int], shifts: list[int],
              lo: int, hi: int) -> list[str]:
    x, w, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    wide = position in g.wide
    weights = np.asarray(w.data, dtype=np.int64).reshape(shape.co, -1)
    kind = "int16 pairs" if wide else "int8 words"
    wname = g.int32_array(f"op{position}_w", _pack_gemm(weights, 2, wide), f"op {op.index}: weights, {kind}, channel pairs")
    rq, mode = _rq_rows(_bias_values(g, op, shape.co), mults, shifts, _zp(y))
    rqname = g.int32_array(f"op{position}_rq", rq, f"op {op.index}: per channel bias, multiplier, rounding, shift")
    co, ci, k4, n = shape.co, shape.ci, shape.k4, shape.oh * shape.ow
    room = g.room(position, op, shape.scratch)
    off2 = _pair_literal(-_zp(x))
    tail = f"{mode}, {_int(_zp(y))}, {lo}, {hi}"

    def gemm(a: str, b: str, store_b: str) -> str:
        return f"tl_gemm_2px(xq, {wname}, {int(wide)}, {rqname}, {k4}, {co}, {a}, {store_b}, {tail});"

    body = [f"const int8_t *in = {g.ptr(op.inputs[0], const=True)};", f"int8_t *out = {g.ptr(op.outputs[0])};",
            f"int32_t *xq = (int32_t *)({room});", "int p;"]
    if shape.pointwise:
        # Two pixels read, then written; descending when the output is wider (in-place safe).
        step = ["    tl_expand(in + p * {ci}, {ci}, xq, 4, {off2});".format(ci=ci, off2=off2),
                "    tl_expand(in + (p + 1) * {ci}, {ci}, xq + 2, 4, {off2});".format(ci=ci, off2=off2),
                "    " + gemm(f"out + p * {co}", f"out + (p + 1) * {co}", "1")]
        single = [f"tl_expand(in + {{p}} * {ci}, {ci}, xq, 4, {off2});", gemm(f"out + {{p}} * {co}", "out", "0")]
        if co > ci:
            body += [f"for (p = {n - 2}; p >= 0; p -= 2) {{", *step, "}"]
            if n % 2:
                body += [line.replace("{p}", "0") for line in single]
        else:
            body += [f"for (p = 0; p + 1 < {n}; p += 2) {{", *step, "}"]
            if n % 2:
                body += [line.replace("{p}", str(n - 1)) for line in single]
        return body
    k = shape.kh * shape.kw * ci
    window = (f"tl_window(in, {shape.h}, {shape.w}, {ci}, {shape.kh}, {shape.kw}, oy * {shape.sh} - {shape.pt}, "
              f"ox * {shape.sw} - {shape.pl}, {_zp(x)}, win);")
    advance = f"if (++ox == {shape.ow}) {{ ox = 0; ++oy; }}"
    body += [f"int8_t *win = (int8_t *)(xq + {4 * k4});", "int oy = 0, ox = 0;", f"for (p = 0; p < {n}; p += 2) {{",
             f"    {window}", f"    tl_expand(win, {k}, xq, 4, {off2});", f"    {advance}"]
    second = [window, f"tl_expand(win, {k}, xq + 2, 4, {off2});", advance]
    if n % 2:
        body += [f"    if (p + 1 < {n}) {{", *("        " + line for line in second), "    }",
                 "    " + gemm(f"out + p * {co}", f"out + (p + 1) * {co}", f"p + 1 < {n}")]
    else:
        body += [*("    " + line for line in second), "    " + gemm(f"out + p * {co}", f"out + (p + 1) * {co}", "1")]
    body.append("}")
    return body


def _dw_schedule(kw: int, sw: int) -> list[list[tuple]]:
    """The multiply-accumulates of one kernel row for the two outputs of a pair, whose window
    starts at plane byte o * stride (o = 0, 1) of words loaded from the pair's first byte on.
    Column c is byte c % 4 of word c // 4: SXTAB16 gives e = (byte 0, byte 2), its ROR #8 form
    o = (byte 1, byte 3). Taps j and j+2 in one register go through one SMLAD ("pair"); the
    others through one SMLAxy each ("single"). Entries: (kind, tap, register e|o, word, half)."""
    schedule = []
    for o in (0, 1):
        ops, used = [], set()
        for j in range(kw):
            if j in used:
                continue
            t, lane = divmod(o * sw + j, 4)
            if lane < 2 and j + 2 < kw and j + 2 not in used:
                ops.append(("pair", j, "eo"[lane], t, "b"))
                used.update((j, j + 2))
            else:
                ops.append(("single", j, "eo"[lane % 2], t, "bt"[lane // 2]))
                used.add(j)
        schedule.append(ops)
    return schedule


def _opt_depthwise(g: _Generator, position: int, op: Op, shape: _DepthwiseShape, mults: list[int], shifts: list[int],
                   lo: int, hi: int) -> list[str]:
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    co = shape.c * shape.mult
    rq, mode = _rq_rows(_bias_values(g, op, co), mults, shifts, _zp(y), with_h=False)
    rqname = g.int32_array(f"op{position}_rq", rq, f"op {op.index}: per channel bias, multiplier, shift")
    wname = g.const_array(op.inputs[1])
    width, rows = shape.width, shape.rows
    room = g.room(position, op, shape.scratch)
    schedule = _dw_schedule(shape.kw, shape.sw)
    pair_taps = sorted({e[1] for ops in schedule for e in ops if e[0] == "pair"})
    single_taps = sorted({e[1] for ops in schedule for e in ops if e[0] == "single"})

    def weight(r: int, j: int) -> str:
        return f"wk[{(r * shape.kw + j) * co}]"

    # Taps no pair register holds go two to a register, (bottom, top).
    loose = [(r, j) for r in range(shape.kh) for j in single_taps if j not in pair_taps and j - 2 not in pair_taps]
    slots = {tap: (f"s{i // 2}", "bt"[i % 2]) for i, tap in enumerate(loose)}

    def single_reg(r: int, j: int) -> tuple[str, str]:
        if j in pair_taps:
            return f"p{r}_{j}", "b"
        if j - 2 in pair_taps:
            return f"p{r}_{j - 2}", "t"
        return slots[(r, j)]

    used_regs: set[str] = set()

    def step(outputs: tuple[tuple[int, int], ...]) -> list[str]:
        """The multiply-accumulates of outputs (dy, o): output row dy (0, or 1 for the second of a
        row pair at stride 1) and column o of the pair. Each plane row is loaded and widened once
        for every output that reads it (row r of the kernel for output row dy is plane row
        r + dy); accumulators are a{dy}{o}."""
        lines = []
        for ir in range(shape.kh + max(dy for dy, _ in outputs)):
            users = [(dy, o, ir - dy) for dy, o in outputs if 0 <= ir - dy < shape.kh]
            needed: dict[int, set[str]] = {}
            for _, o, _ in users:
                for e in schedule[o]:
                    needed.setdefault(e[3], set()).add(e[2])
            for t in sorted(needed):
                lines.append(f"const uint32_t v{ir}_{t} = tl_ld32(p + {ir * width + 4 * t});")
                if "e" in needed[t]:
                    lines.append(f"const int32_t e{ir}_{t} = tl_sxtab16(off2, v{ir}_{t});")
                if "o" in needed[t]:
                    lines.append(f"const int32_t o{ir}_{t} = tl_sxtab16_r8(off2, v{ir}_{t});")
            for dy, o, r in users:
                acc = f"a{dy}{o}"
                for kind, j, reg, t, half in schedule[o]:
                    operand = f"{reg}{ir}_{t}"
                    if kind == "pair":
                        used_regs.add(f"p{r}_{j}")
                        lines.append(f"{acc} = tl_smlad({operand}, p{r}_{j}, {acc});")
                    else:
                        wreg, whalf = single_reg(r, j)
                        used_regs.add(wreg)
                        lines.append(f"{acc} = tl_smla{half}{whalf}({operand}, {wreg}, {acc});")
        return lines

    two_rows = shape.two_rows
    pair_step, tail_step = step(((0, 0), (0, 1))), step(((0, 0),))
    quad_step, quad_tail = (step(((0, 0), (0, 1), (1, 0), (1, 1))), step(((0, 0), (1, 0)))) if two_rows else ([], [])
    weights = []
    for r in range(shape.kh):
        for j in pair_taps:
            if f"p{r}_{j}" in used_regs:
                weights.append(f"const int32_t p{r}_{j} = tl_pair({weight(r, j)}, {weight(r, j + 2)});")
    for i in range(0, len(loose), 2):
        name = f"s{i // 2}"
        if name in used_regs:
            top = weight(*loose[i + 1]) if i + 1 < len(loose) else "0"
            weights.append(f"const int32_t {name} = tl_pair({weight(*loose[i])}, {top});")
    copy_rows = max(0, min(shape.h, rows - shape.pt))
    copy_cols = max(0, min(shape.w, width - shape.pl))
    out_tail = f"{mode}, {_int(_zp(y))}, {lo}, {hi}"
    body = [f"const int8_t *in = {g.ptr(op.inputs[0], const=True)};", f"int8_t *out = {g.ptr(op.outputs[0])};",
            f"int8_t *plane = (int8_t *)({room});", f"const int32_t off2 = {_pair_literal(-_zp(x))};", "int c, oy, ox;",
            f"tl_plane_border(plane, {rows}, {width}, {min(shape.pt, rows)}, {min(shape.pl, width)}, {copy_rows}, "
            f"{copy_cols}, {_zp(x)});",
            f"for (c = 0; c < {shape.c}; ++c) {{",
            f"    tl_plane_in(in + c, {copy_rows}, {copy_cols}, {shape.w * shape.c}, {shape.c}, plane + {shape.pt * width + shape.pl}, {width});"]
    inner = []
    if shape.mult > 1:
        body += ["    int mm;", f"    for (mm = 0; mm < {shape.mult}; ++mm) {{", f"        const int oc = c * {shape.mult} + mm;"]
        indent = "        "
    else:
        body += ["    const int oc = c;"]
        indent = "    "
    inner += [f"const int8_t *wk = {wname} + oc;", f"const int32_t *q = {rqname} + 3 * oc;",
              "const int32_t bias = q[0], m = q[1], sh = q[2];",
              f"const int32_t h = {'tl_rq_h(sh, ' + _int(_zp(y)) + ', ' + str(mode) + ')' if (mode & RQ_BASE) in (RQ_EVEN, RQ_EVEN_ZP) else '0'};",
              *weights,
              *rows_loop(shape, width, co, out_tail, pair_step, tail_step, quad_step, quad_tail, two_rows)]
    body += [indent + line for line in inner]
    if shape.mult > 1:
        body.append("    }")
    body.append("}")
    return body


def rows_loop(shape: _DepthwiseShape, width: int, co: int, out_tail: str, pair_step: list[str], tail_step: list[str],
              quad_step: list[str], quad_tail: list[str], two_rows: bool) -> list[str]:
    """The output rows of one channel plane: pairs of rows two columns at a time (stride 1), or
    single rows two columns at a time; then an odd column and an odd row."""
    def store(acc: str, offset: int) -> str:
        return f"o[{offset}] = tl_out8({acc}, m, h, sh, {out_tail});"

    row = shape.ow * co
    lines = []
    if two_rows:
        lines += [f"for (oy = 0; oy + 1 < {shape.oh}; oy += 2) {{",
                  f"    const int8_t *p = plane + oy * {width};",
                  f"    int8_t *o = out + oy * {row} + oc;",
                  f"    for (ox = 0; ox < {shape.ow // 2}; ++ox) {{",
                  "        int32_t a00 = bias, a01 = bias, a10 = bias, a11 = bias;",
                  *("        " + line for line in quad_step),
                  "        " + store("a00", 0), "        " + store("a01", co),
                  "        " + store("a10", row), "        " + store("a11", row + co),
                  "        p += 2;", f"        o += {2 * co};", "    }"]
        if shape.ow % 2:
            lines += ["    {", "        int32_t a00 = bias, a10 = bias;", *("        " + line for line in quad_tail),
                      "        " + store("a00", 0), "        " + store("a10", row), "    }"]
        lines.append("}")
        first = shape.oh - shape.oh % 2
        if shape.oh % 2 == 0:
            return lines
        header = [f"oy = {first};", "{"]
    else:
        header = [f"for (oy = 0; oy < {shape.oh}; ++oy) {{"]
    lines += header + [f"    const int8_t *p = plane + oy * {shape.sh * width};",
                       f"    int8_t *o = out + oy * {row} + oc;",
                       "    _Pragma(\"GCC unroll 2\")",
                       f"    for (ox = 0; ox < {shape.ow // 2}; ++ox) {{",
                       "        int32_t a00 = bias, a01 = bias;",
                       *("        " + line for line in pair_step),
                       "        " + store("a00", 0), "        " + store("a01", co),
                       f"        p += {2 * shape.sw};", f"        o += {2 * co};", "    }"]
    if shape.ow % 2:
        lines += ["    {", "        int32_t a00 = bias;", *("        " + line for line in tail_step),
                  "        " + store("a00", 0), "    }"]
    lines.append("}")
    return lines


def _opt_fully_connected(g: _Generator, position: int, op: Op, batches: int, depth: int, units: int, filter_offset: int,
                         mults: list[int], shifts: list[int], lo: int, hi: int) -> list[str]:
    x, w, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    wide = position in g.wide
    weights = np.asarray(w.data, dtype=np.int64).reshape(units, depth) + filter_offset
    kind = "int16 pairs" if wide else "int8 words"
    wname = g.int32_array(f"op{position}_w", _pack_gemm(weights, GEMV_ROWS, wide), f"op {op.index}: weights, {kind}, blocks of {GEMV_ROWS} rows")
    mode = _requant_mode(mults, shifts)
    bias = g.ptr(op.inputs[2], const=True) if len(op.inputs) > 2 and op.inputs[2] >= 0 else "NULL"
    if len(set(zip(mults, shifts))) > 1:
        mult = g.int32_array(f"op{position}_mult", mults, f"op {op.index}: per-channel multipliers")
        sh_values = [_rq_params(m, s, mode, _zp(y))[1] for m, s in zip(mults, shifts)]
        shift = g.int32_array(f"op{position}_sh", sh_values, f"op {op.index}: per-channel shifts")
        quant = f"0, 0, 0, {mult}, {shift}"
    else:
        h, sh = _rq_params(mults[0], shifts[0], mode, _zp(y))
        quant = f"{_int(mults[0])}, {_int(h)}, {sh}, NULL, NULL"
    off2 = _pair_literal(-_zp(x))
    tail = f"{mode}, {_int(_zp(y))}, {lo}, {hi}"
    body = [f"const int8_t *in = {g.ptr(op.inputs[0], const=True)};", f"int8_t *out = {g.ptr(op.outputs[0])};"]
    call = f"tl_gemv(in{{b}}, {depth}, {off2}, {wname}, {int(wide)}, {units}, {bias}, {quant}, out{{o}}, {tail});"
    if batches == 1:
        body.append(call.format(b="", o=""))
    else:
        body += ["int b;", f"for (b = 0; b < {batches}; ++b) {{",
                 "    " + call.format(b=f" + b * {depth}", o=f" + b * {units}"), "}"]
    return body


ADD_TABLE_MIN_ELEMENTS = 1024  # smaller ADDs keep the library kernel: 2 KB of tables would not pay


def _add_table(offset: int, multiplier: int, shift: int) -> list[int]:
    """An ADD input's rescaled value for each int8 value -128..127, as TFLM computes it."""
    values = (np.arange(-128, 128, dtype=np.int64) + offset) << ADD_LEFT_SHIFT
    return [int(v) for v in multiply_by_quantized_multiplier(values, multiplier, shift)]


def _add(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    a, b, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    p = prepare_add(g.graph, op, where)
    m1, s1, m2, s2, mo, so = (p.input1_multiplier, p.input1_shift, p.input2_multiplier, p.input2_shift,
                              p.output_multiplier, p.output_shift)
    lo, hi = p.output_min, p.output_max
    quant = (f"{_int(-_zp(a))}, {_int(m1)}, {s1}, {_int(-_zp(b))}, {_int(m2)}, {s2}, {ADD_LEFT_SHIFT}, "
             f"{_int(_zp(y))}, {_int(mo)}, {so}, {lo}, {hi}")
    pa, pb, py = g.ptr(op.inputs[0], const=True), g.ptr(op.inputs[1], const=True), g.ptr(op.outputs[0])
    rule = g.overlaps.get(position)
    if rule is not None and tuple(a.shape) != tuple(b.shape):
        raise UnsupportedOpError(f"{where}: the plan overlaps its output with an input ({rule.kind}) but it broadcasts")
    overlap = f"; output over input '{_comment_safe(g.tensor(rule.input).name)}' ({rule.kind})" if rule is not None else ""
    if tuple(a.shape) == tuple(b.shape) and g.optimized and y.elements >= ADD_TABLE_MIN_ELEMENTS:
        mode = _requant_mode([mo], [so])
        h, sh = _rq_params(mo, so, mode, _zp(y))
        ta = g.int32_array(f"op{position}_ta", _add_table(-_zp(a), m1, s1), f"op {op.index}: input 1 rescaled, for -128..127")
        tb = g.int32_array(f"op{position}_tb", _add_table(-_zp(b), m2, s2), f"op {op.index}: input 2 rescaled, for -128..127")
        call = (f"tl_add_tables({pa}, {pb}, {py}, {y.elements}, {ta} + 128, {tb} + 128, {_int(mo)}, {_int(h)}, {sh}, "
                f"{mode}, {_int(_zp(y))}, {lo}, {hi});")
        variant = _tags("add", "tables", *_rq_tags(mode), rule is not None and "output-over-input")
        return _Layer(g.describe(op, f"{op.attrs.get('activation', 'NONE')}; tables{overlap}"), [call], variant)
    if tuple(a.shape) == tuple(b.shape):
        call = f"tl_add_s8({pa}, {pb}, {py}, {y.elements}, {quant});"
        variant = _tags("add", "library", rule is not None and "output-over-input")
        return _Layer(g.describe(op, op.attrs.get("activation", "NONE") + overlap), [call], variant)
    try:
        out_shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        raise UnsupportedOpError(f"{where}: shapes {_shape(a.shape)} and {_shape(b.shape)} do not broadcast") from None
    if tuple(out_shape) != tuple(y.shape):
        raise UnsupportedOpError(f"{where}: output {_shape(y.shape)} is not the broadcast shape {_shape(out_shape)}")
    dims = _extend4(out_shape, where)
    strides = [_broadcast_strides(_extend4(t.shape, where), dims) for t in (a, b)]
    call = (f"tl_add_broadcast_s8({pa}, {_int_list(strides[0])}, {pb}, {_int_list(strides[1])}, {py}, "
            f"{_int_list(dims)}, {quant});")
    return _Layer(g.describe(op, f"broadcast, {op.attrs.get('activation', 'NONE')}"), [call], _tags("add", "broadcast"))


def _broadcast_strides(shape: Sequence[int], out: Sequence[int]) -> list[int]:
    strides, step = [0] * len(shape), 1
    for axis in range(len(shape) - 1, -1, -1):
        strides[axis] = 0 if shape[axis] == 1 and out[axis] != 1 else step
        step *= shape[axis]
    return strides


def _pool(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    n, h, wd, c = x.shape
    _, oh, ow, oc = y.shape
    if oc != c:
        raise UnsupportedOpError(f"{where}: output depth {oc} differs from the input's {c}")
    p = prepare_pool(g.graph, op, where)
    fh, fw, sh, sw = p.filter_h, p.filter_w, p.window.stride_h, p.window.stride_w
    pt, pl, lo, hi = p.window.pad_top, p.window.pad_left, p.output_min, p.output_max
    args = (f"{g.ptr(op.inputs[0], const=True)}, {n}, {h}, {wd}, {c}, {g.ptr(op.outputs[0])}, {oh}, {ow}, "
            f"{fh}, {fw}, {sh}, {sw}, {pt}, {pl}, {lo}, {hi}")
    if op.kind == "AVERAGE_POOL_2D" and g.optimized and c % 4 == 0 and fh * fw <= 256:
        lines = [f"tl_avgpool4({g.ptr(op.inputs[0], const=True)} + {b * h * wd * c}, {h}, {wd}, {c}, "
                 f"{g.ptr(op.outputs[0])} + {b * oh * ow * c}, {oh}, {ow}, {fh}, {fw}, {sh}, {sw}, {pt}, {pl}, {lo}, {hi});"
                 for b in range(n)]
        extra = f"filter {fh}x{fw}, stride {sh}x{sw}, {op.attrs['padding']} (pad top {pt}, left {pl}); four channels a step"
        return _Layer(g.describe(op, extra), lines, _tags("avgpool", "four-channels"))
    if op.kind == "AVERAGE_POOL_2D":
        call = f"tl_avgpool_s8({args}, {g.scratch(position, op, 4 * c)});"
    else:
        call = f"tl_maxpool_s8({args});"
    extra = f"filter {fh}x{fw}, stride {sh}x{sw}, {op.attrs['padding']} (pad top {pt}, left {pl})"
    return _Layer(g.describe(op, extra), [call], _tags("avgpool" if op.kind == "AVERAGE_POOL_2D" else "maxpool", "library"))


def _mean(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    rank = len(x.shape)
    axes = {int(a) + rank if int(a) < 0 else int(a) for a in op.attrs["axes"]}
    # Merge neighbouring dimensions that are both reduced or both kept; drop dimensions of 1.
    groups: list[list] = []  # [size, reduced]
    for axis, size in enumerate(x.shape):
        if size == 1:
            continue
        reduced = axis in axes
        if groups and groups[-1][1] == reduced:
            groups[-1][0] *= size
        else:
            groups.append([size, reduced])
    if len(groups) > 4:
        raise UnsupportedOpError(f"{where}: reducing axes {sorted(axes)} of {_shape(x.shape)} needs more than 4 dimensions")
    groups = [[1, False]] * (4 - len(groups)) + groups
    dims = [int(s) for s, _ in groups]
    strides, step = [0, 0, 0, 0], 1
    for axis in range(3, -1, -1):
        if not groups[axis][1]:
            strides[axis] = step
            step *= dims[axis]
    count = int(np.prod([s for s, r in groups if r], dtype=np.int64))
    if count == 0 or x.elements == 0:
        raise UnsupportedOpError(f"{where}: the mean of an empty tensor {_shape(x.shape)} is not supported")
    if step != y.elements:
        raise UnsupportedOpError(f"{where}: output {_shape(y.shape)} does not hold the {step} means")
    p = prepare_mean(g.graph, op, count, where)
    multiplier, shift = p.multiplier, p.shift
    call = (f"tl_mean_s8({g.ptr(op.inputs[0], const=True)}, {_int_list(dims)}, {_int_list(strides)}, "
            f"{g.ptr(op.outputs[0])}, {y.elements}, {count}, {_int(_zp(x))}, {_int(multiplier)}, {shift}, "
            f"{_int(_zp(y))}, {g.scratch(position, op, 4 * y.elements)});")
    extra = f"axes {sorted(axes)}, keep_dims {bool(op.attrs.get('keep_dims', False))}, {count} values per mean"
    return _Layer(g.describe(op, extra), [call], _tags("mean", "library"))


def _pad(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    paddings = [tuple(int(v) for v in p) for p in op.attrs["paddings"]]
    if len(paddings) != len(x.shape):
        raise UnsupportedOpError(f"{where}: {len(paddings)} padding pairs for a rank {len(x.shape)} input")
    if any(v < 0 for p in paddings for v in p):
        raise UnsupportedOpError(f"{where}: negative paddings {paddings} are not supported")
    dims = _extend4(x.shape, where)
    paddings = [(0, 0)] * (4 - len(paddings)) + paddings
    expected = tuple(d + a + b for d, (a, b) in zip(dims, paddings))
    if expected != _extend4(y.shape, where):
        raise UnsupportedOpError(f"{where}: output {_shape(y.shape)} is not the padded input {_shape(expected)}")
    call = (f"tl_pad_s8({g.ptr(op.inputs[0], const=True)}, {_int_list(dims)}, {_int_list([a for a, _ in paddings])}, "
            f"{_int_list([b for _, b in paddings])}, {_zp(y)}, {g.ptr(op.outputs[0])});")
    return _Layer(g.describe(op, f"paddings {paddings}"), [call], _tags("pad", "library"))


def _reshape(g: _Generator, position: int, op: Op) -> _Layer:
    x, y = op.inputs[0], op.outputs[0]
    src = g.tensor(x)
    if src.data is None and g.plan.placements[x].offset == g.plan.placements[y].offset:
        return _Layer(g.describe(op, "in place, no code"), [], _tags("reshape", "in-place"))
    call = f"memmove({g.ptr(y)}, {g.ptr(x, const=True)}, {g.tensor(y).nbytes});"
    return _Layer(g.describe(op, "copy"), [call], _tags("reshape", "copy"))


def _softmax(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if _zp(y) != -128 or _scale(y, where) != 1.0 / 256:
        raise UnsupportedOpError(
            f"{where}: int8 softmax output must have scale 1/256 and zero point -128 (has {_scale(y, where):g}, {_zp(y)})"
        )
    depth = x.shape[-1] if x.shape else 1
    rows = x.elements // depth
    p = prepare_softmax(_scale(x, where), float(op.attrs.get("beta", 1.0)))
    mult, left_shift, diff_min = p.input_multiplier, p.input_left_shift, p.diff_min
    call = (f"tl_softmax_s8({g.ptr(op.inputs[0], const=True)}, {rows}, {depth}, {_int(mult)}, {left_shift}, "
            f"{_int(diff_min)}, {g.ptr(op.outputs[0])});")
    return _Layer(g.describe(op, f"beta {op.attrs.get('beta', 1.0):g}"), [call], _tags("softmax", "library"))


def _concatenation(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    y = g.tensor(op.outputs[0])
    if op.attrs.get("activation", "NONE") != "NONE":
        raise UnsupportedOpError(f"{where}: a fused activation ({op.attrs['activation']}) is not supported (TFLM refuses it)")
    axis = int(op.attrs["axis"])
    rank = len(y.shape)
    axis = axis + rank if axis < 0 else axis
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    row = int(np.prod(y.shape[axis:], dtype=np.int64))
    lines, offset = [], 0
    for t in op.inputs:
        x = g.tensor(t)
        if len(x.shape) != rank:
            raise UnsupportedOpError(f"{where}: input '{x.name}' has rank {len(x.shape)}, the output {rank}")
        copy = int(np.prod(x.shape[axis:], dtype=np.int64))
        out = g.ptr(op.outputs[0])
        target = f"{out} + {offset}" if offset else out
        lines.append(f"tl_concat_s8({g.ptr(t, const=True)}, {outer}, {copy}, {target}, {row});")
        offset += copy
    if offset != row:
        raise UnsupportedOpError(f"{where}: the inputs fill {offset} of the output's {row} values per row")
    return _Layer(g.describe(op, f"axis {axis}"), lines, _tags("concatenation", "library"))


def _quantize(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if y.dtype != "int8":
        raise UnsupportedOpError(f"{where}: output type {y.dtype} is not supported (int8 is)")
    if len(y.scale) != 1:
        raise UnsupportedOpError(f"{where}: per-channel quantisation of activations is not supported")
    if x.dtype == "float32":
        g.uses_float = True
        call = (f"tl_quantize_f32_s8({g.ptr(op.inputs[0], const=True)}, {g.ptr(op.outputs[0])}, {y.elements}, "
                f"{_float(_scale(y, where))}, {_zp(y)});")
        return _Layer(g.describe(op, f"scale {_scale(y, where):g}, zero point {_zp(y)}"), [call], _tags("quantize", "float"))
    if x.dtype == "int8":
        p = prepare_requantize(g.graph, op, where)
        m, s = p.multiplier, p.shift
        call = (f"tl_requantize_s8({g.ptr(op.inputs[0], const=True)}, {g.ptr(op.outputs[0])}, {y.elements}, "
                f"{_zp(x)}, {_int(m)}, {s}, {_zp(y)});")
        return _Layer(g.describe(op, "requantise"), [call], _tags("quantize", "requantize"))
    raise UnsupportedOpError(f"{where}: input type {x.dtype} is not supported (float32 or int8 are)")


def _dequantize(g: _Generator, position: int, op: Op) -> _Layer:
    where = g.where(op)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if x.dtype != "int8" or y.dtype != "float32":
        raise UnsupportedOpError(f"{where}: {x.dtype} -> {y.dtype} is not supported (int8 -> float32 is)")
    if len(x.scale) != 1:
        raise UnsupportedOpError(f"{where}: per-channel dequantisation is not supported")
    g.uses_float = True
    call = (f"tl_dequantize_s8_f32({g.ptr(op.inputs[0], const=True)}, {g.ptr(op.outputs[0])}, {x.elements}, "
            f"{_zp(x)}, {_float(_scale(x, where))});")
    return _Layer(g.describe(op, f"scale {_scale(x, where):g}, zero point {_zp(x)}"), [call], _tags("dequantize", "library"))


_LAYERS: dict[str, Callable[[_Generator, int, Op], _Layer]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _add,
    "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool,
    "MEAN": _mean,
    "PAD": _pad,
    "RESHAPE": _reshape,
    "SOFTMAX": _softmax,
    "CONCATENATION": _concatenation,
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
}


# ---- the model ----
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
    if kernels not in KERNEL_SETS:
        raise ValueError(f"kernels {kernels!r}: one of {', '.join(KERNEL_SETS)}")
    _check_interface(graph, plan)
    g = _Generator(graph, plan, prefix, kernels, wide_budget)
    layers = []
    for position, op in enumerate(graph.ops):
        emit = _LAYERS.get(op.kind)
        if emit is None:
            raise UnsupportedOpError(f"model {graph.name}: op {op.index} ({op.kind}) has no kernel")
        layer = emit(g, position, op)
        unknown = set(layer.variant) - KERNEL_VARIANTS[kernels]
        if unknown:
            raise AssertionError(f"{g.where(op)}: variant {sorted(unknown)} is missing from KERNEL_VARIANTS[{kernels!r}]")
        layers.append(layer)

    input_tensor = graph.tensors[graph.inputs[0]]
    output_tensor = graph.tensors[graph.outputs[0]]
    weight_bytes = sum(a.nbytes for a in g.arrays)
    env = _environment()
    context = dict(
        prefix=prefix,
        PREFIX=prefix.upper(),
        graph_name=_comment_safe(graph.name),
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
        widened_bytes=g.widened_bytes,
        variants=tuple(layer.variant for layer in layers),
        input_offset=plan.placements[graph.inputs[0]].offset,
        static_scratch_bytes=4 * ((g.static_scratch + 3) // 4),
    )


def _io(tensor: Tensor, offset: int) -> dict:
    quant = f", scale {float(np.float32(tensor.scale[0])):g}, zero point {_zp(tensor)}" if tensor.scale else ""
    return dict(
        name=_comment_safe(tensor.name),
        shape=_shape(tensor.shape),
        dtype=tensor.dtype,
        quant=quant,
        bytes=tensor.nbytes,
        offset=offset,
    )
