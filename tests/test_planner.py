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
