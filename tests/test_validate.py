"""The importer's validation: each malformed field is refused with the engine's error, naming the
op or tensor and the field; graphs built in Python pass the same checks; TFLM crashing in the
oracle's child process is an EngineError, and the oracle goes on working."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine import randgraph, synth
from engine.errors import ModelFormatError, UnsupportedOpError
from engine.export import export_tflite
from engine.oracle import OracleCrashError, OracleRefusedError, run_tflm
from engine.tflite import parse_tflite
from engine.validate import validate_graph

from test_refusals import conv_model_bytes, edited


def _first_op(model):
    return model.subgraphs[0].operators[0]


def _tensor(model, position: int):
    return model.subgraphs[0].tensors[_first_op(model).inputs[position]]


def _set_scale(position: int, value: float):
    def edit(model):
        _tensor(model, position).quantization.scale = np.array([value] * len(_tensor(model, position).quantization.scale), dtype=np.float32)
    return edit


def _op_field(name: str, value):
    def edit(model):
        setattr(_first_op(model).builtinOptions, name, value)
    return edit


def _shape(position: int, shape):
    def edit(model):
        _tensor(model, position).shape = np.array(shape, dtype=np.int32)
    return edit


CASES = [
    ("opcode index", lambda m: setattr(_first_op(m), "opcodeIndex", 5), ModelFormatError, r"op 0 has opcode_index 5, outside 0\.\.0"),
    ("input index", lambda m: _first_op(m).inputs.__setitem__(0, 99), ModelFormatError, r"op 0 \(CONV_2D\): input 0 is tensor 99"),
    ("negative input", lambda m: _first_op(m).inputs.__setitem__(1, -1), ModelFormatError, r"input 1 is tensor -1"),
    ("negative output", lambda m: _first_op(m).outputs.__setitem__(0, -3), ModelFormatError, r"output 0 is tensor -3"),
    ("subgraph input", lambda m: m.subgraphs[0].inputs.__setitem__(0, 40), ModelFormatError, r"subgraph inputs\[0\] is tensor 40"),
    ("buffer index", lambda m: setattr(_tensor(m, 1), "buffer", 77), ModelFormatError, r"tensor 1: buffer index 77 is outside"),
    ("options type", lambda m: setattr(_first_op(m), "builtinOptionsType", schema.BuiltinOptions.Pool2DOptions),
     ModelFormatError, r"op 0 \(CONV_2D\): builtin_options_type is Pool2DOptions, not Conv2DOptions"),
    ("padding enum", _op_field("padding", 7), ModelFormatError, r"op 0 \(CONV_2D\): padding is 7"),
    ("stride 0", _op_field("strideH", 0), ModelFormatError, r"op 0 \(CONV_2D\): stride_h is 0"),
    ("NaN scale", _set_scale(0, float("nan")), ModelFormatError, r"tensor 0 'input': quantisation scale\[0\] is nan"),
    ("infinite weight scale", _set_scale(1, float("inf")), ModelFormatError, r"scale\[0\] is inf; it must be finite"),
    ("zero activation scale", _set_scale(0, 0.0), ModelFormatError, r"an activation's scale must be positive"),
    ("negative activation scale", _set_scale(0, -0.1), ModelFormatError, r"an activation's scale must be positive"),
    ("zero weight scale", _set_scale(1, 0.0), ModelFormatError, r"a constant's scale must be non-zero"),
    ("zero point", lambda m: setattr(_tensor(m, 0).quantization, "zeroPoint", np.array([300])), ModelFormatError,
     r"zero_point\[0\] is 300, outside -128\.\.127 for int8"),
    ("channel count", lambda m: setattr(_tensor(m, 1).quantization, "scale", np.append(_tensor(m, 1).quantization.scale, 0.5)),
     ModelFormatError, r"5 scales but 4 zero points|5 per-channel scales"),
    ("huge shape", _shape(0, [1, 1 << 20, 1 << 20, 3]), ModelFormatError, r"tensor \d+: shape .* is 3,298,534,883,328 B"),
    ("zero dimension", _shape(0, [1, 0, 8, 3]), ModelFormatError, r"has dimension 1 of 0"),
    ("output shape", lambda m: m.subgraphs[0].tensors[_first_op(m).outputs[0]].shape.__setitem__(1, 7), ModelFormatError,
     r"op 0 \(CONV_2D\): output shape \(1, 7, 8, 4\) but .* give \(1, 8, 8, 4\)"),
    ("bias size", _shape(2, [3]), ModelFormatError, r"holds 16 bytes, which do not fit its shape \(3,\)"),
    ("custom op name", lambda m: [setattr(m.operatorCodes[0], k, v) for k, v in
                                  (("builtinCode", schema.BuiltinOperator.CUSTOM), ("deprecatedBuiltinCode", schema.BuiltinOperator.CUSTOM),
                                   ("customCode", b"\xff\xfe"))], UnsupportedOpError, r"op 0 \(CUSTOM:\ufffd\ufffd\) is not supported"),
]


@pytest.mark.parametrize("what, edit, error, message", CASES, ids=[c[0] for c in CASES])
def test_malformed_field_is_refused_naming_it(what, edit, error, message):
    with pytest.raises(error, match=message):
        parse_tflite(edited(conv_model_bytes(), edit), name="m")


def test_negative_per_channel_weight_scales_are_accepted():
    """Real models (MCUNet's) carry negative per-channel weight scales, and TFLM runs them."""
    graph = synth.conv2d_model(np.random.default_rng(0), 8, 8, 3, 4, 3, 1, "SAME", "RELU", True)
    weights = graph.tensors[graph.ops[0].inputs[1]]
    weights.scale = tuple(-s if i % 2 else s for i, s in enumerate(weights.scale))
    parsed = parse_tflite(export_tflite(graph))
    assert any(s < 0 for s in parsed.tensors[parsed.ops[0].inputs[1]].scale)


def test_graphs_built_in_python_pass_validation():
    rng = np.random.default_rng(1)
    for graph in (synth.chain_model(rng), *(randgraph.random_graph(seed) for seed in range(30))):
        validate_graph(graph)


def test_a_graph_built_in_python_is_validated_before_compiling():
    from engine.compiler import compile_graph

    graph = synth.conv2d_model(np.random.default_rng(0), 8, 8, 3, 4, 3, 1, "SAME", "RELU", True)
    graph.ops[0] = dataclasses.replace(graph.ops[0], attrs={**graph.ops[0].attrs, "stride_w": 0})
    with pytest.raises(ModelFormatError, match=r"op 0 \(CONV_2D\): stride_w is 0"):
        compile_graph(graph)


def test_tflm_crashing_is_an_engine_error_and_the_oracle_recovers():
    graph = synth.conv2d_model(np.random.default_rng(0), 8, 8, 3, 4, 3, 1, "SAME", "RELU", True)
    good = export_tflite(graph)
    x = synth.random_inputs(graph, np.random.default_rng(1))
    # Tensor 2^31 - 1: TFLM reads about 200 GB past its tensor table, memory no process has mapped.
    bad = edited(good, lambda m: _first_op(m).inputs.__setitem__(1, 2**31 - 1))
    with pytest.raises(OracleCrashError, match=r"TFLite Micro crashed \(SIG(SEGV|BUS|ABRT)\) running model 'conv_8x8x3"):
        run_tflm(bad, x)
    assert run_tflm(good, x)[0].shape == (1, 8, 8, 4)  # the oracle recovers


def test_a_model_tflm_refuses_is_an_engine_error():
    graph = synth.concatenation_model(np.random.default_rng(5), [(1, 3, 3, 2), (1, 3, 3, 5)], 3, False)
    with pytest.raises(OracleRefusedError, match=r"TFLite Micro refused model 'concat_2_ax3_mixed'"):
        run_tflm(export_tflite(graph), synth.random_inputs(graph, np.random.default_rng(0)))
