"""The optimised per-layer kernels (generate_c(kernels="optimized"), engine/kernels/tl_opt.h) give
TFLM's output bit for bit: on the host for every shared model and for single-op graphs aimed at
each code path (pointwise and windowed convolutions, depthwise strides, kernels and multipliers,
fully connected row blocks, ADD through tables, average pooling, every requantisation mode and
clamp); the
requantisation modes against TFLite's rule over extreme values; and under QEMU on Cortex-M7 and
Cortex-M4, where the SIMD and assembly paths run."""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine import synth
from engine.codegen.generator import generate_c
from engine.codegen.kernel_sets import kernel_scratch
from engine.codegen.requant import RQ_ANY, RQ_EVEN, RQ_EVEN_ZP, RQ_PORTABLE, RQ_SIGNED, rq_params
from engine.compiler import KERNELS_DIR
from engine.export import export_tflite
from engine.hostbuild import HOST_CC, HOST_FLAGS, build_host_program, run_host_program
from engine.ir import Graph
from engine.oracle import run_tflm
from engine.planner import plan_memory
from engine.tflite import load_tflite

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
SHARED_MODELS = sorted(MODELS.glob("*.tflite")) if MODELS.is_dir() else []
needs_models = pytest.mark.skipif(not SHARED_MODELS, reason=f"no reference models in {MODELS}")
needs_gcc = pytest.mark.skipif(shutil.which(HOST_CC) is None, reason=f"{HOST_CC} is not installed")
needs_target = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc and qemu-system-arm are needed",
)


def assert_optimized_matches_tflm(graph: Graph, tflite: bytes, seeds=(0, 1)) -> None:
    plan = plan_memory(graph, kernel_scratch(graph, "optimized"))
    generated = generate_c(graph, plan, "model", kernels="optimized")
    assert "tl_opt.h" in generated.files["model.c"]
    program = build_host_program(generated)
    batches = [synth.random_inputs(graph, np.random.default_rng(seed)) for seed in seeds]
    for inputs, got in zip(batches, run_host_program(program, graph, batches)):
        want = run_tflm(tflite, inputs)[0].reshape(got[0].shape)
        differ = np.flatnonzero(got[0].ravel() != want.ravel())
        assert differ.size == 0, f"{graph.name}: {differ.size} of {want.size} values differ from TFLM, first at {differ[0]}"


# ---- shared models on the host ----
@needs_gcc
@needs_models
@pytest.mark.parametrize("path", SHARED_MODELS, ids=lambda p: p.stem)
def test_shared_model_optimized_matches_tflm(path: Path):
    assert_optimized_matches_tflm(load_tflite(path), path.read_bytes())


# ---- single-op graphs, one per code path ----
def with_effective_scales(graph: Graph, targets: dict[int, float]) -> Graph:
    """The graph with channel c's filter scale set so that input * filter / output = targets[c]
    (forcing a requantisation mode: shift >= 0, a right shift of 1 or 2, or more than 23)."""
    op = graph.ops[0]
    x, w, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    scales = list(w.scale)
    for c, effective in targets.items():
        scales[c] = float(np.float32(effective * y.scale[0] / x.scale[0]))
    tensors = list(graph.tensors)
    tensors[op.inputs[1]] = dataclasses.replace(w, scale=tuple(scales))
    return dataclasses.replace(graph, tensors=tensors)


def single_op_graphs() -> list[tuple[str, Graph]]:
    rng = np.random.default_rng(2025)
    graphs: list[Graph] = []
    # CONV_2D pointwise: odd and even channels and pixels, Co < Ci and Co > Ci, wide and narrow weights,
    # more than 32 groups (the looped product), RELU6 (the clamped store)
    for h, w, ci, co, act in [(7, 5, 8, 16, "RELU"), (3, 3, 5, 7, "RELU6"), (17, 16, 16, 9, "NONE"),
                              (2, 3, 140, 6, "RELU"), (5, 5, 130, 131, "RELU6"), (1, 1, 33, 4, "NONE")]:
        graphs.append(synth.conv2d_model(rng, h, w, ci, co, 1, 1, "SAME", act, per_channel=True))
    # CONV_2D with windows: the first-layer shapes (3 input channels, stride 2), 10x4 over 1 channel,
    # 1x1 stride 2, a VALID 5x5, per-tensor weights
    for h, w, ci, co, k, stride, padding, pc in [(24, 24, 3, 8, 3, 2, "SAME", True), (13, 10, 1, 12, (10, 4), 2, "SAME", True),
                                                  (9, 8, 6, 10, 1, 2, "SAME", True), (11, 9, 4, 5, 5, 1, "VALID", False),
                                                  (17, 17, 3, 16, 3, 1, "SAME", True)]:
        graphs.append(synth.conv2d_model(rng, h, w, ci, co, k, stride, padding, "RELU", per_channel=pc))
    # DEPTHWISE_CONV_2D: kernels 3/5/7 and 10x8, strides 1 and 2, multipliers 1-3, odd widths
    for h, w, c, mult, k, stride, padding in [(9, 9, 8, 1, 3, 1, "SAME"), (10, 7, 5, 1, 3, 2, "SAME"),
                                              (12, 11, 3, 1, 5, 1, "SAME"), (11, 12, 4, 1, 5, 2, "VALID"),
                                              (13, 9, 2, 1, 7, 1, "SAME"), (14, 14, 3, 1, 7, 2, "SAME"),
                                              (20, 12, 1, 8, (10, 8), 2, "SAME"), (6, 5, 3, 2, 3, 1, "VALID"),
                                              (5, 1, 4, 3, 3, 1, "SAME")]:
        graphs.append(synth.depthwise_conv2d_model(rng, h, w, c, mult, k, stride, padding, ("RELU", "RELU6", "NONE")[c % 3],
                                                   per_channel=mult != 2))
    # FULLY_CONNECTED: rows below, at and above a block of 6, depths not a multiple of 4, batches, no bias
    for shape, units, act, pc, bias in [((1, 640), 128, "RELU", False, True), ((1, 37), 13, "NONE", True, True),
                                        ((1, 3), 5, "RELU6", False, True), ((2, 33), 7, "NONE", False, False),
                                        ((1, 4000), 4, "NONE", False, True), ((1, 128), 6, "RELU", True, True)]:
        graphs.append(synth.fully_connected_model(rng, shape, units, act, per_channel=pc, with_bias=bias))
    # ADD through tables (at least 1024 elements), RELU and NONE
    for shape, act in [((1, 16, 16, 8), "RELU"), ((1, 32, 33), "NONE")]:
        add = synth.add_model(rng, shape, shape, act)
        tensors = list(add.tensors)
        other = add.inputs[1]
        tensors[other] = dataclasses.replace(tensors[other], data=rng.integers(-128, 128, size=tensors[other].shape, dtype=np.int8))
        graphs.append(Graph(add.name, tensors, add.ops, [add.inputs[0]], add.outputs))
    # AVERAGE_POOL_2D four channels a step: clipped windows (SAME), strides, a global pool, RELU6
    for h, w, c, f, stride, padding, act in [(9, 7, 8, 3, 2, "SAME", "NONE"), (6, 6, 12, (2, 3), 1, "VALID", "RELU6"),
                                             (25, 5, 64, (25, 5), 1, "VALID", "NONE"), (5, 4, 4, 4, 3, "SAME", "RELU")]:
        graphs.append(synth.pool_model(rng, "AVERAGE_POOL_2D", h, w, c, f, stride, padding, act))
    named = [(f"{i:02d}-{g.name}", g) for i, g in enumerate(graphs)]
    # requantisation modes: a channel with a shift >= 0, one with a right shift of 1, one beyond 23
    for mode, effective in [("portable", 0.8), ("any", 0.3), ("even", 2.0 ** -26)]:
        for kind, base in [("pw", synth.conv2d_model(rng, 6, 6, 12, 10, 1, 1, "SAME", "RELU", per_channel=True)),
                           ("conv", synth.conv2d_model(rng, 8, 7, 3, 6, 3, 2, "SAME", "NONE", per_channel=True)),
                           ("dw", synth.depthwise_conv2d_model(rng, 8, 9, 6, 1, 3, 1, "SAME", "RELU6", per_channel=True)),
                           ("fc", synth.fully_connected_model(rng, (1, 50), 9, "NONE", per_channel=True))]:
            named.append((f"mode-{mode}-{kind}", with_effective_scales(base, {1: effective, 4: effective / 3})))
    return named


SINGLE_OP_GRAPHS = single_op_graphs()


@needs_gcc
@pytest.mark.parametrize("graph", [g for _, g in SINGLE_OP_GRAPHS], ids=[name for name, _ in SINGLE_OP_GRAPHS])
def test_single_op_optimized_matches_tflm(graph: Graph):
    assert_optimized_matches_tflm(graph, export_tflite(graph))


def test_forced_modes_are_the_modes_meant():
    from engine.codegen.requant import requant_mode
    from engine.ops.quant_params import scale_of
    from engine.ops.weighted import channel_multipliers

    expected = {"portable": RQ_PORTABLE, "any": RQ_ANY, "even": RQ_EVEN}
    for name, graph in SINGLE_OP_GRAPHS:
        if name.startswith("mode-"):
            op = graph.ops[0]
            x, w, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
            channels = w.shape[0] if op.kind != "DEPTHWISE_CONV_2D" else w.shape[3]
            mults, shifts = channel_multipliers(scale_of(x, ""), w, scale_of(y, ""), channels, "")
            assert requant_mode(mults, shifts) == expected[name.split("-")[1]], name



def test_a_few_slow_channels_leave_the_rest_of_a_depthwise_layer_fast():
    """A depthwise layer with a few channels that only a slow mode serves (the forced graphs' channels
    1 and 4, as a trained network's dead channels) runs its other channels in TL_RQ_EVEN_ZP: the C
    has the rows loop twice, one literal mode each; layers whose channels share one mode stay whole."""
    from engine.codegen.requant import RQ_BASE, requant_mode, split_modes
    from engine.ops.quant_params import scale_of
    from engine.ops.weighted import channel_multipliers

    assert split_modes([1 << 30] * 3, [-5, -9, -23]) is None  # every channel fast
    assert split_modes([1 << 30] * 3, [1, 0, -1]) is None  # every channel slow: nothing to split
    assert split_modes([1 << 30] * 2, [-5, -30]) is None  # RQ_EVEN serves both
    expected = {"portable": RQ_PORTABLE, "any": RQ_ANY}
    for mode in expected:
        graph = dict(SINGLE_OP_GRAPHS)[f"mode-{mode}-dw"]
        op = graph.ops[0]
        x, w, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
        mults, shifts = channel_multipliers(scale_of(x, ""), w, scale_of(y, ""), w.shape[3], "")
        fast_mode, slow_mode, fast = split_modes(mults, shifts)
        assert (fast_mode & RQ_BASE, slow_mode & RQ_BASE) == (RQ_EVEN_ZP, expected[mode])
        assert not fast[1] and all(fast[c] for c in range(w.shape[3]) if c not in (1, 4))  # channel 4: 1/3 the scale
        assert requant_mode(mults, shifts) & RQ_BASE == expected[mode]  # the layer's common mode is the slow one
        generated = generate_c(graph, plan_memory(graph, kernel_scratch(graph, "optimized")), "model", "optimized")
        source = generated.files["model.c"]
        assert "if (q[3]) {" in source
        assert f"tl_out8(a00, m, h, sh, {fast_mode}," in source and f"tl_out8(a00, m, h, sh, {slow_mode}," in source
        assert "dw:rq-per-channel" in generated.variants[0]

# ---- regression: MCUNet's F746 first layer ----
MCUNET = MODELS.parent / "models-mcunet" / "mcunet-320kb-1mb_imagenet.tflite"


def folded_pad_first_layer(rng: np.random.Generator) -> Graph:
    """MCUNet's first layer in small: an explicit PAD of (1, 1) on height and width, folded into a
    CONV_2D 3x3, stride 2, VALID, RELU6 on 3 channels; 16 output channels, channel 7 with a
    negative weight scale (as in the published model)."""
    b = synth.GraphBuilder("folded-pad-first-layer")
    x = b.activation("input", (1, 22, 22, 3), 0.02, -3)
    paddings = ((0, 0), (1, 1), (1, 1), (0, 0))
    padded = b.activation("padded", (1, 24, 24, 3), 0.02, -3)
    b.op("PAD", (x, b.int32("paddings", [list(p) for p in paddings])), (padded,), paddings=paddings)
    weights = b.weights(rng, "weights", (16, 3, 3, 3), 0, True)
    w = b.tensors[weights]
    w.scale = tuple(-s if c == 7 else s for c, s in enumerate(w.scale))
    bias = b.bias(rng, "bias", 16, 0.02, weights, 3000)
    y = b.activation("output", (1, 11, 11, 16), 6.0 / 255, -128)
    b.op("CONV_2D", (padded, weights, bias), (y,), padding="VALID", stride_h=2, stride_w=2, activation="RELU6")
    return b.graph([x], [y])


@needs_gcc
def test_folded_pad_first_layer_with_a_negative_channel_scale_matches_tflm():
    """MCUNet's F746 model differed from TFLM at its first layer (55 of 123,904 values). The border
    of the folded PAD was right; the fast requantisation modes rounded by the accumulator's sign,
    which is the product's only for multipliers >= 0, and channel 7's weight scale is negative."""
    graph = folded_pad_first_layer(np.random.default_rng(7))
    assert_optimized_matches_tflm(graph, export_tflite(graph), seeds=(0, 1, 2, 3))


@needs_gcc
@pytest.mark.skipif(not MCUNET.is_file(), reason=f"MCUNet's F746 model is not at {MCUNET}")
def test_mcunet_f746_folded_pad_first_layer_matches_tflm():
    graph = load_tflite(MCUNET)
    first = dataclasses.replace(graph, ops=graph.ops[:2], outputs=[graph.ops[1].outputs[0]])
    assert (first.ops[0].kind, first.ops[1].kind) == ("PAD", "CONV_2D")
    assert_optimized_matches_tflm(first, export_tflite(first))


# ---- the requantisation modes against TFLite's rule ----
RQ_HARNESS = r"""
#include <stdio.h>
#include "tl_opt.h"
int main(void)
{
    int32_t c[8];
    while (fread(c, 4, 8, stdin) == 8) {
        int8_t got;
        int32_t want = tl_multiply_by_quantized_multiplier(c[0], c[1], c[6]) + c[5];
        want = want < -128 ? -128 : (want > 127 ? 127 : want);
        switch (c[4]) {
        case 0: got = tl_out8(c[0], c[1], c[2], c[3], 0, c[5], -128, 127); break;
        case 1: got = tl_out8(c[0], c[1], c[2], c[3], 1, c[5], -128, 127); break;
        case 2: got = tl_out8(c[0], c[1], c[2], c[3], 2, c[5], -128, 127); break;
        case 3: got = tl_out8(c[0], c[1], c[2], c[3], 3, c[5], -128, 127); break;
        case 5: got = tl_out8(c[0], c[1], c[2], c[3], 5, c[5], -128, 127); break;
        case 6: got = tl_out8(c[0], c[1], c[2], c[3], 6, c[5], -128, 127); break;
        default: got = tl_out8(c[0], c[1], c[2], c[3], 7, c[5], -128, 127); break;
        }
        putchar(got == (int8_t)want ? '.' : 'x');
    }
    return 0;
}
"""


@needs_gcc
def test_requantisation_modes_equal_tflite_rule(tmp_path: Path):
    (tmp_path / "rq.c").write_text(RQ_HARNESS)
    build = subprocess.run([HOST_CC, *HOST_FLAGS, f"-I{KERNELS_DIR}", "rq.c", "-o", "rq"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    rng = np.random.default_rng(8)
    extremes = [-(2**31), -(2**31) + 1, -(2**30), -1, 0, 1, 2**30, 2**31 - 1]
    ranges = {RQ_EVEN_ZP: range(3, 24), RQ_EVEN: range(3, 32), RQ_ANY: range(1, 32), RQ_PORTABLE: range(-10, 31)}
    ranges.update({mode | RQ_SIGNED: exponents for mode, exponents in ranges.items() if mode != RQ_PORTABLE})
    cases = []
    for mode, exponents in ranges.items():
        for e in exponents:
            shift = -e  # a right shift of e; the portable mode takes left shifts (e < 0) too
            multipliers = [0, 1 << 30, (1 << 31) - 1, *rng.integers(1 << 30, 1 << 31, size=3)]
            if mode & RQ_SIGNED:  # negative weight scales: TFLite's multipliers in [-2^31 + 1, -2^30]
                multipliers += [-(1 << 30), -(1 << 31) + 1, *(-rng.integers(1 << 30, 1 << 31, size=4))]
            for i, m in enumerate(multipliers):
                zp = (-128, 127, int(rng.integers(-128, 128)))[i % 3]
                h, sh = rq_params(int(m), shift, mode, zp)
                accs = extremes + [int(v) for v in rng.integers(-(2**31), 2**31, size=12)]
                # values around the rounding boundaries of this multiplier and shift
                for target in rng.integers(-300, 300, size=6):
                    exact = (int(target) + 0.5) * 2.0 ** (31 + max(-shift, 0) - max(shift, 0)) / (int(m) or 1)
                    accs += [int(np.clip(round(exact) + d, -(2**31), 2**31 - 1)) for d in (-1, 0, 1)]
                for acc in accs:
                    cases.append([acc, int(m), h, sh, mode, zp, shift, 0])
    payload = np.asarray(cases, dtype=np.int64).astype(np.int32).tobytes()
    result = subprocess.run([str(tmp_path / "rq")], input=payload, capture_output=True, check=True)
    verdicts = result.stdout.decode()
    assert len(verdicts) == len(cases)
    wrong = [cases[i] for i, v in enumerate(verdicts) if v != "."]
    assert not wrong, f"{len(wrong)} of {len(cases)} cases differ, first (acc, m, h, sh, mode, zp, shift): {wrong[0][:7]}"


# ---- under QEMU: Cortex-M7 and Cortex-M4 ----
# One op a model, its output the model's: a one-step error in a layer deep inside a network mostly
# vanishes by the output, so each assembly path is checked on its own layer.
def target_single_ops() -> list[tuple[str, Graph]]:
    rng = np.random.default_rng(41)
    pw = synth.conv2d_model
    graphs = [
        ("pw-wide-looped", pw(rng, 8, 8, 136, 9, 1, 1, "SAME", "RELU", per_channel=True)),  # 34 groups: the loop
        ("pw-narrow-relu6", pw(rng, 7, 7, 24, 10, 1, 1, "SAME", "RELU6", per_channel=True)),  # int8 weights, clamp
        ("pw-shift-over-23", with_effective_scales(pw(rng, 6, 6, 16, 8, 1, 1, "SAME", "NONE", per_channel=True),
                                                   {2: 2.0 ** -27})),  # TL_RQ_EVEN
        ("conv-first-layer", pw(rng, 33, 33, 3, 16, 3, 2, "SAME", "RELU", per_channel=True)),  # windows, int16 weights
        ("dw-3x3-s1-relu6", synth.depthwise_conv2d_model(rng, 12, 11, 8, 1, 3, 1, "SAME", "RELU6", per_channel=True)),
        ("dw-5x5-s2", synth.depthwise_conv2d_model(rng, 13, 14, 6, 1, 5, 2, "SAME", "RELU", per_channel=True)),
        ("fc-wide", synth.fully_connected_model(rng, (1, 203), 64, "RELU", per_channel=False)),
        ("fc-narrow", synth.fully_connected_model(rng, (1, 64), 13, "NONE", per_channel=True)),
    ]
    add = synth.add_model(rng, (1, 16, 16, 6), (1, 16, 16, 6), "RELU")
    tensors = list(add.tensors)
    tensors[add.inputs[1]] = dataclasses.replace(tensors[add.inputs[1]],
                                                 data=rng.integers(-128, 128, size=(1, 16, 16, 6), dtype=np.int8))
    graphs.append(("add-tables", Graph(add.name, tensors, add.ops, [add.inputs[0]], add.outputs)))
    return graphs


def requant_probe(rng: np.random.Generator, exponents: range, activation: str) -> Graph:
    """A 1x1 convolution with zero weights: each channel's accumulator is its bias, chosen next to
    a rounding boundary of the channel's multiplier (or at an int32 extreme), so the output checks
    the requantisation of the fused assembly block value by value; channel c's right shift is
    exponents[c % len(exponents)]."""
    from engine.ops.quant_params import scale_of
    from engine.ops.weighted import channel_multipliers

    channels = 3 * len(exponents)
    graph = synth.conv2d_model(rng, 1, 2, 4, channels, 1, 1, "SAME", activation, per_channel=True)
    op = graph.ops[0]
    x, w, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    targets = {c: float(rng.uniform(0.5, 1.0)) * 2.0 ** -exponents[c % len(exponents)] for c in range(channels)}
    graph = with_effective_scales(graph, targets)
    tensors = list(graph.tensors)
    tensors[op.inputs[1]] = dataclasses.replace(tensors[op.inputs[1]], data=np.zeros(w.shape, dtype=np.int8))
    mults, shifts = channel_multipliers(scale_of(x, ""), tensors[op.inputs[1]], scale_of(y, ""), channels, "")
    bias = []
    for c, (m, shift) in enumerate(zip(mults, shifts)):
        if c % 17 == 5:
            bias.append(int(rng.choice([-(2**31), 2**31 - 1, -(2**30), 2**30])))
            continue
        z = int(rng.integers(-140, 140))
        exact = (z + 0.5) * 2.0 ** (31 - shift) / m
        bias.append(int(np.clip(round(exact) + int(rng.integers(-1, 2)), -(2**31), 2**31 - 1)))
    tensors[op.inputs[2]] = dataclasses.replace(tensors[op.inputs[2]], data=np.array(bias, dtype=np.int32))
    return dataclasses.replace(graph, tensors=tensors)


def target_models() -> list[tuple[str, str, object]]:
    """(board, name, a function making the ModelSource)."""
    from hil.experiments.models import ModelSource, resolve_model

    def made(name: str, graph: Graph):
        return lambda: ModelSource(name, export_tflite(graph), _graph=graph)

    cases = []
    for board in ("qemu-f746", "qemu-f412"):
        cases.append((board, "mcunet-tiny", lambda: resolve_model("mcunet-tiny")))
        if (MODELS / "kws_ref_model.tflite").is_file():
            cases.append((board, "kws_ref_model", lambda: resolve_model(str(MODELS / "kws_ref_model.tflite"))))
    singles = target_single_ops()
    rng = np.random.default_rng(43)
    singles += [("requant-even-zp", requant_probe(rng, range(3, 24), "NONE")),
                ("requant-even-zp-relu6", requant_probe(rng, range(3, 24), "RELU6")),
                ("requant-even", requant_probe(rng, range(3, 32), "RELU"))]
    cases += [("qemu-f746", name, made(name, graph)) for name, graph in singles]
    cases += [("qemu-f412", name, made(name, graph)) for name, graph in singles if name in ("pw-wide-looped", "fc-wide", "requant-even")]
    return cases


TARGET_CASES = target_models()


@needs_target
@pytest.mark.parametrize("board_name, name, make", TARGET_CASES, ids=[f"{b}-{n}" for b, n, _ in TARGET_CASES])
def test_optimized_model_matches_tflm_under_qemu(board_name: str, name: str, make):
    from hil.experiments.modelrun import run_model
    from hil.experiments.models import default_input
    from hil.targets.boards import load_board

    source = make()
    assert "tl_opt.h" in generate_c(source.graph, plan_memory(source.graph, kernel_scratch(source.graph))).files["model.c"]
    result = run_model(load_board(board_name), source, default_input(source.graph, seed=4))
    assert result.matches_reference, f"{name} on {board_name}: output differs from TFLM"
    assert result.unit == "instructions" and result.latency > 0
