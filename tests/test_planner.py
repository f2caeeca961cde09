"""The memory planner: no two live buffers share bytes, the peak is at least the lower bound,
RESHAPE is free, scratch lives only during its op."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.ir import Graph, Op, Tensor
from engine.planner import check_no_overlap, plan_memory
from engine.tflite import load_tflite

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def activation(name: str, shape: tuple[int, ...]) -> Tensor:
    return Tensor(name, shape, "int8", (0.1,), (0,))


def chain_graph() -> Graph:
    """in(100) -> A(400) -> B(50) -> reshape -> C(200) -> out(10), with a skip from A to C."""
    tensors = [activation(n, (s,)) for n, s in [("in", 100), ("a", 400), ("b", 50), ("b2", 50), ("c", 200), ("out", 10)]]
    ops = [
        Op("FULLY_CONNECTED", (0,), (1,), index=0),
        Op("FULLY_CONNECTED", (1,), (2,), index=1),
        Op("RESHAPE", (2,), (3,), index=2),
        Op("ADD", (3, 1), (4,), index=3),
        Op("FULLY_CONNECTED", (4,), (5,), index=4),
    ]
    return Graph("chain", tensors, ops, [0], [5])


def test_plan_of_a_small_graph():
    graph = chain_graph()
    plan = plan_memory(graph, scratch_bytes={1: 64}, alignment=16)
    check_no_overlap(plan)
    assert plan.offset(3) == plan.offset(2)  # RESHAPE shares its input's bytes
    assert plan.scratch_sizes == {1: 64}
    # step 3 (ADD) has b/b2 (64 aligned), a (400) and c (208 aligned) live
    assert plan.steps[3].tensor_bytes == 64 + 400 + 208
    assert plan.lower_bound == max(s.live_bytes for s in plan.steps)
    assert plan.lower_bound <= plan.arena_bytes


def test_overlap_check_can_fail():
    plan = plan_memory(chain_graph())
    bad = dict(plan.placements)
    a, c = bad[1], bad[4]
    bad[4] = type(c)(c.tensor, a.offset, c.size, c.first_step, c.last_step)
    with pytest.raises(AssertionError, match="overlap"):
        check_no_overlap(type(plan)(**{**plan.__dict__, "placements": bad}))


def test_random_graphs_never_overlap():
    rng = np.random.default_rng(1)
    for trial in range(40):
        n = int(rng.integers(3, 25))
        tensors = [activation(f"t{i}", (int(rng.integers(1, 3000)),)) for i in range(n + 1)]
        ops = []
        for i in range(n):
            sources = {i} | {int(s) for s in rng.integers(0, i + 1, size=int(rng.integers(0, 3)))}
            ops.append(Op("ADD" if len(sources) > 1 else "FULLY_CONNECTED", tuple(sorted(sources)), (i + 1,), index=i))
        graph = Graph(f"random{trial}", tensors, ops, [0], [n])
        scratch = {i: int(rng.integers(0, 500)) for i in range(n)}
        plan = plan_memory(graph, scratch)
        check_no_overlap(plan)
        assert plan.lower_bound <= plan.arena_bytes


@pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason=f"shared models not found at {SHARED_MODELS}")
@pytest.mark.parametrize("path", sorted(SHARED_MODELS.glob("*.tflite")) if SHARED_MODELS.is_dir() else [], ids=lambda p: p.stem)
def test_plans_of_the_shared_models(path):
    graph = load_tflite(path)
    plan = plan_memory(graph)
    check_no_overlap(plan)
    largest_pair = max(
        sum(graph.tensors[t].nbytes for t in (*op.inputs, *op.outputs) if t >= 0 and graph.tensors[t].data is None)
        for op in graph.ops
        if op.kind != "RESHAPE"
    )
    assert plan.arena_bytes >= largest_pair
    assert plan.lower_bound <= plan.arena_bytes


def test_search_beats_greedy_by_size_on_a_crafted_graph():
    """Sizes chosen so that largest-first leaves a hole: a (0-1), b (1-2) large; c small long-lived."""
    tensors = [activation(n, (s,)) for n, s in [("in", 16), ("a", 1024), ("b", 1024), ("c", 512), ("d", 1536), ("out", 16)]]
    ops = [
        Op("FULLY_CONNECTED", (0,), (1,), index=0),
        Op("FULLY_CONNECTED", (1,), (2,), index=1),
        Op("FULLY_CONNECTED", (2,), (3,), index=2),
        Op("FULLY_CONNECTED", (3,), (4,), index=3),
        Op("ADD", (4, 3), (5,), index=4),
    ]
    graph = Graph("crafted", tensors, ops, [0], [5])
    greedy = plan_memory(graph, search="greedy-by-size")
    searched = plan_memory(graph)
    check_no_overlap(greedy)
    check_no_overlap(searched)
    assert searched.arena_bytes <= greedy.arena_bytes
    assert searched.arena_bytes == searched.lower_bound


def pointwise_chain() -> Graph:
    """in 8x8x8 -> depthwise 3x3 -> 1x1 conv to 16 ch -> depthwise -> 1x1 conv to 8 ch."""
    def const(name, shape, dtype="int8"):
        return Tensor(name, shape, dtype, (0.1,), (0,), data=np.zeros(shape, dtype=np.int8 if dtype == "int8" else np.int32))

    tensors = [
        activation("x", (1, 8, 8, 8)), const("dw1", (1, 3, 3, 8)), const("b1", (8,), "int32"), activation("y1", (1, 8, 8, 8)),
        const("pw1", (16, 1, 1, 8)), const("b2", (16,), "int32"), activation("y2", (1, 8, 8, 16)),
        const("dw2", (1, 3, 3, 16)), const("b3", (16,), "int32"), activation("y3", (1, 8, 8, 16)),
        const("pw2", (8, 1, 1, 16)), const("b4", (8,), "int32"), activation("y4", (1, 8, 8, 8)),
    ]
    window = {"padding": "SAME", "stride_h": 1, "stride_w": 1, "activation": "RELU"}
    ops = [
        Op("DEPTHWISE_CONV_2D", (0, 1, 2), (3,), {**window, "depth_multiplier": 1}, 0),
        Op("CONV_2D", (3, 4, 5), (6,), window, 1),
        Op("DEPTHWISE_CONV_2D", (6, 7, 8), (9,), {**window, "depth_multiplier": 1}, 2),
        Op("CONV_2D", (9, 10, 11), (12,), window, 3),
    ]
    return Graph("pointwise-chain", tensors, ops, [0], [12])


def test_overlaps_shrink_a_mobilenet_chain_to_the_largest_tensor_plus_scratch():
    graph = pointwise_chain()
    without = plan_memory(graph)
    plan = plan_memory(graph, overlap=True)
    check_no_overlap(plan)
    assert set(plan.overlaps) == {0, 1, 2, 3}
    assert all(plan.offset(r.output) == plan.offset(r.input) + r.relative_offset for r in plan.overlaps.values())
    assert without.arena_bytes == 1024 + 1024  # y2 and y3 (8x8x16 each) side by side
    # the largest tensor (1024) plus the largest scratch (the depthwise kernel's channel plane)
    assert plan.arena_bytes == plan.lower_bound == 1024 + max(plan.scratch_sizes.values())
    assert max(plan.scratch_sizes.values()) < 1024


def test_no_overlap_when_the_input_is_still_needed():
    graph = pointwise_chain()
    graph.ops.append(Op("ADD", (12, 0), (13,), {"activation": "NONE"}, 4))  # x is read again at the end
    graph.tensors.append(activation("z", (1, 8, 8, 8)))
    graph.outputs = [13]
    plan = plan_memory(graph, overlap=True)
    check_no_overlap(plan)
    assert 0 not in plan.overlaps  # the depthwise may not overwrite x
