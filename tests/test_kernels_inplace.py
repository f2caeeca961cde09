"""The kernel variants that write an op's output over its input (engine.overlap): the portable
library variants run in C on the host with truly overlapping buffers against the ordinary kernels
on separate buffers; the generated code of both kernel sets ("portable" and "optimized") runs with
hand-made memory plans that overlap each op's output with its input, and with the planner's own
overlapping plans, against TFLM bit for bit."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine import synth
from engine.codegen.generator import generate_c
from engine.codegen.kernel_sets import kernel_scratch
from engine.compiler import KERNELS_DIR, kernel_sources
from engine.export import export_tflite
from engine.hostbuild import HOST_CC, HOST_FLAGS, build_host_program, run_host_program
from engine.ir import Graph
from engine.memory_plan import MemoryPlan, Placement, check_no_overlap
from engine.oracle import run_tflm
from engine.overlap import OverlapRule, overlap_candidates
from engine.planner import plan_memory
from engine.quant import quantize_multiplier

needs_gcc = pytest.mark.skipif(shutil.which(HOST_CC) is None, reason=f"{HOST_CC} is not installed")
KERNEL_SETS = ("portable", "optimized")

# ---- C level: the library variants with truly overlapping buffers ----
HARNESS = r"""
/* Reads one case from stdin, runs the in-place variant inside one buffer and the ordinary kernel on
 * separate buffers, writes both outputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tl_kernels.h"

static int32_t word(void) { int32_t v; if (fread(&v, 4, 1, stdin) != 1) exit(2); return v; }
static void *bytes(size_t n) { void *p = calloc(n + 16, 1); if (n && fread(p, 1, n, stdin) != n) exit(3); return p; }

int main(void)
{
    const int32_t kind = word();
    if (kind == 0) {  /* depthwise, channel plane */
        int32_t h = word(), w = word(), c = word(), kh = word(), kw = word(), sh = word(), sw = word();
        int32_t pt = word(), pl = word(), oh = word(), ow = word(), in_off = word(), out_off = word();
        int32_t lo = word(), hi = word(), rel = word(), scratch = word();
        int8_t *x = bytes((size_t)(h * w * c)), *f = bytes((size_t)(kh * kw * c));
        int32_t *bias = bytes(4u * c), *mult = bytes(4u * c), *shift = bytes(4u * c);
        size_t span = (size_t)(h * w * c > rel + oh * ow * c ? h * w * c : rel + oh * ow * c);
        int8_t *arena = calloc(span + 64, 1), *sep = calloc((size_t)(oh * ow * c) + 1, 1), *s = calloc((size_t)scratch + 1, 1);
        memcpy(arena, x, (size_t)(h * w * c));
        tl_depthwise_conv_inplace_s8(arena, h, w, c, f, kh, kw, bias, arena + rel, oh, ow, sh, sw, pt, pl,
                                     in_off, out_off, mult, shift, lo, hi, s);
        tl_depthwise_conv_s8(x, 1, h, w, c, f, kh, kw, 1, bias, sep, oh, ow, sh, sw, pt, pl, in_off, out_off,
                             mult, shift, lo, hi);
        fwrite(arena + rel, 1, (size_t)(oh * ow * c), stdout);
        fwrite(sep, 1, (size_t)(oh * ow * c), stdout);
        return 0;
    }
    if (kind == 1) {  /* 1x1 convolution, pixel stream */
        int32_t n = word(), ci = word(), co = word(), in_off = word(), out_off = word(), lo = word(), hi = word();
        int32_t rel = word(), scratch = word();
        int8_t *x = bytes((size_t)(n * ci)), *f = bytes((size_t)(co * ci));
        int32_t *bias = bytes(4u * co), *mult = bytes(4u * co), *shift = bytes(4u * co);
        size_t span = (size_t)(n * ci > rel + n * co ? n * ci : rel + n * co);
        int8_t *arena = calloc(span + 64, 1), *sep = calloc((size_t)(n * co) + 1, 1), *s = calloc((size_t)scratch + 1, 1);
        memcpy(arena, x, (size_t)(n * ci));
        tl_conv_1x1_stream_s8(arena, n, ci, f, bias, arena + rel, co, in_off, out_off, mult, shift, lo, hi, s);
        tl_conv_s8(x, 1, 1, n, ci, f, 1, 1, bias, sep, 1, n, co, 1, 1, 0, 0, in_off, out_off, mult, shift, lo, hi);
        fwrite(arena + rel, 1, (size_t)(n * co), stdout);
        fwrite(sep, 1, (size_t)(n * co), stdout);
        return 0;
    }
    {  /* add, output over input `which` (1 or 2) */
        int32_t n = word(), q[12], which, i;
        int8_t *a, *b, *arena, *sep;
        for (i = 0; i < 12; ++i) q[i] = word();
        which = word();
        a = bytes((size_t)n);
        b = bytes((size_t)n);
        arena = calloc((size_t)n + 1, 1);
        sep = calloc((size_t)n + 1, 1);
        memcpy(arena, which == 1 ? a : b, (size_t)n);
        tl_add_s8(which == 1 ? arena : a, which == 2 ? arena : b, arena, n, q[0], q[1], q[2], q[3], q[4], q[5], q[6],
                  q[7], q[8], q[9], q[10], q[11]);
        tl_add_s8(a, b, sep, n, q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], q[9], q[10], q[11]);
        fwrite(arena, 1, (size_t)n, stdout);
        fwrite(sep, 1, (size_t)n, stdout);
        return 0;
    }
}
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Path:
    if shutil.which(HOST_CC) is None:
        pytest.skip(f"{HOST_CC} is not installed")
    work = tmp_path_factory.mktemp("inplace-harness")
    (work / "harness.c").write_text(HARNESS)
    command = [HOST_CC, *HOST_FLAGS, f"-I{KERNELS_DIR}", "harness.c", *map(str, kernel_sources()), "-o", "harness"]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return work / "harness"


def run_case(harness: Path, header: list[int], *arrays: np.ndarray, out_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    payload = np.asarray(header, dtype=np.int32).tobytes() + b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
    result = subprocess.run([str(harness)], input=payload, capture_output=True, check=True)
    assert len(result.stdout) == 2 * out_bytes
    got = np.frombuffer(result.stdout[:out_bytes], dtype=np.int8)
    want = np.frombuffer(result.stdout[out_bytes:], dtype=np.int8)
    return got, want


def requant(rng: np.random.Generator, channels: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(v)) for v in rng.uniform(2e-4, 3e-2, size=channels)]
    return np.array([m for m, _ in pairs], dtype=np.int32), np.array([s for _, s in pairs], dtype=np.int32)


def out_size(size: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    """(output size, padding before) as TFLite computes them."""
    out = (size + stride - 1) // stride if padding == "SAME" else (size - k) // stride + 1
    return out, max((out - 1) * stride + k - size, 0) // 2


DEPTHWISE_CASES = [
    (h, w, c, k, stride, padding)
    for (h, w, c) in [(9, 7, 5), (6, 11, 3), (12, 12, 16), (5, 5, 1)]
    for k in (3, 5, 7)
    for stride in (1, 2)
    for padding in ("SAME", "VALID")
    if padding == "SAME" or (h >= k and w >= k)
]


@needs_gcc
@pytest.mark.parametrize("h, w, c, k, stride, padding", DEPTHWISE_CASES)
def test_channel_plane_depthwise_in_place_equals_separate_buffers(harness, h, w, c, k, stride, padding):
    rng = np.random.default_rng(h * 1000 + w * 100 + c * 10 + k + stride)
    oh, pt = out_size(h, k, stride, padding)
    ow, pl = out_size(w, k, stride, padding)
    x = rng.integers(-128, 128, size=h * w * c, dtype=np.int8)
    f = rng.integers(-127, 128, size=k * k * c, dtype=np.int8)
    bias = rng.integers(-3000, 3000, size=c, dtype=np.int32)
    mult, shift = requant(rng, c)
    header = [0, h, w, c, k, k, stride, stride, pt, pl, oh, ow, int(rng.integers(-127, 129)), int(rng.integers(-128, 128)),
              -128, 127, 0, oh * ow]
    got, want = run_case(harness, header, x, f, bias, mult, shift, out_bytes=oh * ow * c)
    assert np.array_equal(got, want)


POINTWISE_CASES = [(n, ci, co) for n in (1, 7, 12) for ci, co in [(8, 8), (16, 5), (5, 16), (3, 17), (17, 3), (32, 64)]]


@needs_gcc
@pytest.mark.parametrize("n, ci, co", POINTWISE_CASES)
def test_pixel_stream_pointwise_in_place_equals_separate_buffers(harness, n, ci, co):
    rng = np.random.default_rng(n * 10000 + ci * 100 + co)
    x = rng.integers(-128, 128, size=n * ci, dtype=np.int8)
    f = rng.integers(-127, 128, size=co * ci, dtype=np.int8)
    bias = rng.integers(-3000, 3000, size=co, dtype=np.int32)
    mult, shift = requant(rng, co)
    header = [1, n, ci, co, int(rng.integers(-127, 129)), int(rng.integers(-128, 128)), -128, 127, 0, ci]
    got, want = run_case(harness, header, x, f, bias, mult, shift, out_bytes=n * co)
    assert np.array_equal(got, want)


@needs_gcc
@pytest.mark.parametrize("n, which", [(1, 1), (37, 1), (37, 2), (1000, 2)])
def test_elementwise_add_in_place_equals_separate_buffers(harness, n, which):
    rng = np.random.default_rng(n + which)
    m1, s1 = quantize_multiplier(0.5)
    m2, s2 = quantize_multiplier(0.37)
    mo, so = quantize_multiplier(0.02 / (1 << 20) / 0.013)
    header = [2, n, 7, m1, s1, -3, m2, s2, 20, 5, mo, so, -128, 127, which]
    a = rng.integers(-128, 128, size=n, dtype=np.int8)
    b = rng.integers(-128, 128, size=n, dtype=np.int8)
    got, want = run_case(harness, header, a, b, out_bytes=n)
    assert np.array_equal(got, want)


# ---- generated code with overlapping plans ----
def single_op_plan(graph: Graph, rule: OverlapRule) -> MemoryPlan:
    """A hand-made plan for a one-op graph: the output at the input's offset plus the rule's
    relative offset, the rule's scratch after both, as the planner places an accepted overlap."""
    (x,), (y,) = graph.inputs, graph.outputs
    sizes = {t: graph.tensors[t].nbytes for t in (x, y)}
    base = max(0, -rule.relative_offset)
    end = max(base + sizes[x], base + rule.relative_offset + sizes[y])
    scratch = rule.scratch_bytes
    start = -(-end // 16) * 16
    placements = {x: Placement(x, base, sizes[x], 0, 0), y: Placement(y, base + rule.relative_offset, sizes[y], 0, 1)}
    return MemoryPlan(
        arena_bytes=start + scratch, placements=placements, scratch_offsets={0: start} if scratch else {},
        scratch_sizes={0: scratch} if scratch else {}, steps=(), alignment=16, alias_of={}, overlaps={0: rule},
    )


def assert_generated_matches_tflm(graph: Graph, plan: MemoryPlan, kernels: str, seeds=(0, 1)) -> None:
    check_no_overlap(plan)
    program = build_host_program(generate_c(graph, plan, "model", kernels=kernels))
    batches = [synth.random_inputs(graph, np.random.default_rng(seed)) for seed in seeds]
    outputs = run_host_program(program, graph, batches)
    tflite = export_tflite(graph)
    for inputs, got in zip(batches, outputs):
        want = run_tflm(tflite, inputs)[0].reshape(got[0].shape)
        assert np.array_equal(got[0], want), f"{graph.name} ({kernels}): {np.count_nonzero(got[0] != want)} values differ"


def depthwise_graphs() -> list[Graph]:
    rng = np.random.default_rng(77)
    graphs = []
    for (h, w, c), k, stride in [((9, 7, 5), 3, 1), ((9, 7, 5), 3, 2), ((10, 6, 3), 5, 1), ((8, 9, 4), 5, 2),
                                 ((11, 11, 7), 7, 1), ((11, 10, 2), 7, 2), ((6, 6, 16), 3, 1), ((1, 9, 3), 3, 2),
                                 ((70, 70, 1), 3, 1)]:  # a plane too large for the optimised kernel: the library's
        padding = "VALID" if (h, w) == (8, 9) else "SAME"
        graphs.append(synth.depthwise_conv2d_model(rng, h, w, c, 1, k, stride, padding, ("RELU", "NONE", "RELU6")[k % 3],
                                                   per_channel=c != 4))
    return graphs


def pointwise_graphs() -> list[Graph]:
    rng = np.random.default_rng(78)
    return [synth.conv2d_model(rng, h, w, ci, co, 1, 1, "SAME", act, per_channel=True)
            for (h, w, ci, co, act) in [(5, 7, 8, 8, "RELU"), (3, 5, 16, 5, "NONE"), (5, 3, 5, 16, "RELU6"),
                                        (4, 4, 3, 17, "RELU"), (3, 3, 17, 3, "NONE"), (1, 1, 6, 9, "RELU"),
                                        (6, 6, 32, 64, "RELU")]]


@needs_gcc
@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("index", range(9))
def test_generated_depthwise_over_its_input(kernels, index):
    graph = depthwise_graphs()[index]
    (rule,) = overlap_candidates(graph)[0]
    assert rule.kind == "channel-plane"
    assert_generated_matches_tflm(graph, single_op_plan(graph, rule), kernels)


@needs_gcc
@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("index", range(7))
def test_generated_pointwise_over_its_input(kernels, index):
    graph = pointwise_graphs()[index]
    (rule,) = overlap_candidates(graph)[0]
    assert rule.kind == "pixel-stream"
    assert_generated_matches_tflm(graph, single_op_plan(graph, rule), kernels)


def residual_graph(rng: np.random.Generator, h: int, w: int, c: int) -> Graph:
    """x -> 1x1 conv -> y; z = ADD(x, y): both ADD inputs are activations that die at the ADD."""
    b = synth.GraphBuilder(f"residual-{h}x{w}x{c}")
    x = b.activation("x", (1, h, w, c), 0.05, 3)
    wt = b.weights(rng, "w", (c, 1, 1, c), 0, True)
    bias = b.bias(rng, "b", c, 0.05, wt, 300)
    y = b.activation("y", (1, h, w, c), 0.04, -7)
    b.op("CONV_2D", (x, wt, bias), (y,), padding="SAME", stride_h=1, stride_w=1, activation="NONE")
    z = b.activation("z", (1, h, w, c), 0.06, 2)
    b.op("ADD", (x, y), (z,), activation="RELU")
    return b.graph([x], [z])


@needs_gcc
@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("shape, over", [((3, 5, 7), 0), ((3, 5, 7), 1), ((16, 16, 8), 0), ((16, 16, 8), 1)])
def test_generated_add_over_either_input(kernels, shape, over):
    """The ADD's output takes the bytes of input `over` (x or y); shapes below and above the size
    at which the optimised ADD switches to tables."""
    graph = residual_graph(np.random.default_rng(5), *shape)
    x, y, z = graph.inputs[0], graph.ops[0].outputs[0], graph.outputs[0]
    rule = next(r for r in overlap_candidates(graph)[1] if r.input == (x, y)[over])
    size = graph.tensors[x].nbytes
    scratch = kernel_scratch(graph, kernels)[0]
    slot = -(-size // 16) * 16
    offsets = {x: 0, y: slot, z: (0, slot)[over]}
    lifetimes = {x: (0, 1), y: (0, 1), z: (1, 2)}
    placements = {t: Placement(t, offsets[t], size, *lifetimes[t]) for t in (x, y, z)}
    plan = MemoryPlan(arena_bytes=2 * slot + scratch, placements=placements,
                      scratch_offsets={0: 2 * slot} if scratch else {}, scratch_sizes={0: scratch} if scratch else {},
                      steps=(), alignment=16, alias_of={}, overlaps={1: rule})
    assert_generated_matches_tflm(graph, plan, kernels)


def mobilenet_chain(rng: np.random.Generator) -> Graph:
    """in -> dw 3x3 -> 1x1 widen -> dw 3x3 stride 2 -> 1x1 narrow -> dw 5x5 -> 1x1: every op can
    overlap its input, in both pixel-stream orders."""
    b = synth.GraphBuilder("dw-pw-chain")
    shape, scale = (1, 12, 10, 6), 0.05
    x = t = b.activation("x", shape, scale, -3)
    for i, (kind, k, stride, out_c) in enumerate([("dw", 3, 1, 6), ("pw", 1, 1, 14), ("dw", 3, 2, 14), ("pw", 1, 1, 5),
                                                  ("dw", 5, 1, 5), ("pw", 1, 1, 7)]):
        _, h, w, c = shape
        if kind == "dw":
            wt = b.weights(rng, f"w{i}", (1, k, k, c), 3, True, base_scale=0.02)
            terms = k * k
        else:
            wt = b.weights(rng, f"w{i}", (out_c, 1, 1, c), 0, True)
            terms = c
        std = synth._accumulator_std(scale, synth._mean_scale(b, wt), terms)
        bias = b.bias(rng, f"b{i}", out_c, scale, wt, std / (scale * synth._mean_scale(b, wt)))
        out_scale, out_zp = synth._output_quant(rng, std, "RELU")
        shape = (1, -(-h // stride), -(-w // stride), out_c)
        y = b.activation(f"y{i}", shape, out_scale, out_zp)
        attrs = dict(padding="SAME", stride_h=stride, stride_w=stride, activation="RELU")
        if kind == "dw":
            b.op("DEPTHWISE_CONV_2D", (t, wt, bias), (y,), depth_multiplier=1, **attrs)
        else:
            b.op("CONV_2D", (t, wt, bias), (y,), **attrs)
        t, scale = y, out_scale
    return b.graph([x], [t])


@needs_gcc
@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_planner_overlaps_run_bit_exact(kernels):
    """The planner's own overlapping plan (overlap=True) for a depthwise/pointwise chain."""
    graph = mobilenet_chain(np.random.default_rng(11))
    plan = plan_memory(graph, kernel_scratch(graph, kernels), overlap=True)
    assert plan.overlaps, "the planner chose no overlap"
    assert {r.kind for r in plan.overlaps.values()} == {"channel-plane", "pixel-stream"}
    assert_generated_matches_tflm(graph, plan, kernels)
