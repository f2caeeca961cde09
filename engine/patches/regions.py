"""Regions of NHWC tensors and how an op's output region maps back to the input region it reads.

A Region is rows [y0, y1) by columns [x0, x1) of a batch-1 tensor, every channel. For a windowed
op (CONV_2D, DEPTHWISE_CONV_2D, the pools) output rows [o0, o1) read input rows
o0 * stride - pad_before to (o1 - 1) * stride - pad_before + kernel; the part of that range
outside the tensor is padding. The op run on the region gets EXPLICIT pads, so a patch at the
tensor's border is padded exactly as the whole tensor is, and an inner patch not at all (its
halo rows are real rows); a negative pad skips rows of a larger region, such as the whole input."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op
from engine.ops.window import prepare_window

WINDOWED = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D")
PATCHABLE = (*WINDOWED, "PAD", "ADD")
READS_ANY_REGION = WINDOWED  # the others read exactly the region they need (a crop gives it them)


@dataclass(frozen=True)
class Region:
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    def union(self, other: "Region | None") -> "Region":
        """The smallest region holding both."""
        if other is None:
            return self
        return Region(min(self.y0, other.y0), max(self.y1, other.y1), min(self.x0, other.x0), max(self.x1, other.x1))

    def __str__(self) -> str:
        return f"rows {self.y0}-{self.y1 - 1}, columns {self.x0}-{self.x1 - 1}"


def whole(graph: Graph, tensor: int) -> Region:
    _, h, w, _ = graph.tensors[tensor].shape
    return Region(0, h, 0, w)


def _axis(start: int, stop: int, stride: int, pad_before: int, kernel: int) -> tuple[int, int]:
    """Input rows [a, b) the windows of outputs [start, stop) cover, padding included."""
    return start * stride - pad_before, (stop - 1) * stride - pad_before + kernel


def window_size(graph: Graph, op: Op) -> tuple[int, int]:
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _, kh, kw, _ = graph.tensors[op.inputs[1]].shape
        return kh, kw
    return int(op.attrs["filter_h"]), int(op.attrs["filter_w"])


def _covered(graph: Graph, op: Op, out: Region, where: str) -> Region:
    """The input rows and columns (in whole-tensor coordinates, padding included, so possibly
    outside the tensor) that output region `out` of a windowed op or a PAD reads."""
    _, h, w, _ = graph.tensors[op.inputs[0]].shape
    if op.kind == "PAD":
        (_, _), (pt, _), (pl, _), (_, _) = op.attrs["paddings"]
        return Region(out.y0 - pt, out.y1 - pt, out.x0 - pl, out.x1 - pl)
    kh, kw = window_size(graph, op)
    _, oh, ow, _ = graph.tensors[op.outputs[0]].shape
    win = prepare_window(op.attrs, (h, w), (kh, kw), (oh, ow), where)
    return Region(*_axis(out.y0, out.y1, win.stride_h, win.pad_top, kh), *_axis(out.x0, out.x1, win.stride_w, win.pad_left, kw))


def input_regions(graph: Graph, op: Op, out: Region, where: str) -> dict[int, Region]:
    """The region of each activation input (by input position) that output region `out` reads:
    the covered rows and columns within the tensor. UnsupportedOpError for a region that reads
    only padding."""
    if op.kind == "ADD":
        return {0: out, 1: out}
    if op.kind not in PATCHABLE:
        raise UnsupportedOpError(f"{where}: runs on whole tensors only (patches take {', '.join(PATCHABLE)})")
    _, h, w, _ = graph.tensors[op.inputs[0]].shape
    covered = _covered(graph, op, out, where)
    region = Region(max(0, covered.y0), min(h, covered.y1), max(0, covered.x0), min(w, covered.x1))
    if region.height < 1 or region.width < 1:
        raise UnsupportedOpError(f"{where}: output {out} reads only padding; choose fewer patches")
    return {0: region}


def region_attrs(graph: Graph, op: Op, out: Region, held: Region, where: str) -> dict[str, Any]:
    """The attributes of the op run to give `out` from an input tensor that holds region `held`.
    A windowed op gets EXPLICIT pads measured from the held region: positive where its windows
    reach past the tensor's border (padding, as the whole tensor has), negative where they start
    inside the held region (rows it skips), so it reads any region that holds what it needs. A
    PAD is given exactly what it reads, and pads only at the tensor's border."""
    if op.kind == "ADD":
        return dict(op.attrs)
    covered = _covered(graph, op, out, where)
    before_y, after_y = held.y0 - covered.y0, covered.y1 - held.y1
    before_x, after_x = held.x0 - covered.x0, covered.x1 - held.x1
    if op.kind == "PAD":
        return {**op.attrs, "paddings": ((0, 0), (before_y, after_y), (before_x, after_x), (0, 0))}
    return {**op.attrs, "padding": "EXPLICIT", "pad_top": before_y, "pad_bottom": after_y, "pad_left": before_x,
            "pad_right": after_x}


def check_patchable(graph: Graph, op: Op, where: str) -> None:
    """Refuse an op that cannot run on regions: another kind, a batch other than 1, an ADD that
    broadcasts, a PAD of the batch or channels."""
    if op.kind not in PATCHABLE:
        raise UnsupportedOpError(f"{where}: runs on whole tensors only (patches take {', '.join(PATCHABLE)})")
    tensors = [graph.tensors[t] for t in (op.inputs[0], op.outputs[0])]
    if any(len(t.shape) != 4 or t.shape[0] != 1 for t in tensors):
        raise UnsupportedOpError(f"{where}: patches take batch-1 NHWC tensors only")
    if op.kind == "ADD" and graph.tensors[op.inputs[0]].shape != graph.tensors[op.inputs[1]].shape:
        raise UnsupportedOpError(f"{where}: an ADD that broadcasts runs on whole tensors only")
    if op.kind == "PAD":
        paddings = op.attrs.get("paddings", ())
        if len(paddings) != 4 or tuple(paddings[0]) != (0, 0) or tuple(paddings[3]) != (0, 0):
            raise UnsupportedOpError(f"{where}: a PAD of the batch or channels runs on whole tensors only")


def graph_macs(graph: Graph, ops: "list[Op] | None" = None) -> int:
    """Multiply-accumulates of `ops` of the graph (default: all of them)."""
    return sum(macs(graph, op) for op in (graph.ops if ops is None else ops))


def macs(graph: Graph, op: Op) -> int:
    """Multiply-accumulates of a convolution (0 for the other ops)."""
    if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return 0
    _, oh, ow, oc = graph.tensors[op.outputs[0]].shape
    _, kh, kw, ic = graph.tensors[op.inputs[1]].shape
    return oh * ow * oc * kh * kw * (ic if op.kind == "CONV_2D" else 1)
