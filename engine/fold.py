"""Graph rewrites before planning: PAD folded into the convolution that reads it.

A PAD whose only reader is a CONV_2D or DEPTHWISE_CONV_2D with VALID padding, padding only height
and width, with the fill equal to the zero point (as TFLite's int8 PAD does), is the same as that
convolution reading the unpadded tensor with explicit padding: a padded tap contributes
(zero point - zero point) = 0 to the sum either way. The padded tensor then never exists."""
from __future__ import annotations

import dataclasses

from engine.ir import Graph, Op

FOLDABLE_CONSUMERS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def fold_pad(graph: Graph) -> Graph:
    consumers = graph.consumers()
    replaced: dict[int, Op] = {}  # op position -> rewritten op
    dropped: set[int] = set()
    for position, op in enumerate(graph.ops):
        if op.kind != "PAD":
            continue
        padded = op.outputs[0]
        readers = consumers.get(padded, [])
        if len(readers) != 1 or padded in graph.outputs:
            continue
        reader = graph.ops[readers[0]]
        source, out = graph.tensors[op.inputs[0]], graph.tensors[padded]
        paddings = op.attrs["paddings"]
        if (
            reader.kind not in FOLDABLE_CONSUMERS
            or reader.inputs[0] != padded
            or reader.attrs.get("padding") != "VALID"
            or len(paddings) != 4
            or paddings[0] != (0, 0)
            or paddings[3] != (0, 0)
            or (source.scale, source.zero_point) != (out.scale, out.zero_point)
        ):
            continue
        (top, bottom), (left, right) = paddings[1], paddings[2]
        attrs = {**reader.attrs, "padding": "EXPLICIT", "pad_top": top, "pad_bottom": bottom,
                 "pad_left": left, "pad_right": right}
        replaced[readers[0]] = dataclasses.replace(reader, inputs=(op.inputs[0], *reader.inputs[1:]), attrs=attrs)
        dropped.add(position)
    if not dropped:
        return graph
    ops = [replaced.get(i, op) for i, op in enumerate(graph.ops) if i not in dropped]
    return dataclasses.replace(graph, ops=ops)
