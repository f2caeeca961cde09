"""Which ops may write their output over their input's bytes, and at what relative offset.

An op with an OverlapRule has a kernel variant whose access order makes the overlap safe:

- "channel-plane" (DEPTHWISE_CONV_2D, multiplier 1, batch 1): for each channel c in turn, the
  kernel computes output channel c for every output pixel into a scratch plane of Ho*Wo bytes,
  reading only input channel c, then stores the plane into the output's channel c. With the output
  at the input's offset, output (p, c) lands on input (p, c): a value of the channel just finished.
  (The optimised kernel copies input channel c, padded, into the scratch plane instead and writes
  output channel c from it: the same order. The scratch is the larger of the two planes,
  `channel_plane_bytes`.)
- "pixel-stream" (CONV_2D 1x1, stride 1, batch 1), output at the input's offset (relative 0):
  the kernel copies input pixel p (Ci bytes) into scratch, then writes output pixel p (Co bytes).
  When Co <= Ci it goes through the pixels in ascending order (output pixel p ends at or before
  input pixel p's end: only pixels already read are overwritten); when Co > Ci it goes in
  DESCENDING order (output pixel p starts at or after input pixel p's start: again only pixels
  already read). The footprint is max(N*Ci, N*Co) plus the scratch, `pixel_stream_bytes`: room for
  two pixels widened to int16 (the optimised kernel reads pixels two at a time, which keeps
  both orders safe).
- "elementwise" (ADD of two same-shape tensors): element i of both inputs is read before output
  element i is written, in ascending order; the output may take either input's bytes exactly.

The planner accepts a rule only where the input dies at that op; codegen must then call the
variant named by `kind`, with a scratch buffer of `scratch_bytes`."""
from __future__ import annotations

from dataclasses import dataclass

from engine.ir import Graph, Op

@dataclass(frozen=True)
class OverlapRule:
    op: int  # position in graph.ops
    input: int  # the tensor whose bytes the output may reuse
    output: int
    relative_offset: int  # output offset minus input offset, in bytes (0 for every kind today)
    scratch_bytes: int  # what the variant needs, instead of the op's usual scratch
    kind: str  # "channel-plane" | "pixel-stream" | "elementwise"


PLANE_MAX_BYTES = 4096  # the optimised depthwise kernel takes a larger plane only under 1/8 of the input


def padded_plane_bytes(out_h: int, out_w: int, k_h: int, k_w: int, stride_h: int, stride_w: int) -> int:
    """The optimised depthwise kernel's padded input plane: the rows the windows reach,
    (Ho-1)*sh + kh, each wide enough for output pairs read as whole words."""
    rows = (out_h - 1) * stride_h + k_h
    width = (out_w + out_w % 2 - 2) * stride_w + 4 * -(-(stride_w + k_w) // 4)
    return rows * width


def plane_fits(plane: int, input_bytes: int) -> bool:
    """Whether the optimised depthwise kernel is used: its plane costs little SRAM."""
    return plane <= max(PLANE_MAX_BYTES, input_bytes // 8)


def channel_plane_bytes(out_h: int, out_w: int, k_h: int, k_w: int, stride_h: int, stride_w: int,
                        input_bytes: int) -> int:
    """Scratch of the channel-plane kernels: the portable one's output plane (Ho*Wo bytes) or, where
    the optimised one runs (plane_fits), its padded input plane, whichever is larger."""
    plane = padded_plane_bytes(out_h, out_w, k_h, k_w, stride_h, stride_w)
    return max(plane if plane_fits(plane, input_bytes) else 0, out_h * out_w)


def pixel_stream_bytes(c_in: int) -> int:
    """Scratch of the pixel-stream kernels: two input pixels widened to int16 (Ci rounded up to a
    multiple of 4); the portable kernel uses the first Ci bytes."""
    return 16 * -(-c_in // 4)


def _is_activation(graph: Graph, tensor: int) -> bool:
    return tensor >= 0 and graph.tensors[tensor].data is None


def _channel_plane(graph: Graph, position: int, op: Op) -> list[OverlapRule]:
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    y = graph.tensors[op.outputs[0]]
    if len(x.shape) != 4 or x.shape[0] != 1 or x.shape[3] != w.shape[3] or y.shape[3] != x.shape[3]:
        return []
    scratch = channel_plane_bytes(y.shape[1], y.shape[2], w.shape[1], w.shape[2],
                                  int(op.attrs.get("stride_h", 1)), int(op.attrs.get("stride_w", 1)), x.nbytes)
    return [OverlapRule(position, op.inputs[0], op.outputs[0], 0, scratch, "channel-plane")]


def _pixel_stream(graph: Graph, position: int, op: Op) -> list[OverlapRule]:
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if len(x.shape) != 4 or x.shape[0] != 1 or w.shape[1:3] != (1, 1):
        return []
    if (op.attrs.get("stride_h"), op.attrs.get("stride_w")) != (1, 1):
        return []
    if graph.tensors[op.outputs[0]].shape[1:3] != x.shape[1:3]:  # explicit pads: a patch's window on a larger region
        return []
    return [OverlapRule(position, op.inputs[0], op.outputs[0], 0, pixel_stream_bytes(x.shape[3]), "pixel-stream")]


def _elementwise(graph: Graph, position: int, op: Op) -> list[OverlapRule]:
    y = graph.tensors[op.outputs[0]]
    rules = []
    for t in op.inputs:
        if _is_activation(graph, t) and graph.tensors[t].shape == y.shape:
            rules.append(OverlapRule(position, t, op.outputs[0], 0, 0, "elementwise"))
    if len(rules) != len(op.inputs):  # broadcasting, or a constant operand: no overlap
        return []
    return rules


_RULES = {
    "DEPTHWISE_CONV_2D": _channel_plane,
    "CONV_2D": _pixel_stream,
    "ADD": _elementwise,
}


def overlap_candidates(graph: Graph) -> dict[int, list[OverlapRule]]:
    """op position -> the overlaps its kernel variants allow (shape conditions only; whether the
    input dies at that op is the planner's to check)."""
    candidates = {}
    for position, op in enumerate(graph.ops):
        rule = _RULES.get(op.kind)
        if rule is None or not _is_activation(graph, op.inputs[0]):
            continue
        found = rule(graph, position, op)
        if found:
            candidates[position] = found
    return candidates
