"""What an op's emitter returns (Layer), and the comment above its code."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from engine.codegen.literals import comment_safe, shape_text
from engine.ir import Graph, Op


@dataclass
class Layer:
    """One op's code: a few words on how it runs (`detail`; the layer's comment adds the op, its
    shapes and types), its lines in the model's invoke function, and the code paths chosen (its
    variant: tags of its family's variants)."""

    detail: str
    lines: list[str] = field(default_factory=list)
    variant: tuple[str, ...] = ()


def layer_comment(graph: Graph, op: Op, labels: Sequence[str | None] | None, detail: str) -> str:
    """The layer's comment: op index and kind, shapes and types in and out, and `detail`. `labels`
    name the inputs by position (the last one for the rest; None: not shown); without labels they
    are in0, in1, ... (just "in" for one)."""
    parts = []
    for position, t in enumerate(op.inputs):
        if t < 0:
            continue
        if labels is None:
            label = "in" if len(op.inputs) == 1 else f"in{position}"
        else:
            label = labels[min(position, len(labels) - 1)]
            if label is None:
                continue
        tensor = graph.tensors[t]
        parts.append(f"{label} {shape_text(tensor.shape)} {tensor.dtype}")
    for t in op.outputs:
        parts.append(f"out {shape_text(graph.tensors[t].shape)} {graph.tensors[t].dtype}")
    text = f"op {op.index} ({op.kind}): " + ", ".join(parts)
    return comment_safe(text + (f"; {detail}" if detail else ""))
