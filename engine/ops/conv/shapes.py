"""The geometry the convolutions' emitters work with: one layer's dimensions, window and padding
(ConvShape, DepthwiseShape), whether the optimised kernel takes it, and the scratch that kernel
needs (what the planner reserves, engine.codegen.kernel_sets.kernel_scratch)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from engine.codegen.packing import groups
from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.ops.window import prepare_window
from engine.overlap import padded_plane_bytes, pixel_stream_bytes, plane_fits

_NOT_OPTIMIZABLE = (KeyError, ValueError, IndexError, UnsupportedOpError)


@dataclass(frozen=True)
class WindowedLayer:
    """What both convolutions' layers have: batch, input size, kernel size, output size, stride and
    the padding before the first row and column."""

    n: int
    h: int
    w: int
    kh: int
    kw: int
    oh: int
    ow: int
    sh: int
    sw: int
    pt: int
    pl: int
    # The largest output (height, width) among the patches that share this layer's function
    # (engine.patches marks their ops `shared`); None: a layer of its own, every size baked in.
    shared: tuple[int, int] | None = field(default=None, kw_only=True)

    @property
    def plane_out(self) -> tuple[int, int]:
        """The output size the layer's scratch is sized for: the largest among the sharing patches."""
        return self.shared or (self.oh, self.ow)


def _window_of(op: Op, x: Tensor, y: Tensor, kh: int, kw: int, where: str) -> dict[str, int]:
    """The WindowedLayer fields of an op with input x [n, h, w, c] and output y."""
    n, h, wd, _ = x.shape
    _, oh, ow, _ = y.shape
    win = prepare_window(op.attrs, (h, wd), (kh, kw), (oh, ow), where)
    shared = op.attrs.get("shared")
    return dict(n=n, h=h, w=wd, kh=kh, kw=kw, oh=oh, ow=ow, sh=win.stride_h, sw=win.stride_w, pt=win.pad_top,
                pl=win.pad_left, shared=tuple(shared) if shared else None)


@dataclass(frozen=True)
class ConvShape(WindowedLayer):
    """A CONV_2D layer, from ci input channels to co."""

    ci: int
    co: int

    @property
    def pointwise(self) -> bool:
        """1x1, stride 1, no padding: output pixel p reads input pixel p only."""
        return (self.kh, self.kw, self.sh, self.sw, self.pt, self.pl) == (1, 1, 1, 1, 0, 0) and \
            (self.oh, self.ow) == (self.h, self.w)

    @property
    def k4(self) -> int:
        return groups(self.kh * self.kw * self.ci)

    @property
    def scratch(self) -> int:
        """Two pixels widened to int16 (16 bytes a group), and a window's bytes unless pointwise."""
        return pixel_stream_bytes(self.ci) if self.pointwise else 20 * self.k4

    @property
    def optimizable(self) -> bool:
        return self.n == 1 and min(self.ci, self.co, self.oh, self.ow) > 0


def conv_shape(graph: Graph, op: Op, where: str = "") -> ConvShape:
    x, w, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    _, _, _, c = x.shape
    oc, kh, kw, ic = w.shape
    _, _, _, occ = y.shape
    if ic != c:
        raise UnsupportedOpError(f"{where}: grouped convolution (filter depth {ic}, input depth {c}) is not supported")
    if occ != oc:
        raise UnsupportedOpError(f"{where}: output depth {occ} differs from the filter's {oc}")
    return ConvShape(ci=c, co=oc, **_window_of(op, x, y, kh, kw, where))


@dataclass(frozen=True)
class DepthwiseShape(WindowedLayer):
    """A DEPTHWISE_CONV_2D layer of c channels, each giving `mult` output channels (output channel
    c * mult + m reads input channel c)."""

    c: int
    mult: int

    @property
    def rows(self) -> int:
        """Rows of the padded channel plane: those the windows reach."""
        return (self.plane_out[0] - 1) * self.sh + self.kh

    @property
    def width(self) -> int:
        """Bytes a plane row: output pairs read whole words from x * stride on."""
        ow = self.plane_out[1]
        return (ow + ow % 2 - 2) * self.sw + 4 * groups(self.sw + self.kw)

    @property
    def scratch(self) -> int:
        return padded_plane_bytes(*self.plane_out, self.kh, self.kw, self.sh, self.sw)

    @property
    def two_rows(self) -> bool:
        """Stride 1: output rows go in pairs that share plane rows."""
        return self.sh == 1 and self.plane_out[0] >= 2

    @property
    def optimizable(self) -> bool:
        """Batch 1, and a channel plane that costs little SRAM (engine.overlap.plane_fits: a
        one-channel input would otherwise be copied whole)."""
        fits = plane_fits(self.scratch, self.n * self.h * self.w * self.c)
        return self.n == 1 and min(self.c, self.oh, self.ow) > 0 and fits


def depthwise_shape(graph: Graph, op: Op, where: str = "") -> DepthwiseShape:
    x, w, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    _, _, _, c = x.shape
    _, kh, kw, oc = w.shape
    _, _, _, occ = y.shape
    if c == 0 or oc % c != 0 or occ != oc:
        raise UnsupportedOpError(f"{where}: {oc} filter channels are not a multiple of {c} input channels")
    return DepthwiseShape(c=c, mult=oc // c, **_window_of(op, x, y, kh, kw, where))


def _optimized_scratch(measure: Callable[[Graph, Op], ConvShape | DepthwiseShape], graph: Graph, op: Op,
                       kernels: str) -> int:
    """The optimised kernel's scratch; 0 in the portable set or where the layer falls back to the
    library (whose plain call needs none)."""
    if kernels != "optimized":
        return 0
    try:
        shape = measure(graph, op)
    except _NOT_OPTIMIZABLE:
        return 0
    return shape.scratch if shape.optimizable else 0


def conv_scratch(graph: Graph, op: Op, kernels: str) -> int:
    """Two pixels widened to int16, and a window unless pointwise."""
    return _optimized_scratch(conv_shape, graph, op, kernels)


def depthwise_scratch(graph: Graph, op: Op, kernels: str) -> int:
    """The padded channel plane."""
    return _optimized_scratch(depthwise_shape, graph, op, kernels)
