"""engine.quantize / engine.torch_models / engine.zoo: torch -> int8 Graph with TFLite's semantics."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from engine.errors import UnsupportedOpError
from engine.export import export_tflite
from engine.oracle import run_tflm
from engine.quantize import (
    SOFTMAX_SCALE,
    activation_params,
    dequantize_output,
    fold_batchnorm,
    quantize_input,
    quantize_model,
    symmetric_weights,
)
from engine.tflite import parse_tflite
from engine.torch_models import ConvBNAct, InvertedResidual, Stage, TinyMobileNet, TinyMobileNetConfig, same_padding
from engine.zoo import DEFAULT_MODEL_NAME, MCUNET_TINY, calibration_images, default_model, seeded_model

SMALL = TinyMobileNetConfig(
    input_size=20,
    stem_channels=8,
    stages=(Stage(1, 8, 1, 1, 3), Stage(3, 12, 2, 2, 5), Stage(2, 16, 1, 2, 7)),
    num_classes=6,
)


@pytest.fixture(scope="module")
def default_graph():
    return default_model()


def _run_int8(graph, images) -> np.ndarray:
    model = export_tflite(graph)
    q = quantize_input(graph, images)
    return np.concatenate([run_tflm(model, [q[i : i + 1]])[0] for i in range(len(q))])


def _float32_exact(value: float) -> bool:
    return float(np.float32(value)) == value


# ---- the arithmetic ----
def test_activation_params_hold_zero_exactly():
    assert activation_params(0.0, 6.0) == (pytest.approx(6 / 255), -128)
    scale, zero_point = activation_params(2.0, 5.0)  # widened to [0, 5]
    assert zero_point == -128 and scale == pytest.approx(5 / 255)
    scale, zero_point = activation_params(-3.0, -1.0)  # widened to [-3, 0]
    assert zero_point == 127 and scale == pytest.approx(3 / 255)
    scale, zero_point = activation_params(-1.0, 3.0)
    assert -128 < zero_point < 127 and _float32_exact(scale)
    assert activation_params(0.0, 0.0) == (1.0, 0)


def test_symmetric_weights_per_channel_and_per_tensor():
    w = np.array([[0.5, -1.0], [0.02, 0.013], [0.0, 0.0]])
    q, scales = symmetric_weights(w, axis=0)
    assert q.dtype == np.int8 and q.tolist() == [[64, -127], [127, 83], [0, 0]]
    assert scales[0] == pytest.approx(1 / 127) and scales[1] == pytest.approx(0.02 / 127)
    q, scales = symmetric_weights(w, axis=None)
    assert len(scales) == 1 and q[0, 1] == -127 and q[1, 0] == 3


def test_same_padding_is_tflite_same():
    assert same_padding(48, 3, 2) == (0, 1)
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(12, 5, 1) == (2, 2)
    assert same_padding(6, 7, 2) == (2, 3)
    assert same_padding(8, 1, 2) == (0, 0)


def test_fold_batchnorm_reproduces_conv_and_bn():
    torch.manual_seed(0)
    block = ConvBNAct(4, 6, 3, 1, activation="none").double()
    block.bn.running_mean.uniform_(-1, 1)
    block.bn.running_var.uniform_(0.5, 2)
    block.bn.weight.data.uniform_(0.5, 1.5)
    block.bn.bias.data.uniform_(-1, 1)
    block.eval()
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    weight, bias = fold_batchnorm(block.conv, block.bn)
    folded = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1)), torch.from_numpy(weight), torch.from_numpy(bias))
    assert torch.allclose(folded, block(x), atol=1e-10)


# ---- the quantiser on a small model ----
@pytest.mark.parametrize("pool", ["MEAN", "AVERAGE_POOL_2D"])
def test_int8_output_tracks_the_float_model(pool):
    model = seeded_model(SMALL, seed=7)
    images = calibration_images(SMALL, count=24, seed=8)
    graph = quantize_model(model, images, name="small", pool=pool)
    assert pool in {op.kind for op in graph.ops}
    with torch.no_grad():
        expected = model(images).numpy()
    actual = dequantize_output(graph, _run_int8(graph, images))
    cosine = (actual * expected).sum(1) / np.linalg.norm(actual, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.95
    # the input-dependent part of the logits survives quantisation, not only their common offset
    a, e = actual - actual.mean(0), expected - expected.mean(0)
    assert (a * e).sum() / np.linalg.norm(a) / np.linalg.norm(e) > 0.9
    assert (actual.argmax(1) == expected.argmax(1)).mean() >= 0.75


def test_quantisation_follows_tflite_conventions():
    model = seeded_model(SMALL, seed=3)
    graph = quantize_model(model, calibration_images(SMALL, count=8, seed=4), name="small")
    kinds = [op.kind for op in graph.ops]
    residual_blocks = sum(1 for m in model.modules() if isinstance(m, InvertedResidual) and m.use_residual)
    assert kinds.count("ADD") == residual_blocks == 2
    assert kinds[-3:] == ["MEAN", "RESHAPE", "FULLY_CONNECTED"]
    for tensor in graph.tensors:
        assert all(_float32_exact(s) for s in tensor.scale), tensor.name
    for op in graph.ops:
        x, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w, b = graph.tensors[op.inputs[1]], graph.tensors[op.inputs[2]]
            per_channel = op.kind != "FULLY_CONNECTED"
            channels = w.shape[w.quantized_dimension]
            assert len(w.scale) == (channels if per_channel else 1)
            assert set(w.zero_point) == {0} and set(b.zero_point) == {0}
            assert w.data.dtype == np.int8 and np.abs(w.data.astype(int)).max() == 127 and w.data.min() >= -127
            if per_channel:  # every channel uses its whole range
                peaks = np.abs(np.moveaxis(w.data.astype(int), w.quantized_dimension, 0)).reshape(channels, -1).max(1)
                assert set(peaks.tolist()) == {127}
            assert b.dtype == "int32" and b.shape == (out.shape[-1],)
            assert b.scale == tuple(float(np.float32(x.scale[0] * s)) for s in w.scale)
            assert w.quantized_dimension == {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}[op.kind]
        if op.attrs.get("activation") in ("RELU", "RELU6"):
            assert out.zero_point == (-128,)  # a ReLU's range starts at 0
        if op.kind == "RESHAPE":
            assert (out.scale, out.zero_point) == (x.scale, x.zero_point)
    assert [op.index for op in graph.ops] == list(range(len(graph.ops)))


def test_quantize_model_leaves_the_model_alone():
    model = seeded_model(SMALL, seed=3).float().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quantize_model(model, calibration_images(SMALL, count=4, seed=4).float())
    assert model.training and next(model.parameters()).dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_unsupported_module_is_refused_with_its_name():
    model = seeded_model(SMALL, seed=3)
    model.blocks[1].depthwise.act = nn.GELU()
    with pytest.raises(UnsupportedOpError, match=r"blocks\.1\.depthwise\.act.*GELU"):
        quantize_model(model, calibration_images(SMALL, count=2, seed=4))
    stray = nn.Sequential(ConvBNAct(3, 4, 3, 2), nn.MaxPool2d(2))
    with pytest.raises(UnsupportedOpError, match=r"module '1' \(MaxPool2d\)"):
        quantize_model(stray, torch.rand(2, 3, 8, 8))

    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(UnsupportedOpError, match=r"the model \(Custom\)"):
        quantize_model(Custom(), torch.rand(2, 3, 8, 8))


# ---- the default model ----
def test_default_model_is_deterministic(default_graph):
    state = torch.random.get_rng_state()
    again = default_model()
    assert torch.equal(state, torch.random.get_rng_state())  # torch's global RNG is left alone
    assert export_tflite(again) == export_tflite(default_graph)


def test_default_model_shape_and_round_trip(default_graph):
    graph = default_graph
    assert graph.name == DEFAULT_MODEL_NAME
    x, y = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    assert (x.shape, x.dtype) == ((1, MCUNET_TINY.input_size, MCUNET_TINY.input_size, 3), "int8")
    assert (y.shape, y.scale, y.zero_point) == ((1, MCUNET_TINY.num_classes), (SOFTMAX_SCALE,), (-128,))
    assert graph.ops[-1].kind == "SOFTMAX"
    back = parse_tflite(export_tflite(graph), name=graph.name)
    assert [(t.name, t.shape, t.scale, t.zero_point, t.quantized_dimension) for t in back.tensors] == [
        (t.name, t.shape, t.scale, t.zero_point, t.quantized_dimension) for t in graph.tensors
    ]
    assert all((a.data is None and b.data is None) or np.array_equal(a.data, b.data) for a, b in zip(back.tensors, graph.tensors))
    assert [(op.kind, op.inputs, op.outputs, op.attrs) for op in back.ops] == [
        (op.kind, op.inputs, op.outputs, op.attrs) for op in graph.ops
    ]


def test_default_model_runs_in_tflm_like_the_float_model(default_graph):
    images = calibration_images(count=8)
    with torch.no_grad():
        expected = seeded_model()(images).numpy()
    actual = dequantize_output(default_graph, _run_int8(default_graph, images))
    assert np.allclose(actual.sum(1), 1.0, atol=0.05)
    assert np.abs(actual - expected).max() < 0.03


def test_tflm_and_reference_agree_bit_for_bit_on_the_default_model(default_graph):
    from engine.reference import run_reference

    model = export_tflite(default_graph)
    rng = np.random.default_rng(0)
    inputs = [q[None] for q in quantize_input(default_graph, calibration_images(count=4, seed=99))]
    inputs += [rng.integers(-128, 128, size=(1, 48, 48, 3), dtype=np.int8) for _ in range(2)]
    for x in inputs:
        (expected,) = run_tflm(model, [x])
        (actual,) = run_reference(default_graph, [x])
        assert actual.dtype == expected.dtype and np.array_equal(actual, expected)


def test_config_accepts_plain_tuples_and_builds_the_listed_blocks():
    config = TinyMobileNetConfig(stages=((1, 8, 1, 1, 3), (4, 16, 3, 2, 7)), input_size=16)
    assert config.stages[1] == Stage(expand=4, channels=16, repeats=3, stride=2, kernel=7)
    model = TinyMobileNet(config)
    blocks = list(model.blocks)
    assert len(blocks) == 4 and blocks[0].expand is None
    assert [b.depthwise.conv.stride for b in blocks] == [(1, 1), (2, 2), (1, 1), (1, 1)]
    assert [b.use_residual for b in blocks] == [True, False, True, True]
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 10)
    with pytest.raises(ValueError):
        TinyMobileNetConfig(stages=(), activation="gelu")
