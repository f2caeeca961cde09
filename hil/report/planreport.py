"""A compiled model's memory plan as rows and figures, for printing and for JSON."""
from __future__ import annotations

from engine.compiler import CompiledModel


def plan_summary(compiled: CompiledModel) -> dict[str, int]:
    return {
        "arena_bytes": compiled.plan.arena_bytes,
        "lower_bound_bytes": compiled.plan.lower_bound,
        "overlapped_ops": len(compiled.plan.overlaps),
        "placement_order": compiled.plan.search,
        "weights_bytes": compiled.generated.weight_bytes,
        "input_bytes": compiled.generated.input_bytes,
        "output_bytes": compiled.generated.output_bytes,
    }


def plan_rows(compiled: CompiledModel) -> list[dict[str, object]]:
    return [
        {
            "step": s.step,
            "op": s.op_kind,
            "op_index": s.op_index,
            "live_tensors": list(s.live_tensors),
            "tensor_bytes": s.tensor_bytes,
            "scratch_bytes": s.scratch_bytes,
            "live_bytes": s.live_bytes,
            "overlap": compiled.plan.overlaps[s.step].kind if s.step in compiled.plan.overlaps else "",
        }
        for s in compiled.plan.steps
    ]
