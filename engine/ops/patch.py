"""The two ops that patch-based inference adds (engine.patches), internal to the engine: they exist
only in a graph the patch rewrite made, never in a .tflite file.

PATCH_CROP copies a region of a tensor into a smaller tensor: rows y0.., columns x0.., every
channel. PATCH_PASTE writes a region tensor into a whole tensor at rows y0.., columns x0..; with a
second input (the whole tensor as the previous pastes left it) its output shares that input's
bytes (engine.planner aliases them), so the patches of a stage assemble one tensor in place."""
from __future__ import annotations

import numpy as np

from engine.codegen.context import EmitContext
from engine.codegen.layer import Layer
from engine.codegen.variants import library_variants, tags
from engine.errors import ModelFormatError
from engine.ir import Graph, Op
from engine.ops.checks import require_int, shape_with_rank
from engine.ops.spec import Arity, CForm, OpSpec, Values

REGION_ATTRS = ("y0", "x0")


def _region_check(graph: Graph, op: Op, where: str, small: int, whole: int) -> None:
    """The region tensor lies inside the whole one, at (y0, x0), with the same batch and channels."""
    for key in REGION_ATTRS:
        require_int(op, key, where, low=0)
    sn, sh, sw, sc = shape_with_rank(graph, small, 4, "region", where)
    wn, wh, ww, wc = shape_with_rank(graph, whole, 4, "whole tensor", where)
    y0, x0 = int(op.attrs["y0"]), int(op.attrs["x0"])
    if (sn, sc) != (wn, wc) or y0 + sh > wh or x0 + sw > ww:
        raise ModelFormatError(f"{where}: a {sh}x{sw} region at ({y0}, {x0}) does not lie in the {wh}x{ww} tensor "
                               f"(or batch or channels differ)")


def check_crop(graph: Graph, op: Op, where: str) -> None:
    _region_check(graph, op, where, op.outputs[0], op.inputs[0])


def check_paste(graph: Graph, op: Op, where: str) -> None:
    _region_check(graph, op, where, op.inputs[0], op.outputs[0])
    if len(op.inputs) > 1 and graph.tensors[op.inputs[1]].shape != graph.tensors[op.outputs[0]].shape:
        raise ModelFormatError(f"{where}: the tensor pasted into has another shape than the output")


def crop(graph: Graph, op: Op, values: Values) -> np.ndarray:
    _, h, w, _ = graph.tensors[op.outputs[0]].shape
    y0, x0 = op.attrs["y0"], op.attrs["x0"]
    return values[op.inputs[0]][:, y0:y0 + h, x0:x0 + w, :]


def paste(graph: Graph, op: Op, values: Values) -> np.ndarray:
    out = graph.tensors[op.outputs[0]]
    whole = values[op.inputs[1]].copy() if len(op.inputs) > 1 else np.zeros(out.shape, dtype=values[op.inputs[0]].dtype)
    region = values[op.inputs[0]]
    y0, x0 = op.attrs["y0"], op.attrs["x0"]
    whole[:, y0:y0 + region.shape[1], x0:x0 + region.shape[2], :] = region
    return whole


def _copy_rows(g: EmitContext, op: Op, small: int, whole: int, into_whole: bool) -> list[str]:
    """One memcpy per row of the region: `small` rows are contiguous, the whole tensor's rows are
    its width apart."""
    _, h, w, c = g.tensor(small).shape
    _, _, width, _ = g.tensor(whole).shape
    start = (op.attrs["y0"] * width + op.attrs["x0"]) * c
    row, stride = w * c, width * c
    if into_whole:
        dst, src, dst_step, src_step = f"{g.ptr(whole)} + {start}", g.ptr(small, const=True), stride, row
    else:
        dst, src, dst_step, src_step = g.ptr(small), f"{g.ptr(whole, const=True)} + {start}", row, stride
    if h == 1 or row == stride:
        return [f"memcpy({dst}, {src}, {h * row});"]
    return ["{", "    int r;", f"    for (r = 0; r < {h}; ++r) memcpy({dst} + r * {dst_step}, {src} + r * {src_step}, {row});",
            "}"]


def emit_crop(g: EmitContext, position: int, op: Op) -> Layer:
    return Layer(f"rows from {op.attrs['y0']}, columns from {op.attrs['x0']}",
                 _copy_rows(g, op, op.outputs[0], op.inputs[0], into_whole=False), tags("patch-crop", "rows"))


def emit_paste(g: EmitContext, position: int, op: Op) -> Layer:
    if len(op.inputs) > 1 and g.plan.placements[op.inputs[1]].offset != g.plan.placements[op.outputs[0]].offset:
        raise AssertionError(f"{g.where(op)}: the plan did not give the pasted-into tensor its output's bytes")
    return Layer(f"at rows from {op.attrs['y0']}, columns from {op.attrs['x0']}",
                 _copy_rows(g, op, op.inputs[0], op.outputs[0], into_whole=True), tags("patch-paste", "rows"))


PATCH_CROP = OpSpec("PATCH_CROP", Arity(1, 1), check_crop, crop, tflite=None,
                    c=CForm(emit_crop, library_variants("patch-crop", "rows")))
PATCH_PASTE = OpSpec("PATCH_PASTE", Arity(1, 2), check_paste, paste, tflite=None,
                     c=CForm(emit_paste, library_variants("patch-paste", "rows"), input_labels=("region", "whole")))
