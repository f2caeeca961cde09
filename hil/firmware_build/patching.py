"""`--patches auto|off|PxQ@N` and `--sram BYTES` for the commands that build a model: the patch
plan (engine.patches) the build uses, chosen for the board and the budget, with the reason."""
from __future__ import annotations

import argparse

from engine.fold import fold_pad
from engine.ir import Graph
from engine.patches.choose import PatchChoice, choose_patches, parse_patches, screened_arena
from engine.patches.regions import graph_macs
from engine.patches.rewrite import PatchGrid, patch_graph
from hil.sizes import byte_count
from hil.targets.boardspec import BoardSpec

# Peak SRAM is the arena plus the model's statics and the stack high-water (measured on the
# target); a --sram budget leaves this much of it for those two when choosing the plan. The run
# then reports the measured peak against the budget.
STATICS_AND_STACK_ALLOWANCE = 1024


def patches_argument(text: str) -> str | PatchGrid:
    try:
        return parse_patches(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_patch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--patches", type=patches_argument, default="auto", metavar="auto|off|PxQ@N",
                        help="run the first N ops patch by patch on a P x Q grid (MCUNetV2); auto: choose the plan "
                        "(patches when they lower the arena by 10%% or more for at most 15%% more compute, estimated from "
                        "the halo MACs and the number of patches, or when the "
                        "model does not fit the board, or the --sram budget, otherwise); default: auto")
    parser.add_argument("--sram", type=byte_count, metavar="BYTES",
                        help="peak SRAM budget of the model (arena, its statics and stack; 160K, 1M): with --patches "
                        "auto, the plan with the least extra compute that fits it")


def describe_choice(choice: dict) -> str:
    """A patch plan as the commands print it, from PatchChoice.to_json: the plan, why, and its cost."""
    cost = "" if choice["grid"] == "off" else (f"; halo {choice['extra_compute']:.1%} more MACs, estimated "
                                               f"{choice['estimated_extra']:.1%} more compute with the patches' fixed cost")
    return f"{choice['grid']} ({choice['reason']}{cost})"


def resolve_patches(board: BoardSpec, graph: Graph, kernels: str, patches: str | PatchGrid,
                    sram_budget: int | None = None) -> PatchChoice | None:
    """The plan a build uses: None for whole tensors asked for ("off"), else the choice and why."""
    if patches == "off":
        return None
    folded = fold_pad(graph)
    if isinstance(patches, PatchGrid):
        patched = patch_graph(folded, patches)
        return PatchChoice(patches, screened_arena(patched.graph, kernels), screened_arena(folded, kernels),
                           patched.halo_macs, graph_macs(folded), 1, "asked for", patched.patch_ops)
    budget = None if sram_budget is None else sram_budget - STATICS_AND_STACK_ALLOWANCE
    return choose_patches(folded, kernels, budget=budget, room=board.sram_bytes - board.min_stack_bytes, board=board.name)
