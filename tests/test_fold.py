"""PAD folded into the convolution that reads it: same output as TFLM on the unfolded model."""
from __future__ import annotations

import numpy as np
import pytest

from engine.export import export_tflite
from engine.fold import fold_pad
from engine.oracle import run_tflm
from engine.reference import run_reference
from engine.synth import GraphBuilder, random_inputs


def pad_then_conv(kind: str, paddings, stride: int, shared_reader: bool = False):
    rng = np.random.default_rng(4)
    b = GraphBuilder(f"pad-{kind}")
    x = b.activation("x", (1, 9, 7, 4), 0.05, 3)
    (t, bo), (l, r) = paddings
    padded = b.activation("padded", (1, 9 + t + bo, 7 + l + r, 4), 0.05, 3)
    b.op("PAD", (x, b.int32("paddings", [[0, 0], [t, bo], [l, r], [0, 0]])), (padded,), paddings=((0, 0), (t, bo), (l, r), (0, 0)))
    oh, ow = (9 + t + bo - 3) // stride + 1, (7 + l + r - 3) // stride + 1
    if kind == "DEPTHWISE_CONV_2D":
        w = b.weights(rng, "w", (1, 3, 3, 4), 3, True)
        out_c, attrs = 4, {"depth_multiplier": 1}
    else:
        w = b.weights(rng, "w", (6, 3, 3, 4), 0, True)
        out_c, attrs = 6, {}
    bias = b.bias(rng, "bias", out_c, 0.05, w, 200)
    y = b.activation("y", (1, oh, ow, out_c), 0.02, -5)
    b.op(kind, (padded, w, bias), (y,), padding="VALID", stride_h=stride, stride_w=stride, activation="RELU", **attrs)
    outputs = [y]
    if shared_reader:  # a second reader keeps the padded tensor alive: no fold
        z = b.activation("z", (1, 9 + t + bo, 7 + l + r, 4), 0.05, 3)
        b.op("ADD", (padded, padded), (z,), activation="NONE")
        outputs = [y]
    return b.graph([x], outputs)


@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D"])
@pytest.mark.parametrize("paddings, stride", [(((1, 1), (1, 1)), 1), (((0, 1), (0, 1)), 2), (((2, 0), (1, 3)), 1)])
def test_folded_pad_gives_tflm_output(kind, paddings, stride):
    graph = pad_then_conv(kind, paddings, stride)
    folded = fold_pad(graph)
    assert [op.kind for op in folded.ops] == [kind]
    assert folded.ops[0].attrs["padding"] == "EXPLICIT" and folded.ops[0].inputs[0] == graph.inputs[0]
    tflite = export_tflite(graph)
    for seed in range(3):
        x = random_inputs(graph, np.random.default_rng(seed))
        assert np.array_equal(run_reference(folded, x)[0], run_tflm(tflite, x)[0])


def test_pad_read_twice_is_not_folded():
    graph = pad_then_conv("CONV_2D", ((1, 1), (1, 1)), 1, shared_reader=True)
    assert [op.kind for op in fold_pad(graph).ops] == ["PAD", "CONV_2D", "ADD"]
