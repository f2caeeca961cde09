"""Every refusal of a model names what is wrong: unsupported op, corrupt file, float model,
a model too big for the board."""
from __future__ import annotations

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

import flatbuffers

from engine import synth
from engine.compiler import compile_graph
from engine.errors import DoesNotFitError, ModelFormatError, UnsupportedOpError
from engine.export import export_tflite
from engine.tflite import parse_tflite
from hil.firmware_build.model_workload import check_fits
from hil.targets.boards import load_board
from tinylab_cli.main import main


def conv_model_bytes() -> bytes:
    graph = synth.conv2d_model(np.random.default_rng(0), 8, 8, 3, 4, 3, 1, "SAME", "RELU", True)
    return export_tflite(graph)


def edited(data: bytes, edit) -> bytes:
    """The model after `edit(ModelT)`, packed again with the TFLite schema."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_unsupported_op_is_refused_with_its_name_and_index():
    def to_logistic(model):
        model.operatorCodes[model.subgraphs[0].operators[0].opcodeIndex].builtinCode = schema.BuiltinOperator.LOGISTIC
        model.operatorCodes[model.subgraphs[0].operators[0].opcodeIndex].deprecatedBuiltinCode = schema.BuiltinOperator.LOGISTIC

    with pytest.raises(UnsupportedOpError, match=r"op 0 \(LOGISTIC\) is not supported by the engine"):
        parse_tflite(edited(conv_model_bytes(), to_logistic), name="m")


def test_unsupported_activation_is_refused():
    def to_tanh(model):
        model.subgraphs[0].operators[0].builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.TANH

    with pytest.raises(UnsupportedOpError, match=r"op 0 \(CONV_2D\): fused activation TANH"):
        parse_tflite(edited(conv_model_bytes(), to_tanh))


def test_dilation_is_refused():
    def dilate(model):
        model.subgraphs[0].operators[0].builtinOptions.dilationHFactor = 2

    with pytest.raises(UnsupportedOpError, match="dilation 2x1 is not supported"):
        parse_tflite(edited(conv_model_bytes(), dilate))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "no 'TFL3' file identifier"),
        (b"\x00" * 64, "no 'TFL3' file identifier"),
        (b"hello world, not a model", "no 'TFL3' file identifier"),
    ],
)
def test_non_flatbuffers_are_refused(data, message):
    with pytest.raises(ModelFormatError, match=message):
        parse_tflite(data)


def test_truncated_flatbuffer_is_refused():
    data = conv_model_bytes()
    with pytest.raises(ModelFormatError, match="corrupt TFLite flatbuffer|holds .* bytes"):
        parse_tflite(data[: len(data) // 3])


def test_float_model_is_refused():
    def to_float(model):  # the activations become float32, as in an unquantised model
        for tensor in model.subgraphs[0].tensors:
            if tensor.type == schema.TensorType.INT8 and model.buffers[tensor.buffer].data is None:
                tensor.type = schema.TensorType.FLOAT32

    with pytest.raises(ModelFormatError, match=r"is float32; the engine needs int8 \(a float model: quantise it to int8 first\)"):
        parse_tflite(edited(conv_model_bytes(), to_float))


def test_model_too_big_for_the_board_names_the_numbers():
    graph = synth.conv2d_model(np.random.default_rng(0), 128, 128, 8, 16, 3, 1, "SAME", "NONE", True)
    compiled = compile_graph(graph)
    with pytest.raises(DoesNotFitError, match=r"does not fit qemu-f412: its arena needs [\d,]+ B of SRAM; the board has 262,144 B"):
        check_fits(load_board("qemu-f412"), compiled)


def test_compile_command_refuses_a_model_too_big(tmp_path, capsys):
    graph = synth.conv2d_model(np.random.default_rng(0), 128, 128, 8, 16, 3, 1, "SAME", "NONE", True)
    path = tmp_path / "big.tflite"
    path.write_bytes(export_tflite(graph))
    assert main(["compile", str(path), "-o", str(tmp_path / "out"), "--board", "qemu-f412"]) == 2
    assert "does not fit qemu-f412" in capsys.readouterr().err


def test_run_command_names_an_unsupported_op(tmp_path, capsys):
    def to_logistic(model):
        model.operatorCodes[0].builtinCode = schema.BuiltinOperator.LOGISTIC
        model.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.LOGISTIC

    path = tmp_path / "logistic.tflite"
    path.write_bytes(edited(conv_model_bytes(), to_logistic))
    assert main(["run", str(path), "--board", "qemu-f746"]) == 2
    assert "op 0 (LOGISTIC) is not supported" in capsys.readouterr().err
