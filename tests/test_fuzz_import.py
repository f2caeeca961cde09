"""A seeded fuzz of the importer, the compiler and the oracle with mutated models.

Every mutant (a truncation, byte flips, or a structured edit through the flatbuffer object API)
must import as a Graph or be refused with the engine's own error; every accepted graph must
compile or be refused likewise; a seeded sample of the compiled ones runs on the host and is
compared with TFLite Micro, which must never take the test process down."""
from __future__ import annotations

import shutil
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine import randgraph, synth
from engine.compiler import compile_graph
from engine.errors import EngineError
from engine.export import export_tflite
from engine.ir import Graph
from engine.hostbuild import HOST_CC
from engine.tflite import parse_tflite

SEED = 20260412
MUTANTS = 2016
HOST_RUNS = 20
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
SHARED_MODELS_MAX_BYTES = 400_000  # larger shared models take too long to compile per mutant
SCALES = (float("nan"), float("inf"), float("-inf"), 0.0, -0.5, 1e-45, 1e38, -1e-30)
INDICES = (-2, -1, 1 << 20, -(1 << 31), (1 << 31) - 1)
DIMS = (0, -1, -7, 1 << 20, (1 << 31) - 1, 65536)

needs_gcc = pytest.mark.skipif(shutil.which(HOST_CC) is None, reason=f"{HOST_CC} (host C compiler) is not installed")


def own_models() -> dict[str, bytes]:
    rng = np.random.default_rng(SEED)
    graphs = [
        synth.conv2d_model(rng, 8, 8, 3, 4, 3, 1, "SAME", "RELU", True),
        synth.conv2d_model(rng, 9, 7, 4, 6, 3, 2, "VALID", "NONE", False),
        synth.depthwise_conv2d_model(rng, 8, 8, 4, 2, 3, 1, "SAME", "RELU6", True),
        synth.fully_connected_model(rng, (1, 16), 5, "NONE", True),
        synth.add_model(rng, (1, 4, 4, 3), (1, 1, 1, 3), "RELU"),
        synth.pool_model(rng, "AVERAGE_POOL_2D", 6, 6, 4, 2, 2, "VALID", "NONE"),
        synth.pool_model(rng, "MAX_POOL_2D", 7, 5, 3, 3, 1, "SAME", "NONE"),
        synth.mean_model(rng, (1, 4, 4, 8), (1, 2), True),
        synth.pad_model(rng, (1, 4, 4, 2), ((0, 0), (1, 1), (2, 0), (0, 0))),
        synth.softmax_model(rng, (1, 10), 0.1),
        synth.concatenation_model(rng, [(1, 2, 2, 3), (1, 2, 2, 5)], 3, True),
        synth.chain_model(rng),
        *(randgraph.random_graph(seed) for seed in range(8)),
    ]
    return {g.name + f"#{i}": export_tflite(g) for i, g in enumerate(graphs)}


def shared_models() -> dict[str, bytes]:
    paths = sorted(SHARED.glob("models*/*.tflite")) if SHARED.is_dir() else []
    return {p.stem: p.read_bytes() for p in paths if p.stat().st_size <= SHARED_MODELS_MAX_BYTES}


# ---- mutations ----
def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def flip_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        at = int(rng.integers(8, len(out)))  # keep the file identifier: reach the parser
        out[at] ^= int(rng.integers(1, 256))
    return bytes(out)


def pick(rng: np.random.Generator, values):
    return values[int(rng.integers(0, len(values)))]


def _ops(model):
    return model.subgraphs[0].operators


def _tensors(model):
    return model.subgraphs[0].tensors


def edit_opcode_index(model, rng) -> None:
    pick(rng, _ops(model)).opcodeIndex = pick(rng, (-1, len(model.operatorCodes), 1 << 20))


def edit_op_tensor_index(model, rng) -> None:
    op = pick(rng, _ops(model))
    indices = op.inputs if rng.integers(0, 2) and op.inputs is not None and len(op.inputs) else op.outputs
    indices[int(rng.integers(0, len(indices)))] = pick(rng, (*INDICES, len(_tensors(model))))


def edit_op_arity(model, rng) -> None:
    op = pick(rng, _ops(model))
    if rng.integers(0, 2) and op.inputs is not None and len(op.inputs):
        op.inputs = op.inputs[:-1]
    else:
        op.outputs = np.append(op.outputs, int(rng.integers(0, len(_tensors(model)))))


def edit_subgraph_index(model, rng) -> None:
    subgraph = model.subgraphs[0]
    indices = subgraph.inputs if rng.integers(0, 2) else subgraph.outputs
    indices[0] = pick(rng, (*INDICES, len(_tensors(model)), int(rng.integers(0, len(_tensors(model))))))


def edit_buffer_index(model, rng) -> None:
    pick(rng, _tensors(model)).buffer = pick(rng, (-1, len(model.buffers), 1 << 20, int(rng.integers(0, len(model.buffers)))))


def edit_buffer_data(model, rng) -> None:
    full = [b for b in model.buffers if b.data is not None and len(b.data)]
    if full:
        buffer = pick(rng, full)
        buffer.data = buffer.data[: int(rng.integers(0, len(buffer.data)))] if rng.integers(0, 2) else np.append(buffer.data, [1, 2, 3])


def edit_options_type(model, rng) -> None:
    op = pick(rng, _ops(model))
    choice = pick(rng, (schema.BuiltinOptions.Conv2DOptions, schema.BuiltinOptions.Pool2DOptions,
                        schema.BuiltinOptions.AddOptions, schema.BuiltinOptions.SoftmaxOptions,
                        schema.BuiltinOptions.ConcatenationOptions, schema.BuiltinOptions.NONE))
    op.builtinOptionsType = choice
    op.builtinOptions = _options_object(choice)


def _options_object(choice: int):
    classes = {schema.BuiltinOptions.Conv2DOptions: schema.Conv2DOptionsT, schema.BuiltinOptions.Pool2DOptions: schema.Pool2DOptionsT,
               schema.BuiltinOptions.AddOptions: schema.AddOptionsT, schema.BuiltinOptions.SoftmaxOptions: schema.SoftmaxOptionsT,
               schema.BuiltinOptions.ConcatenationOptions: schema.ConcatenationOptionsT}
    return classes[choice]() if choice in classes else None


def edit_enum_or_number(model, rng) -> None:
    options = [op.builtinOptions for op in _ops(model) if op.builtinOptions is not None]
    if not options:
        return
    target = pick(rng, options)
    fields = [f for f in ("padding", "fusedActivationFunction", "strideH", "strideW", "filterHeight", "filterWidth",
                          "depthMultiplier", "axis", "beta", "keepDims", "dilationHFactor") if hasattr(target, f)]
    if fields:
        name = pick(rng, fields)
        value = float(pick(rng, (0.0, -1.0, float("nan"), 1e39))) if name == "beta" else int(pick(rng, (0, -1, 2, 3, 7, 100, 1 << 30)))
        setattr(target, name, value)


def edit_custom_opcode(model, rng) -> None:
    code = pick(rng, model.operatorCodes)
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = pick(rng, (b"\xff\xfe\xfd", b"", "MyOp", b"\x00bad"))


def edit_builtin_code(model, rng) -> None:
    code = pick(rng, model.operatorCodes)
    value = int(rng.integers(0, 210))
    code.builtinCode, code.deprecatedBuiltinCode = value, min(value, 127)


def edit_scale(model, rng) -> None:
    quantised = [t for t in _tensors(model) if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale)]
    if quantised:
        quant = pick(rng, quantised).quantization
        quant.scale = np.array(quant.scale, dtype=np.float32)
        quant.scale[int(rng.integers(0, len(quant.scale)))] = pick(rng, SCALES)


def edit_zero_point(model, rng) -> None:
    quantised = [t for t in _tensors(model) if t.quantization is not None and t.quantization.zeroPoint is not None and len(t.quantization.zeroPoint)]
    if quantised:
        quant = pick(rng, quantised).quantization
        quant.zeroPoint = np.array(quant.zeroPoint, dtype=np.int64)
        quant.zeroPoint[int(rng.integers(0, len(quant.zeroPoint)))] = pick(rng, (128, -129, 1 << 40, -(1 << 62), 255, 5))


def edit_channel_count(model, rng) -> None:
    quantised = [t for t in _tensors(model) if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale)]
    if quantised:
        quant = pick(rng, quantised).quantization
        if rng.integers(0, 3) == 0:
            quant.quantizedDimension = pick(rng, (-1, 4, 9, 1))
        else:
            quant.scale = np.append(quant.scale, np.float32(0.5))
            if rng.integers(0, 2):
                quant.zeroPoint = np.append(quant.zeroPoint, 0)


def edit_shape(model, rng) -> None:
    tensor = pick(rng, _tensors(model))
    if tensor.shape is None or not len(tensor.shape) or rng.integers(0, 4) == 0:
        tensor.shape = np.array([int(v) for v in rng.integers(1, 5, size=int(rng.integers(0, 8)))], dtype=np.int32)
    else:
        tensor.shape = np.array(tensor.shape, dtype=np.int32)
        tensor.shape[int(rng.integers(0, len(tensor.shape)))] = pick(rng, DIMS)


def edit_tensor_type(model, rng) -> None:
    pick(rng, _tensors(model)).type = int(rng.integers(0, 18))


def edit_swap_op_tensors(model, rng) -> None:
    a, b = pick(rng, _ops(model)), pick(rng, _ops(model))
    a.inputs, b.inputs = b.inputs, a.inputs


STRUCTURED: tuple[Callable, ...] = (
    edit_opcode_index, edit_op_tensor_index, edit_op_arity, edit_subgraph_index, edit_buffer_index, edit_buffer_data,
    edit_options_type, edit_enum_or_number, edit_custom_opcode, edit_builtin_code, edit_scale, edit_zero_point,
    edit_channel_count, edit_shape, edit_tensor_type, edit_swap_op_tensors,
)


def structured(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    edits = [pick(rng, STRUCTURED) for _ in range(int(rng.integers(1, 3)))]
    for edit in edits:
        edit(model, rng)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), "+".join(e.__name__ for e in edits)


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    roll = rng.random()
    if roll < 0.15:
        return truncate(data, rng), "truncate"
    if roll < 0.35:
        return flip_bytes(data, rng), "flip_bytes"
    return structured(data, rng)


# ---- the fuzz run ----
@dataclass
class FuzzReport:
    mutated: int = 0
    accepted: int = 0
    refused: Counter = field(default_factory=Counter)  # error class -> count, at import
    compiled: list[tuple[str, Graph, object]] = field(default_factory=list)
    compile_refused: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # anything but a Graph or an EngineError


def fuzz(bases: dict[str, bytes], count: int, seed: int) -> FuzzReport:
    rng = np.random.default_rng(seed)
    names = sorted(bases)
    report = FuzzReport()
    number = 0
    while report.mutated < count:
        number += 1
        base = names[number % len(names)]
        try:
            data, how = mutate(bases[base], rng)
        except Exception:  # noqa: BLE001 - the edit could not be packed (a value outside its field): try another
            continue
        report.mutated += 1
        label = f"mutant {number} of {base} ({how})"
        try:
            graph = parse_tflite(data, name=f"fuzz{number}")
        except EngineError as error:
            report.refused[type(error).__name__] += 1
            continue
        except Exception:  # noqa: BLE001
            report.failures.append(f"{label}: import\n{traceback.format_exc(limit=-3)}")
            continue
        report.accepted += 1
        try:
            compiled = compile_graph(graph, prefix=f"fz{number}")
        except EngineError as error:
            report.compile_refused[type(error).__name__] += 1
            continue
        except Exception:  # noqa: BLE001
            report.failures.append(f"{label}: compile\n{traceback.format_exc(limit=-3)}")
            continue
        report.compiled.append((label, graph, (data, compiled)))
    return report


@pytest.fixture(scope="module")
def report() -> FuzzReport:
    bases = {**own_models(), **shared_models()}
    return fuzz(bases, MUTANTS, SEED)


def test_every_mutant_is_a_graph_or_the_engines_error(report):
    print(f"\nfuzz: {report.mutated} mutated, {report.accepted} accepted, refused at import {dict(report.refused)}, "
          f"compiled {len(report.compiled)}, refused at compile {dict(report.compile_refused)}")
    assert report.mutated >= 2000
    assert report.failures == [], f"{len(report.failures)} failures; the first:\n" + "\n".join(report.failures[:3])
    assert sum(report.refused.values()) > report.mutated // 2  # the mutations do reach the checks
    assert report.compiled, "no mutant compiled: the fuzz no longer exercises the compiler"


def test_own_models_are_accepted_unmutated():
    compiled = 0
    for name, data in own_models().items():
        graph = parse_tflite(data, name="base")
        if len(graph.inputs) == len(graph.outputs) == 1:  # what the generated C takes
            compile_graph(graph)
            compiled += 1
    assert compiled >= 15


@needs_gcc
def test_a_sample_of_accepted_mutants_runs_on_the_host_like_tflm(report):
    from engine.hostbuild import build_host_bundle, run_host_bundle
    from engine.oracle import run_tflm

    rng = np.random.default_rng(SEED + 1)
    chosen = sorted(rng.choice(len(report.compiled), size=min(HOST_RUNS, len(report.compiled)), replace=False))
    sample = [report.compiled[i] for i in chosen]
    program = build_host_bundle([compiled.generated for _, _, (_, compiled) in sample])
    inputs = [synth.random_inputs(graph, rng)[0] for _, graph, _ in sample]
    ours = run_host_bundle(program, [(i, graph, x) for i, ((_, graph, _), x) in enumerate(zip(sample, inputs))])
    compared = 0
    for (label, graph, (data, _)), x, out in zip(sample, inputs, ours):
        try:
            expected = run_tflm(data, [x])[0]
        except EngineError:
            raise
        except Exception:  # noqa: BLE001 - TFLM refused the model (its own checks): nothing to compare
            continue
        np.testing.assert_array_equal(out, expected, err_msg=label)
        compared += 1
    print(f"\nfuzz: {len(sample)} accepted mutants run on the host, {compared} compared with TFLM")
    assert compared >= len(sample) // 2
