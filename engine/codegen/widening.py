"""Which layers of the optimised kernels store their weights as int16 ("wide"): twice the flash of
int8 weights, fewer instructions than widening them in the loop. The op families whose optimised
kernels can take int16 weights say what that costs and saves (CForm.wide_weights,
engine.ops.spec); the layers are taken best gain per byte first, within a flash budget. The
patches of one layer (engine.patches) share their weights, so they go int16 together, for the
flash of one copy."""
from __future__ import annotations

from dataclasses import dataclass

from engine.errors import UnsupportedOpError
from engine.ir import Graph
from engine.ops import OPS


@dataclass(frozen=True)
class WideningCandidate:
    """A layer whose weights the optimised kernels can store as int16 (at `positions`: more than
    one for the patches of a layer): what it costs in flash and what it is estimated to save."""

    positions: tuple[int, ...]
    extra_bytes: int  # flash beyond the int8 words
    saved_instructions: float

    @property
    def gain_per_byte(self) -> float:
        return self.saved_instructions / max(self.extra_bytes, 1)


def widening_candidates(graph: Graph) -> list[WideningCandidate]:
    """The layers of the optimised kernels that can take int16 weights, best gain per byte first."""
    layers: dict[tuple, WideningCandidate] = {}
    for position, op in enumerate(graph.ops):
        spec = OPS.get(op.kind)
        if spec is None or spec.c.wide_weights is None:
            continue
        try:
            cost = spec.c.wide_weights(graph, op)
        except (KeyError, ValueError, IndexError, UnsupportedOpError):
            continue
        if cost is None:
            continue
        key = (op.index, op.kind) if "shared" in op.attrs else (position,)
        if key in layers:  # another patch of the layer: the same weights, more instructions saved
            seen = layers[key]
            layers[key] = WideningCandidate((*seen.positions, position), seen.extra_bytes, seen.saved_instructions + cost[1])
        else:
            layers[key] = WideningCandidate((position,), *cost)
    return sorted(layers.values(), key=lambda c: (-c.gain_per_byte, c.positions))


def choose_wide(graph: Graph, budget: int | None = None) -> set[int]:
    """Positions of the layers whose weights go int16: best gain per byte first, while their extra
    flash stays within `budget` bytes (None: every candidate)."""
    return {p for c in widened_layers(graph, budget) for p in c.positions}


def widened_layers(graph: Graph, budget: int | None) -> list[WideningCandidate]:
    """The candidates choose_wide takes, in its order."""
    chosen, spent = [], 0
    for candidate in widening_candidates(graph):
        if budget is None or spent + candidate.extra_bytes <= budget:
            chosen.append(candidate)
            spent += candidate.extra_bytes
    return chosen
