"""engine.codegen + engine/kernels: generated C, built for the host with gcc, gives TFLM's output bit
for bit (real models, layer by layer, and synthetic single-op graphs of every op kind); it compiles
warning-free for Cortex-M7 and Cortex-M4; two models link into one program."""
from __future__ import annotations

import dataclasses
import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.codegen.generator import generate_c
from engine.codegen.kernel_sets import kernel_scratch
from engine.errors import UnsupportedOpError
from engine.hostbuild import (
    HOST_CC,
    HOST_FLAGS,
    KERNELS_DIR,
    HostBuildError,
    build_host_program,
    generate_for_host,
    kernel_sources,
    run_generated_on_host,
    run_generated_on_host_many,
)
from engine.ir import Graph
from engine.ops import OP_KINDS
from engine.oracle import interpreter, run_tflm
from engine.planner import plan_memory
from engine.tflite import load_tflite

from engine import synth
from engine.export import export_tflite

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
SHARED_MODELS = sorted(MODELS.glob("*.tflite")) if MODELS.is_dir() else []
needs_models = pytest.mark.skipif(not SHARED_MODELS, reason=f"no reference models in {MODELS}")
needs_gcc = pytest.mark.skipif(shutil.which(HOST_CC) is None, reason=f"{HOST_CC} is not installed")
needs_arm_gcc = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed")

ARM_TARGETS = {
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"],
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
}
WARNINGS = ["-O2", "-Wall", "-Wextra", "-Werror"]


def random_inputs(graph: Graph, seed: int) -> list[np.ndarray]:
    return synth.random_inputs(graph, np.random.default_rng(seed))


def assert_same_as_tflm(graph: Graph, model: bytes, seeds=(0, 1, 2)) -> None:
    batches = [random_inputs(graph, seed) for seed in seeds]
    outputs = run_generated_on_host_many(graph, batches)
    for seed, inputs, got in zip(seeds, batches, outputs):
        expected = run_tflm(model, inputs)[0]
        expected = expected.reshape(got[0].shape)
        assert got[0].dtype == expected.dtype, graph.name
        differ = np.flatnonzero(expected.ravel() != got[0].ravel())
        assert differ.size == 0, (
            f"{graph.name}, seed {seed}: {differ.size} of {expected.size} values differ from TFLM, first at "
            f"{differ[0]}: {got[0].ravel()[differ[0]]} instead of {expected.ravel()[differ[0]]}"
        )


def tflm_intermediates(model: bytes, inputs: list[np.ndarray], tensors: list[int]) -> dict[int, np.ndarray]:
    tflm = interpreter(model, preserve_all_tensors=True)
    for index, value in enumerate(inputs):
        tflm.set_input(np.ascontiguousarray(value), index)
    tflm.invoke()
    values = {}
    for t in tensors:
        raw = tflm.GetTensor(t, 0)
        values[t] = np.asarray(raw["tensor_data"] if isinstance(raw, dict) else raw)
    return values


def truncated(graph: Graph, last_op: int) -> Graph:
    """The graph up to and including op `last_op`, whose output becomes the graph output."""
    return Graph(graph.name, graph.tensors, graph.ops[: last_op + 1], graph.inputs, [graph.ops[last_op].outputs[0]])


def single_input(graph: Graph, keep: int = 0, seed: int = 5) -> Graph:
    """The graph with every input but one turned into a constant of random int8 values."""
    rng = np.random.default_rng(seed)
    tensors = list(graph.tensors)
    for position, index in enumerate(graph.inputs):
        if position != keep:
            t = tensors[index]
            tensors[index] = dataclasses.replace(t, data=rng.integers(-128, 128, size=t.shape, dtype=np.int8))
    return Graph(graph.name, tensors, graph.ops, [graph.inputs[keep]], graph.outputs)


# ---- real models ----
@needs_gcc
@needs_models
@pytest.mark.parametrize("path", SHARED_MODELS, ids=lambda p: p.stem)
def test_real_model_matches_tflm(path: Path):
    graph = load_tflite(path)
    assert_same_as_tflm(graph, path.read_bytes())


@needs_gcc
@needs_models
@pytest.mark.parametrize("name", ["kws_ref_model", "micro_speech_quantized", "ad01_int8", "pretrainedResnet_large_int8", "vww_96_int8"])
def test_real_model_every_layer_matches_tflm(name: str):
    path = MODELS / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    graph = load_tflite(path)
    model = path.read_bytes()
    inputs = random_inputs(graph, 11)
    expected = tflm_intermediates(model, inputs, [op.outputs[0] for op in graph.ops])
    for position, op in enumerate(graph.ops):
        out = op.outputs[0]
        got = run_generated_on_host(truncated(graph, position), inputs)[0]
        want = expected[out].reshape(got.shape)
        assert np.array_equal(got, want), f"{name}: op {op.index} ({op.kind}) differs from TFLM"


# ---- synthetic graphs, every op kind ----
def synth_graphs() -> list[tuple[str, Graph]]:
    if synth is None:
        return []
    rng = np.random.default_rng(2024)
    acts = ("NONE", "RELU", "RELU6")
    graphs: list[Graph] = []
    # CONV_2D: kernels 1..7 (square and not), strides 1 and 2, SAME/VALID, odd channels, non-square input
    for k, stride, padding in itertools.product(range(1, 8), (1, 2), ("SAME", "VALID")):
        kernel = k if k % 2 else (k, k + 1)
        graphs.append(synth.conv2d_model(rng, 9, 7, 3, 5, kernel, stride if k != 4 else (stride, 1), padding,
                                         acts[k % 3], per_channel=k % 2 == 1))
    # DEPTHWISE_CONV_2D: depth multipliers 1..3
    for k, stride, multiplier in itertools.product((1, 3, 5, 7), (1, 2), (1, 2, 3)):
        graphs.append(synth.depthwise_conv2d_model(rng, 8, 11, 5, multiplier, k, stride, ("SAME", "VALID")[k % 2 == 1 and stride == 1],
                                                   acts[(k + multiplier) % 3], per_channel=multiplier != 2))
    graphs += [
        synth.fully_connected_model(rng, (1, 17), 9, "NONE", per_channel=False),
        synth.fully_connected_model(rng, (3, 17), 5, "RELU", per_channel=True),
        synth.fully_connected_model(rng, (1, 3, 4, 5), 7, "RELU6", per_channel=False, with_bias=False),
    ]
    for a, b, act in [((1, 5, 6, 7), (1, 5, 6, 7), "NONE"), ((1, 5, 6, 7), (1, 1, 1, 7), "RELU"),
                      ((1, 5, 1, 7), (1, 1, 6, 1), "RELU6"), ((3, 7), (7,), "NONE")]:
        add = synth.add_model(rng, a, b, act)
        graphs += [single_input(add, 0), single_input(add, 1)]
    for kind, f, stride, padding in itertools.product(("AVERAGE_POOL_2D", "MAX_POOL_2D"), (2, 3, (5, 3)), (1, 2), ("SAME", "VALID")):
        graphs.append(synth.pool_model(rng, kind, 9, 7, 5, f, stride, padding, acts[stride]))
    for shape, axes, keep, same in [((1, 5, 7, 9), (1, 2), True, False), ((1, 5, 7, 9), (2, 1), False, True),
                                    ((1, 5, 7, 9), (-1,), False, False), ((2, 5, 7, 9), (0, 2), True, False),
                                    ((4, 9), (1,), False, True), ((1, 300, 9), (1,), True, False)]:
        graphs.append(synth.mean_model(rng, shape, axes, keep, same))
    graphs += [
        synth.pad_model(rng, (1, 5, 7, 3), ((0, 0), (1, 2), (2, 1), (0, 0))),
        synth.pad_model(rng, (4, 6), ((1, 2), (3, 0))),
        synth.reshape_model(rng, (1, 4, 5, 6), (1, 120)),
    ]
    for shape, scale, beta in [((1, 10), 0.1, 1.0), ((3, 17), 0.02, 1.0), ((2, 5, 7), 0.25, 0.5),
                               ((1, 1001), 0.07, 1.0), ((1, 4), 1.5, 2.0)]:
        graphs.append(synth.softmax_model(rng, shape, scale, beta))
    for shapes, axis in [([(1, 4, 5, 3), (1, 4, 5, 6)], 3), ([(1, 2, 5, 3), (1, 4, 5, 3), (1, 1, 5, 3)], 1), ([(2, 3), (2, 5)], -1)]:
        graphs.append(single_input(synth.concatenation_model(rng, shapes, axis, True), len(shapes) - 1))
    graphs += [synth.quantize_model(rng, (1, 5, 7, 3)), synth.dequantize_model(rng, (2, 9))]
    graphs += [synth.requantize_model(rng, (1, 3, 5, 7), ratio) for ratio in (0.3, 1.0, 7.0)]
    graphs += [synth.chain_model(rng), synth.chain_model(rng, 15, 9, 5, 7)]
    return [(f"{i:02d}-{g.name}", g) for i, g in enumerate(graphs)]


SYNTH_GRAPHS = synth_graphs()


def test_synth_graphs_cover_every_op_kind():
    kinds = {op.kind for _, g in SYNTH_GRAPHS for op in g.ops}
    assert kinds == set(OP_KINDS)


@needs_gcc
@pytest.mark.parametrize("graph", [g for _, g in SYNTH_GRAPHS], ids=[name for name, _ in SYNTH_GRAPHS])
def test_synth_graph_matches_tflm(graph: Graph):
    assert_same_as_tflm(graph, export_tflite(graph))


@needs_gcc
def test_quantize_rounds_like_tflm_at_halves():
    """TFLM divides in float32 and rounds halves away from zero; values at k + 1/2 steps catch a
    division in double or round-half-even."""
    rng = np.random.default_rng(3)
    graph = synth.quantize_model(rng, (1, 2000))
    scale = np.float32(graph.tensors[graph.outputs[0]].scale[0])
    steps = rng.integers(-140, 140, size=2000)
    x = ((steps + 0.5) * np.float64(scale)).astype(np.float32).reshape(1, 2000)
    got = run_generated_on_host(graph, [x])[0]
    assert np.array_equal(got, run_tflm(export_tflite(graph), [x])[0])


# ---- what the generated code looks like ----
def test_generated_files_and_figures():
    graph = synth.chain_model(np.random.default_rng(0))
    plan = plan_memory(graph, kernel_scratch(graph))
    generated = generate_c(graph, plan, prefix="net", wide_budget=0)
    assert set(generated.files) == {"net.c", "net.h"}
    header, source = generated.files["net.h"], generated.files["net.c"]
    for line in ("#define NET_INPUT_BYTES  1440", "#define NET_OUTPUT_BYTES 20", f"#define NET_ARENA_BYTES  {plan.arena_bytes}",
                 "extern uint8_t net_arena[NET_ARENA_BYTES];", "void *net_input(void);",
                 "const void *net_output(void);", "void net_invoke(void);"):
        assert line in header
    assert "uint8_t net_arena[NET_ARENA_BYTES] __attribute__((aligned(16)));" in source
    assert generated.arena_bytes == plan.arena_bytes
    assert (generated.input_bytes, generated.output_bytes) == (1440, 20)
    weighted = [op for op in graph.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    weights = sum(graph.tensors[t].nbytes for op in weighted for t in op.inputs[1:3] if t >= 0)
    assert weights < generated.weight_bytes < weights + 200  # + per-channel multipliers and shifts
    assert generated.widened_bytes == 0
    widened = generate_c(graph, plan, prefix="net")  # int16 copies of weights wherever they can go
    assert widened.widened_bytes > 0
    assert widened.weight_bytes - widened.widened_bytes == generated.weight_bytes
    for op in graph.ops:
        assert f"/* op {op.index} ({op.kind}): " in source
    assert "RESHAPE): in 1x1x1x16 int8, out 1x16 int8; in place, no code */" in source
    assert "static const int8_t net_t" in source and "memmove" not in source
    assert "float" in source  # QUANTIZE and DEQUANTIZE


@needs_models
def test_int8_graph_generates_no_float():
    path = MODELS / "kws_ref_model.tflite"
    generated = generate_for_host(load_tflite(path), prefix="kws")
    code = generated.files["kws.c"].replace("integer only, no float", "")
    assert "float" not in code and "double" not in code


def test_kernel_scratch():
    graph = synth.chain_model(np.random.default_rng(0))
    scratch = kernel_scratch(graph)
    assert set(scratch) == set(range(len(graph.ops)))
    for position, op in enumerate(graph.ops):
        if op.kind == "AVERAGE_POOL_2D":
            assert scratch[position] == 4 * graph.tensors[op.inputs[0]].shape[-1]
        elif op.kind == "MEAN":
            assert scratch[position] == 4 * graph.tensors[op.outputs[0]].elements
        else:
            assert scratch[position] == 0


def test_refuses_more_than_one_input():
    graph = synth.add_model(np.random.default_rng(0), (1, 4), (1, 4), "NONE")
    with pytest.raises(UnsupportedOpError, match="exactly one input and one output; this graph has 2 inputs"):
        generate_c(graph, plan_memory(graph, kernel_scratch(graph)))


def test_refuses_a_bad_prefix():
    graph = synth.reshape_model(np.random.default_rng(0), (1, 4), (4,))
    with pytest.raises(ValueError, match="not a C identifier"):
        generate_c(graph, plan_memory(graph), prefix="2bad-name")


@needs_gcc
def test_compile_failure_shows_the_compiler_output():
    graph = synth.reshape_model(np.random.default_rng(0), (1, 4), (4,))
    generated = generate_for_host(graph)
    broken = dataclasses.replace(generated, files={**generated.files, "model.c": generated.files["model.c"] + "\nint broken(void) { return }\n"})
    with pytest.raises(HostBuildError, match=r"did not compile(.|\n)*error"):
        build_host_program(broken)


# ---- other compilers, several models in one program ----
@needs_gcc
def test_kernels_compile_warning_free_on_the_host(tmp_path: Path):
    result = subprocess.run([HOST_CC, "-std=c99", *WARNINGS, "-pedantic", "-c", *map(str, kernel_sources())],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@needs_arm_gcc
@pytest.mark.parametrize("target", sorted(ARM_TARGETS))
def test_generated_code_compiles_for_cortex_m(target: str, tmp_path: Path):
    graphs = [("chain", synth.chain_model(np.random.default_rng(0)))]
    if (MODELS / "kws_ref_model.tflite").is_file():
        graphs.append(("kws", load_tflite(MODELS / "kws_ref_model.tflite")))
    sources = [str(p) for p in kernel_sources()]
    for prefix, graph in graphs:
        for name, text in generate_for_host(graph, prefix=prefix).files.items():
            (tmp_path / name).write_text(text)
        sources.append(f"{prefix}.c")
    command = ["arm-none-eabi-gcc", "-std=c99", *ARM_TARGETS[target], *WARNINGS, f"-I{KERNELS_DIR}", "-c", *sources]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@needs_gcc
def test_two_models_link_into_one_program(tmp_path: Path):
    rng = np.random.default_rng(9)
    first = synth.chain_model(rng)
    second = synth.conv2d_model(rng, 6, 5, 3, 4, 3, 1, "SAME", "RELU", True)
    for prefix, graph in (("first", first), ("second", second)):
        for name, text in generate_for_host(graph, prefix=prefix).files.items():
            (tmp_path / name).write_text(text)
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "first.h"\n#include "second.h"\n'
        "int main(void)\n{\n"
        "    if (fread(first_input(), 1, FIRST_INPUT_BYTES, stdin) != FIRST_INPUT_BYTES) return 2;\n"
        "    if (fread(second_input(), 1, SECOND_INPUT_BYTES, stdin) != SECOND_INPUT_BYTES) return 2;\n"
        "    first_invoke();\n    second_invoke();\n"
        "    fwrite(first_output(), 1, FIRST_OUTPUT_BYTES, stdout);\n"
        "    fwrite(second_output(), 1, SECOND_OUTPUT_BYTES, stdout);\n    return 0;\n}\n"
    )
    command = [HOST_CC, *HOST_FLAGS, f"-I{KERNELS_DIR}", "main.c", "first.c", "second.c",
               *map(str, kernel_sources()), "-o", "both"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    x1, x2 = random_inputs(first, 1)[0], random_inputs(second, 2)[0]
    run = subprocess.run([str(tmp_path / "both")], input=x1.tobytes() + x2.tobytes(), capture_output=True, check=True)
    want1 = run_tflm(export_tflite(first), [x1])[0]
    want2 = run_tflm(export_tflite(second), [x2])[0]
    assert run.stdout == want1.tobytes() + want2.tobytes()
