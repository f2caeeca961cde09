"""engine.reference against TFLite Micro, bit for bit: the shared real models on random and real
inputs, and single-op and small multi-op graphs from engine.synth exported with engine.export."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from engine import synth
from engine.errors import UnsupportedOpError
from engine.ir import Graph
from engine.ops import OP_KINDS, OPS
from engine.oracle import interpreter, run_tflm
from engine.quant import effective_scale, multiply_by_quantized_multiplier, quantize_multiplier
from engine.reference import run_reference, run_reference_all
from engine.tflite import parse_tflite

try:
    from engine.export import export_tflite
except ImportError:  # written by another helper; the synthetic tests wait for it
    export_tflite = None

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models"
DATA = SHARED / "data"
MODEL_PATHS = sorted(MODELS.glob("*.tflite")) if MODELS.is_dir() else []

needs_models = pytest.mark.skipif(not MODEL_PATHS, reason=f"the shared reference models are not in {MODELS}")
needs_export = pytest.mark.skipif(export_tflite is None, reason="engine.export (the .tflite writer) is not there yet")


# ---- helpers ----
def seed_of(*parts) -> int:
    """A deterministic seed from a test's parameters (hash() of strings varies per process)."""
    return zlib.crc32(repr(parts).encode())


def assert_outputs_equal(ours: list[np.ndarray], theirs: list[np.ndarray], where: str) -> None:
    assert len(ours) == len(theirs), where
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == b.dtype, f"{where}: output {i} is {a.dtype}, TFLM's is {b.dtype}"
        assert a.shape == b.shape, f"{where}: output {i} has shape {a.shape}, TFLM's {b.shape}"
        if not np.array_equal(a, b):
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            pytest.fail(f"{where}: output {i} differs from TFLM in {int((diff > 0).sum())} of {a.size} values (max {diff.max()})")


def assert_bit_exact(graph: Graph, model: bytes, inputs: list[np.ndarray], where: str) -> None:
    assert_outputs_equal(run_reference(graph, inputs), run_tflm(model, inputs), where)


def check_synthetic(graph: Graph, seeds: int = 2) -> None:
    model = export_tflite(graph)
    for seed in range(seeds):
        inputs = synth.random_inputs(graph, np.random.default_rng(seed))
        assert_bit_exact(graph, model, inputs, f"{graph.name} (inputs seed {seed})")


def tflm_intermediates(model: bytes, inputs: list[np.ndarray], indices: list[int]) -> dict[int, np.ndarray]:
    """TFLM's value of each tensor in `indices` after one run (kPreserveAllTensors)."""
    tflm = interpreter(model, preserve_all_tensors=True)
    for i, value in enumerate(inputs):
        tflm.set_input(np.ascontiguousarray(value), i)
    tflm.invoke()
    found = {}
    for index in indices:
        value = tflm.GetTensor(index, 0)
        found[index] = np.asarray(value["tensor_data"] if isinstance(value, dict) else value)
    return found


def read_bmp_gray(path: Path) -> np.ndarray:
    """An 8-bit palettised BMP (gray palette) as rows of pixel bytes in file order."""
    raw = path.read_bytes()
    offset = struct.unpack("<I", raw[10:14])[0]
    width, height = struct.unpack("<ii", raw[18:26])
    stride = (width + 3) // 4 * 4
    rows = np.frombuffer(raw[offset : offset + stride * abs(height)], dtype=np.uint8).reshape(abs(height), stride)
    return rows[:, :width]


# ---- the shared real models ----
@needs_models
@pytest.mark.parametrize("path", MODEL_PATHS, ids=lambda p: p.stem)
def test_shared_model_random_inputs_match_tflm(path: Path):
    model = path.read_bytes()
    graph = parse_tflite(model, name=path.stem)
    rng = np.random.default_rng(1234)
    for trial in range(4):
        inputs = synth.random_inputs(graph, rng)
        assert_bit_exact(graph, model, inputs, f"{path.stem} (random input {trial})")


@needs_models
def test_vww_real_images_match_tflm():
    path = MODELS / "vww_96_int8.tflite"
    if not path.exists() or not (DATA / "person.bmp").exists():
        pytest.skip("vww_96_int8.tflite or the person images are missing")
    model = path.read_bytes()
    graph = parse_tflite(model, name=path.stem)
    for image in ("person.bmp", "no_person.bmp"):
        gray = read_bmp_gray(DATA / image)
        x = (np.repeat(gray[:, :, None], 3, axis=2).astype(np.int16) - 128).astype(np.int8)[None]
        assert_bit_exact(graph, model, [x], f"vww_96_int8 on {image}")


@needs_models
def test_ad01_feature_windows_match_tflm():
    path = MODELS / "ad01_int8.tflite"
    features = DATA / "ad01_normal_id_01_hist_librosa.bin"
    if not path.exists() or not features.exists():
        pytest.skip("ad01_int8.tflite or its feature file is missing")
    model = path.read_bytes()
    graph = parse_tflite(model, name=path.stem)
    tensor = graph.tensors[graph.inputs[0]]
    values = np.fromfile(features, dtype=np.float32)
    starts = range(0, values.size - 640 + 1, 128)
    for start in list(starts)[::12]:
        window = values[start : start + 640]
        q = np.round(window / np.float32(tensor.scale[0])) + tensor.zero_point[0]
        x = np.clip(q, -128, 127).astype(np.int8).reshape(tensor.shape)
        assert_bit_exact(graph, model, [x], f"ad01_int8 on the window at {start}")


@needs_models
def test_every_intermediate_tensor_matches_tflm():
    """run_reference_all gives each op's output as TFLM holds it (layer-by-layer debugging)."""
    for name in ("kws_ref_model", "pretrainedResnet_large_int8"):
        path = MODELS / f"{name}.tflite"
        if not path.exists():
            continue
        model = path.read_bytes()
        graph = parse_tflite(model, name=name)
        inputs = synth.random_inputs(graph, np.random.default_rng(7))
        ours = run_reference_all(graph, inputs)
        produced = [op.outputs[0] for op in graph.ops]
        theirs = tflm_intermediates(model, inputs, produced)
        for op in graph.ops:
            t = op.outputs[0]
            assert np.array_equal(ours[t].ravel(), theirs[t].ravel()), f"{name}: op {op.index} ({op.kind}) output differs"


def test_every_op_kind_has_a_kernel():
    assert all(callable(OPS[kind].reference) for kind in OP_KINDS)


def test_inputs_are_checked():
    graph = synth.softmax_model(np.random.default_rng(0), (1, 4), 0.1)
    with pytest.raises(ValueError, match="int8"):
        run_reference(graph, [np.zeros((1, 4), dtype=np.float32)])
    with pytest.raises(ValueError, match="shape"):
        run_reference(graph, [np.zeros((1, 5), dtype=np.int8)])
    with pytest.raises(ValueError, match="inputs"):
        run_reference(graph, [])


# ---- single ops, through engine.export ----
CONV_CASES = [
    # h, w, cin, cout, k, stride, padding, activation, per_channel
    (k_h_w[1], k_h_w[2], cin, cout, k_h_w[0], stride, padding, activation, per_channel)
    for (k_h_w, stride, padding), (cin, cout, activation, per_channel) in zip(
        [((k, 9 + k, 7 + k % 3), s, p) for k in (1, 2, 3, 5, 7) for s in (1, 2) for p in ("SAME", "VALID")],
        [(3, 5, "RELU", True), (4, 6, "NONE", False), (5, 7, "RELU6", True), (1, 8, "NONE", True), (7, 3, "RELU", False)] * 4,
    )
] + [
    (7, 7, 3, 3, (3, 1), (2, 1), "SAME", "RELU6", False),
    (6, 11, 2, 4, (1, 4), (1, 2), "SAME", "NONE", True),
    (5, 5, 16, 9, 3, 2, "VALID", "NONE", True),
    (1, 1, 8, 4, 1, 1, "VALID", "RELU", False),
]


@needs_export
@pytest.mark.parametrize("h,w,cin,cout,k,stride,padding,activation,per_channel", CONV_CASES)
def test_conv_2d(h, w, cin, cout, k, stride, padding, activation, per_channel):
    rng = np.random.default_rng(seed_of(h, w, cin, cout, k, stride, padding))
    check_synthetic(synth.conv2d_model(rng, h, w, cin, cout, k, stride, padding, activation, per_channel))


DEPTHWISE_CASES = [
    (8 + k, 6 + k % 2, (3, 5, 2)[i % 3], (1, 2, 3)[i % 3], k, s, p, ("NONE", "RELU", "RELU6")[i % 3], i % 2 == 0)
    for i, (k, s, p) in enumerate((k, s, p) for k in (1, 3, 5) for s in (1, 2) for p in ("SAME", "VALID"))
] + [
    (12, 9, 4, 2, 7, 2, "SAME", "RELU6", True),
    (7, 10, 3, 1, (3, 5), (2, 1), "SAME", "NONE", False),
    (6, 6, 1, 3, 2, 2, "SAME", "RELU", True),
]


@needs_export
@pytest.mark.parametrize("h,w,cin,multiplier,k,stride,padding,activation,per_channel", DEPTHWISE_CASES)
def test_depthwise_conv_2d(h, w, cin, multiplier, k, stride, padding, activation, per_channel):
    rng = np.random.default_rng(seed_of(h, w, cin, multiplier, k, stride, padding))
    check_synthetic(synth.depthwise_conv2d_model(rng, h, w, cin, multiplier, k, stride, padding, activation, per_channel))


@needs_export
@pytest.mark.parametrize(
    "input_shape,units,activation,per_channel,with_bias",
    [
        ((1, 16), 10, "NONE", False, True),
        ((3, 20), 7, "RELU", True, True),
        ((1, 2, 3, 4), 5, "RELU6", False, True),
        ((2, 33), 1, "NONE", True, False),
        ((1, 1), 3, "NONE", False, True),
        ((4, 64), 12, "RELU", False, False),
    ],
)
def test_fully_connected(input_shape, units, activation, per_channel, with_bias):
    rng = np.random.default_rng(len(input_shape) * 100 + units)
    check_synthetic(synth.fully_connected_model(rng, input_shape, units, activation, per_channel, with_bias))


@needs_export
@pytest.mark.parametrize(
    "shape_a,shape_b,activation",
    [
        ((1, 5, 3, 7), (1, 5, 3, 7), "NONE"),
        ((1, 4, 4, 8), (1, 4, 4, 8), "RELU"),
        ((1, 4, 4, 8), (1, 1, 1, 8), "RELU6"),
        ((1, 4, 4, 1), (1, 4, 4, 6), "NONE"),
        ((1, 1, 5, 3), (1, 4, 1, 3), "NONE"),
        ((2, 9), (9,), "RELU"),
    ],
)
def test_add(shape_a, shape_b, activation):
    rng = np.random.default_rng(sum(shape_a) * 10 + sum(shape_b))
    check_synthetic(synth.add_model(rng, shape_a, shape_b, activation))


POOL_CASES = [
    (kind, 9, 7, 3, f, s, p, a)
    for kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D")
    for f, s, p, a in [
        (2, 2, "VALID", "NONE"),
        (3, 2, "SAME", "NONE"),
        (3, 1, "SAME", "RELU"),
        ((2, 3), (1, 2), "SAME", "RELU6"),
        (1, 1, "VALID", "NONE"),
        ((9, 7), 1, "VALID", "NONE"),
        (4, 3, "SAME", "NONE"),
    ]
]


@needs_export
@pytest.mark.parametrize("kind,h,w,c,filter_size,stride,padding,activation", POOL_CASES)
def test_pooling(kind, h, w, c, filter_size, stride, padding, activation):
    rng = np.random.default_rng(seed_of(kind, filter_size, stride, padding, activation))
    check_synthetic(synth.pool_model(rng, kind, h, w, c, filter_size, stride, padding, activation))


@needs_export
@pytest.mark.parametrize(
    "shape,axes,keep_dims,same",
    [
        ((1, 5, 6, 7), (1, 2), True, False),
        ((1, 5, 6, 7), (2, 1), True, False),
        ((1, 5, 6, 7), (1, 2), False, False),
        ((1, 5, 6, 7), (-3, -2), True, False),
        ((1, 5, 6, 7), (1, 2), True, True),
        ((1, 5, 6, 7), (1,), False, True),
        ((1, 5, 6, 7), (3,), True, False),
        ((2, 3, 4, 5), (0, 2), False, False),
        ((1, 13, 11, 3), (1, 2), True, False),
        ((4, 9), (-1,), False, False),
    ],
)
def test_mean(shape, axes, keep_dims, same):
    rng = np.random.default_rng(sum(shape) + 7 * len(axes))
    check_synthetic(synth.mean_model(rng, shape, axes, keep_dims, same))


@needs_export
@pytest.mark.parametrize(
    "shape,paddings",
    [
        ((1, 4, 5, 3), ((0, 0), (1, 1), (1, 1), (0, 0))),
        ((1, 4, 5, 3), ((0, 0), (0, 2), (3, 0), (0, 0))),
        ((1, 3, 3, 2), ((0, 0), (2, 1), (1, 2), (1, 1))),
        ((2, 7), ((1, 0), (2, 3))),
    ],
)
def test_pad(shape, paddings):
    check_synthetic(synth.pad_model(np.random.default_rng(len(shape)), shape, paddings))


@needs_export
def test_reshape():
    rng = np.random.default_rng(3)
    check_synthetic(synth.reshape_model(rng, (1, 4, 5, 3), (1, 60)))
    check_synthetic(synth.reshape_model(rng, (2, 6), (3, 2, 2)))


@needs_export
@pytest.mark.parametrize(
    "shape,input_scale,beta",
    [
        ((1, 10), 0.1, 1.0),
        ((2, 12), 0.02, 1.0),
        ((1, 4), 0.5, 1.0),
        ((3, 7), 1.0, 0.5),
        ((1, 1), 0.1, 1.0),
        ((1, 1001), 0.05, 1.0),
        ((1, 2, 3, 5), 0.25, 2.0),
        ((4, 16), 0.004, 1.0),
        ((2, 30), 3.0, 1.0),
        ((1, 8), 0.07, 0.25),
    ],
)
def test_softmax(shape, input_scale, beta):
    rng = np.random.default_rng(int(input_scale * 1000) + shape[-1])
    check_synthetic(synth.softmax_model(rng, shape, input_scale, beta), seeds=4)


@needs_export
@pytest.mark.parametrize(
    "shapes,axis",
    [
        ([(1, 3, 3, 2), (1, 3, 3, 5)], 3),
        ([(1, 3, 3, 2), (1, 1, 3, 2), (1, 2, 3, 2)], 1),
        ([(2, 3), (2, 5), (2, 1)], -1),
        ([(1, 2, 4, 3), (2, 2, 4, 3)], 0),
        ([(1, 2, 4, 3), (1, 2, 1, 3)], 2),
    ],
)
def test_concatenation(shapes, axis):
    check_synthetic(synth.concatenation_model(np.random.default_rng(len(shapes) + axis), shapes, axis, True))


@needs_export
def test_concatenation_with_different_scales_is_refused_like_tflm():
    graph = synth.concatenation_model(np.random.default_rng(5), [(1, 3, 3, 2), (1, 3, 3, 5)], 3, False)
    inputs = synth.random_inputs(graph, np.random.default_rng(0))
    with pytest.raises(UnsupportedOpError, match="requantise"):
        run_reference(graph, inputs)
    with pytest.raises(RuntimeError):
        run_tflm(export_tflite(graph), inputs)


@needs_export
@pytest.mark.parametrize("shape", [(2, 50), (1, 4, 4, 3)])
def test_quantize_from_float(shape):
    check_synthetic(synth.quantize_model(np.random.default_rng(sum(shape)), shape), seeds=3)


@needs_export
def test_quantize_rounds_halves_away_from_zero_like_tflm():
    graph = synth.quantize_model(np.random.default_rng(11), (1, 600))
    scale = np.float32(graph.tensors[graph.outputs[0]].scale[0])
    steps = np.arange(-300, 300, dtype=np.float32) + np.float32(0.5)
    x = (steps * scale).astype(np.float32).reshape(1, 600)
    assert_bit_exact(graph, export_tflite(graph), [x], "QUANTIZE at half steps")


@needs_export
@pytest.mark.parametrize("ratio", [0.3, 0.7, 1.0, 1.5, 4.0])
def test_requantize_int8(ratio):
    check_synthetic(synth.requantize_model(np.random.default_rng(int(ratio * 10)), (3, 40), ratio))


@needs_export
def test_dequantize():
    check_synthetic(synth.dequantize_model(np.random.default_rng(2), (2, 3, 17)))


# ---- small multi-op graphs ----
@needs_export
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chain_of_every_op_kind(seed):
    graph = synth.chain_model(np.random.default_rng(seed))
    assert {op.kind for op in graph.ops} == set(OP_KINDS)
    model = export_tflite(graph)
    for input_seed in range(2):
        inputs = synth.random_inputs(graph, np.random.default_rng(100 + input_seed))
        assert_bit_exact(graph, model, inputs, f"chain {seed} (inputs seed {input_seed})")
        ours = run_reference_all(graph, inputs)
        produced = [op.outputs[0] for op in graph.ops]
        theirs = tflm_intermediates(model, inputs, produced)
        for op in graph.ops:
            t = op.outputs[0]
            assert np.array_equal(ours[t].ravel(), theirs[t].ravel()), f"chain {seed}: op {op.index} ({op.kind}) differs"


def test_softmax_beyond_tflms_fixed_point_is_refused():
    """A row whose exponentials sum to 512 or more makes TFLM abort (its output shift passes 31);
    the reference raises instead, and agrees with TFLM just below."""
    graph = synth.softmax_model(np.random.default_rng(0), (1, 512), 0.1)
    with pytest.raises(OverflowError, match="SOFTMAX"):
        run_reference(graph, [np.zeros((1, 512), dtype=np.int8)])
    if export_tflite is not None:
        below = synth.softmax_model(np.random.default_rng(0), (1, 511), 0.1)
        x = np.zeros((1, 511), dtype=np.int8)
        assert_bit_exact(below, export_tflite(below), [x], "softmax of 511 equal values")


def random_single_op_graph(seed: int) -> Graph:
    """One op of a random kind with random shapes, windows and quantisation."""
    r = np.random.default_rng(seed)
    rng = np.random.default_rng(seed + 1_000_000)
    padding, activation = ("SAME", "VALID")[r.integers(2)], ("NONE", "RELU", "RELU6")[r.integers(3)]
    k = (int(r.integers(1, 8)), int(r.integers(1, 8)))
    stride = (int(r.integers(1, 4)), int(r.integers(1, 4)))
    h, w = int(r.integers(k[0], 16)), int(r.integers(k[1], 16))
    per_channel = bool(r.integers(2))
    kind = seed % 7
    if kind == 0:
        return synth.conv2d_model(rng, h, w, int(r.integers(1, 9)), int(r.integers(1, 9)), k, stride, padding, activation, per_channel)
    if kind == 1:
        return synth.depthwise_conv2d_model(rng, h, w, int(r.integers(1, 9)), int(r.integers(1, 4)), k, stride, padding, activation, per_channel)
    if kind == 2:
        pool = ("AVERAGE_POOL_2D", "MAX_POOL_2D")[r.integers(2)]
        return synth.pool_model(rng, pool, h, w, int(r.integers(1, 6)), k, stride, padding, activation)
    if kind == 3:  # depth below 512: the row sum stays inside TFLM's fixed point
        shape = (int(r.integers(1, 4)), int(r.integers(1, 400)))
        return synth.softmax_model(rng, shape, float(np.exp(r.uniform(np.log(1e-3), np.log(20)))), float(r.choice([1.0, 0.5, 2.0, 0.1])))
    if kind == 4:
        shape = tuple(int(d) for d in r.integers(1, 7, size=4))
        axes = tuple(sorted({int(a) for a in r.choice(4, size=int(r.integers(1, 4)))}))
        return synth.mean_model(rng, shape, axes, bool(r.integers(2)), bool(r.integers(2)))
    if kind == 5:
        shape = tuple(int(d) for d in r.integers(1, 6, size=4))
        other = tuple(d if r.random() < 0.6 else 1 for d in shape)
        return synth.add_model(rng, shape, other, activation)
    depth = int(r.integers(1, 300))
    return synth.fully_connected_model(rng, (int(r.integers(1, 4)), depth), int(r.integers(1, 40)), activation, per_channel, bool(r.integers(2)))


@needs_export
@pytest.mark.parametrize("seed", range(70))
def test_random_single_op_graph(seed):
    check_synthetic(random_single_op_graph(seed))


# ---- the requantisation multipliers, to their last bit ----
def rounding_sensitive_accumulators(multiplier: int, shift: int, zero_point: int) -> np.ndarray:
    """Accumulators whose int8 result changes when `multiplier` changes by one: they tell a
    multiplier computed as TFLM does from one computed slightly differently."""
    real = multiplier * 2.0 ** (shift - 31)
    targets = np.arange(-100, 100) - zero_point
    centres = np.round((targets + 0.5) / real).astype(np.int64)
    accs = (centres[:, None] + np.arange(-64, 65)).ravel()
    accs = accs[np.abs(accs) < 2**31 - 2**16]
    exact = multiply_by_quantized_multiplier(accs, multiplier, shift)
    nearby = [multiply_by_quantized_multiplier(accs, multiplier + d, shift) for d in (-1, 1)]
    return np.unique(accs[(exact != nearby[0]) | (exact != nearby[1])])


def probe_graph(kind: str, seed: int) -> Graph:
    """A FULLY_CONNECTED or 1x1 CONV_2D with unit weights over a single input value and biases
    set to rounding-sensitive accumulators; the output scale is large so that accumulators are
    large and the multiplier's last bit matters."""
    rng = np.random.default_rng(seed)
    units = 48
    if kind == "CONV_2D":
        graph = synth.conv2d_model(rng, 1, 1, 1, units, 1, 1, "VALID", "NONE", per_channel=True)
    else:
        graph = synth.fully_connected_model(rng, (1, 1), units, "NONE", per_channel=kind.endswith("per-channel"))
    op = graph.ops[0]
    inp, weights, bias, out = (graph.tensors[t] for t in op.inputs + op.outputs)
    out.scale = (float(np.float32(out.scale[0] * 1000)),)
    weights.data[...] = 1
    scales = weights.scale if weights.per_channel else weights.scale * units
    biases = []
    for channel, weight_scale in enumerate(scales):
        m, s = quantize_multiplier(effective_scale(inp.scale[0], weight_scale, out.scale[0]))
        candidates = rounding_sensitive_accumulators(m, s, out.zero_point[0])
        biases.append(candidates[channel % len(candidates)] if len(candidates) else 0)
    bias.data = (np.array(biases, dtype=np.int64) + inp.zero_point[0]).astype(np.int32)  # input value 0
    return graph


@needs_export
@pytest.mark.parametrize("kind", ["FULLY_CONNECTED per-tensor", "FULLY_CONNECTED per-channel", "CONV_2D"])
@pytest.mark.parametrize("seed", range(3))
def test_requantisation_multiplier_to_the_last_bit(kind, seed):
    graph = probe_graph(kind, seed)
    x = np.zeros(graph.tensors[graph.inputs[0]].shape, dtype=np.int8)
    assert_bit_exact(graph, export_tflite(graph), [x], f"{kind} rounding probe {seed}")


@needs_export
@pytest.mark.parametrize("seed", range(4))
def test_add_every_pair_of_int8_values(seed):
    """All 65536 input pairs through a broadcast ADD: every rounding case of its rescaling."""
    graph = synth.add_model(np.random.default_rng(seed), (256, 1), (1, 256), ("NONE", "RELU", "RELU6", "NONE")[seed])
    values = np.arange(-128, 128, dtype=np.int8)
    inputs = [values.reshape(256, 1), values.reshape(1, 256)]
    assert_bit_exact(graph, export_tflite(graph), inputs, f"{graph.name} over every pair")


@needs_export
@pytest.mark.parametrize("ratio", [0.013, 0.37, 0.5, 1.0, 2.0, 7.9])
def test_requantize_every_int8_value(ratio):
    graph = synth.requantize_model(np.random.default_rng(int(ratio * 1000)), (1, 256), ratio)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    assert_bit_exact(graph, export_tflite(graph), [x], f"{graph.name} over every value")
