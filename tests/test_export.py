"""engine.export: IR -> .tflite round trips through the importer and runs in TFLM."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine import synth
from engine.errors import UnsupportedOpError
from engine.export import BUFFER_ALIGNMENT, export_tflite
from engine.ir import Graph, Op, Tensor
from engine.ops import OP_KINDS
from engine.oracle import run_tflm
from engine.tflite import parse_tflite

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
SHARED_MODELS = sorted(MODELS.glob("*.tflite")) if MODELS.is_dir() else []


def assert_graphs_equal(a: Graph, b: Graph) -> None:
    assert a.inputs == b.inputs and a.outputs == b.outputs
    assert len(a.tensors) == len(b.tensors)
    for index, (x, y) in enumerate(zip(a.tensors, b.tensors)):
        where = f"tensor {index} {x.name}"
        assert (x.name, x.shape, x.dtype, x.quantized_dimension) == (y.name, y.shape, y.dtype, y.quantized_dimension), where
        assert x.scale == y.scale and x.zero_point == y.zero_point, where
        assert (x.data is None) == (y.data is None), where
        if x.data is not None:
            assert x.data.dtype == y.data.dtype and np.array_equal(x.data, y.data), where
    assert len(a.ops) == len(b.ops)
    for x, y in zip(a.ops, b.ops):
        assert (x.kind, x.inputs, x.outputs, x.attrs, x.index) == (y.kind, y.inputs, y.outputs, y.attrs, y.index)


def _random_inputs(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    return synth.random_inputs(graph, np.random.default_rng(seed))


def every_op_graph() -> Graph:
    """A small graph that uses each op kind of engine.ops.OP_KINDS once or more."""
    rng = np.random.default_rng(1)
    tensors: list[Tensor] = []

    def add(name, shape, dtype="int8", scale=(0.05,), zp=(0,), data=None, qdim=0) -> int:
        f32 = tuple(float(np.float32(s)) for s in scale)
        tensors.append(Tensor(name, tuple(shape), dtype, f32, tuple(zp), qdim, data))
        return len(tensors) - 1

    def i32(name, values) -> int:
        values = np.asarray(values, dtype=np.int32)
        return add(name, values.shape, "int32", (), (), values)

    def weights(name, shape, channels, axis) -> int:
        scales = tuple(rng.uniform(0.002, 0.01, size=channels))
        return add(name, shape, "int8", scales, (0,) * channels, rng.integers(-127, 128, size=shape, dtype=np.int8), axis)

    def bias(name, channels, scale) -> int:
        scales = tuple(float(np.float32(scale * rng.uniform(0.002, 0.01))) for _ in range(channels))
        return add(name, (channels,), "int32", scales, (0,) * channels, rng.integers(-500, 500, size=channels, dtype=np.int32))

    x_f = add("input", (1, 8, 8, 3), "float32", (), ())
    x = add("x_q", (1, 8, 8, 3), scale=(1 / 127,), zp=(3,))
    paddings = i32("paddings", [[0, 0], [1, 1], [1, 1], [0, 0]])
    padded = add("padded", (1, 10, 10, 3), scale=(1 / 127,), zp=(3,))
    cw = weights("conv_w", (8, 3, 3, 3), 8, 0)
    cb = bias("conv_b", 8, 1 / 127)
    conv = add("conv", (1, 8, 8, 8), scale=(0.04,), zp=(-128,))
    dw_w = weights("dw_w", (1, 3, 3, 8), 8, 3)
    dw_b = bias("dw_b", 8, 0.04)
    dw = add("dw", (1, 4, 4, 8), scale=(0.03,), zp=(-128,))
    pooled = add("maxpool", (1, 4, 4, 8), scale=(0.04,), zp=(-128,))
    summed = add("sum", (1, 4, 4, 8), scale=(0.06,), zp=(-20,))
    cat = add("concat", (1, 4, 4, 16), scale=(0.06,), zp=(-20,))
    avg = add("avgpool", (1, 2, 2, 16), scale=(0.06,), zp=(-20,))
    axes = i32("axes", [1, 2])
    mean = add("mean", (1, 1, 1, 16), scale=(0.05,), zp=(-10,))
    shape = i32("shape", [1, 16])
    flat = add("flat", (1, 16), scale=(0.05,), zp=(-10,))
    fw = add("fc_w", (10, 16), "int8", (0.01,), (0,), rng.integers(-127, 128, size=(10, 16), dtype=np.int8))
    fb = add("fc_b", (10,), "int32", (float(np.float32(0.05)) * float(np.float32(0.01)),), (0,), rng.integers(-300, 300, size=10, dtype=np.int32))
    logits = add("logits", (1, 10), scale=(0.1,), zp=(5,))
    probs = add("probs", (1, 10), scale=(1 / 256,), zp=(-128,))
    out = add("output", (1, 10), "float32", (), ())

    window = {"padding": "SAME", "stride_h": 2, "stride_w": 2}
    ops = [
        Op("QUANTIZE", (x_f,), (x,)),
        Op("PAD", (x, paddings), (padded,), {"paddings": ((0, 0), (1, 1), (1, 1), (0, 0))}),
        Op("CONV_2D", (padded, cw, cb), (conv,), {"padding": "VALID", "stride_h": 1, "stride_w": 1, "activation": "RELU"}),
        Op("DEPTHWISE_CONV_2D", (conv, dw_w, dw_b), (dw,), {**window, "activation": "RELU6", "depth_multiplier": 1}),
        Op("MAX_POOL_2D", (conv,), (pooled,), {**window, "activation": "NONE", "filter_h": 2, "filter_w": 2}),
        Op("ADD", (dw, pooled), (summed,), {"activation": "NONE"}),
        Op("CONCATENATION", (summed, summed), (cat,), {"axis": 3, "activation": "NONE"}),
        Op("AVERAGE_POOL_2D", (cat,), (avg,), {"padding": "VALID", "stride_h": 2, "stride_w": 2, "activation": "NONE", "filter_h": 2, "filter_w": 2}),
        Op("MEAN", (avg, axes), (mean,), {"axes": (1, 2), "keep_dims": True}),
        Op("RESHAPE", (mean, shape), (flat,), {}),
        Op("FULLY_CONNECTED", (flat, fw, fb), (logits,), {"activation": "NONE", "keep_num_dims": False}),
        Op("SOFTMAX", (logits,), (probs,), {"beta": 1.0}),
        Op("DEQUANTIZE", (probs,), (out,)),
    ]
    for index, op in enumerate(ops):
        op.index = index
    return Graph("every_op", tensors, ops, [x_f], [out])


def test_every_op_kind_round_trips_and_runs_in_tflm():
    graph = every_op_graph()
    assert {op.kind for op in graph.ops} == set(OP_KINDS)
    data = export_tflite(graph)
    assert data[4:8] == b"TFL3"
    assert_graphs_equal(parse_tflite(data, name=graph.name), graph)
    (probs,) = run_tflm(data, _random_inputs(graph))
    assert probs.shape == (1, 10) and probs.dtype == np.float32
    assert abs(float(probs.sum()) - 1.0) < 0.05


def test_export_is_deterministic_and_buffers_are_aligned():
    graph = every_op_graph()
    data = export_tflite(graph)
    assert export_tflite(graph) == data
    model = schema.Model.GetRootAs(bytearray(data), 0)
    assert model.Buffers(0).DataLength() == 0
    for i in range(1, model.BuffersLength()):
        buffer = model.Buffers(i)
        assert buffer.DataLength() > 0
        offset = buffer._tab.Vector(buffer._tab.Offset(4))
        assert offset % BUFFER_ALIGNMENT == 0, f"buffer {i} at offset {offset}"


def test_unknown_op_kind_is_refused():
    graph = every_op_graph()
    graph.ops[1].kind = "TANH"
    with pytest.raises(UnsupportedOpError, match="TANH"):
        export_tflite(graph)


def test_mean_axes_must_agree_with_the_axis_tensor():
    graph = every_op_graph()
    mean = next(op for op in graph.ops if op.kind == "MEAN")
    mean.attrs["axes"] = (2,)
    with pytest.raises(ValueError, match="axes"):
        export_tflite(graph)


@pytest.mark.skipif(not SHARED_MODELS, reason=f"no shared models in {MODELS}")
@pytest.mark.parametrize("path", SHARED_MODELS, ids=lambda p: p.stem)
def test_shared_model_round_trips_and_matches_tflm(path: Path):
    original = path.read_bytes()
    graph = parse_tflite(original, name=path.stem)
    exported = export_tflite(graph)
    assert_graphs_equal(parse_tflite(exported, name=path.stem), graph)
    for seed in range(2):
        inputs = _random_inputs(graph, seed)
        expected = run_tflm(original, inputs)
        actual = run_tflm(exported, inputs)
        assert len(expected) == len(actual)
        for e, a in zip(expected, actual):
            assert e.dtype == a.dtype and np.array_equal(e, a)
