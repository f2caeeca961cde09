"""`tinylab run`: build a model for a board, run it, and compare its output with TFLite Micro's."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hil.cycles.estimated import add_cycle_model_argument, describe_estimate
from hil.destinations import add_output_argument, write_output
from hil.firmware_build.flash import add_flash_budget_argument
from hil.firmware_build.patching import add_patch_arguments, describe_choice
from hil.commands.single_run import store_and_show
from hil.experiments.modelrun import run_model
from hil.experiments.models import DEFAULT_MODEL, default_input, load_input, resolve_model
from hil.store.option import add_store_argument
from hil.targets.boards import load_board

SUMMARY = "run a model on a board (QEMU for emulated boards): latency, memory, flash, and bit-exactness with TFLM"
EXAMPLES = """\
  tinylab run ../shared/models/vww_96_int8.tflite --board qemu-f746 --json
  tinylab run mcunet-tiny --board qemu-f412 --input x.npy --output y.npy
  tinylab run mcunet-tiny --board qemu-f746 --cycle-model auto --json   # instructions and estimated cycles
  tinylab run ../shared/models/pretrainedResnet_large_int8.tflite --patches 2x2@4   # the first 4 ops by 2x2 patches
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                        help=f"a .tflite file or a built-in model (default: {DEFAULT_MODEL})")
    parser.add_argument("--board", default="qemu-f746", help="board name or file (default: qemu-f746)")
    parser.add_argument("--input", type=Path, help=".npy input (default: deterministic pseudo-random data)")
    add_output_argument(parser, "--output", help="write the board's output here as .npy (after the figures are stored)")
    parser.add_argument("--optimize", help="gcc -O level without the dash (default: the board's)")
    add_flash_budget_argument(parser)
    add_patch_arguments(parser)
    add_cycle_model_argument(parser)
    parser.add_argument("--no-store", action="store_true", help="do not write the figures to the results store")
    add_store_argument(parser)


def print_run(summary: dict[str, object]) -> None:
    print(f"{summary['model']} on {summary['board']} ({summary['backend']})")
    print(f"  latency          {summary['latency']:,.0f} {summary['latency_unit']} per inference")
    if "estimated_cycles" in summary:
        print(f"  estimated        {describe_estimate(summary['estimated_cycles_detail'])}")
    print(f"  peak SRAM        {summary['peak_sram_bytes']:,} B (arena and model statics {summary['model_static_bytes']:,} + "
          f"stack {summary['stack_high_water_bytes']:,})")
    staging = "with a staging copy of the input" if summary["input_staged"] else "input loaded in place, no staging copy"
    print(f"  lab overhead     {summary['lab_overhead_bytes']:,} B of static RAM besides the model's ({staging})")
    print(f"  arena            {summary['arena_touched_bytes']:,} B touched of {summary['arena_planned_bytes']:,} B "
          f"planned (lower bound {summary['arena_lower_bound_bytes']:,})")
    print(f"  flash            {summary['flash_bytes']:,} B of a {summary['flash_budget_bytes']:,} B budget (weights "
          f"{summary['flash_weights_bytes']:,}, widened weights {summary['flash_widened_weights_bytes']:,}, "
          f"code {summary['flash_code_bytes']:,}, lab {summary['flash_lab_bytes']:,})")
    print(f"  matches TFLM     {'yes' if summary['matches_reference'] else 'NO'}")
    patches = summary.get("patches", {"grid": "off"})
    if "reason" in patches:
        print(f"  patches          {describe_choice(patches)}")


def save_npy(path: Path, value: np.ndarray) -> None:
    """`value` as .npy at exactly `path` (numpy.save would add .npy to another name)."""
    with open(path, "wb") as stream:
        np.save(stream, value)


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    source = resolve_model(args.model)
    value = load_input(args.input, source.graph) if args.input else default_input(source.graph)
    result = run_model(board, source, value, optimize=args.optimize, flash_budget=args.flash_budget,
                       patches=args.patches, sram_budget=args.sram, cycle_model=args.cycle_model)

    def write_files() -> None:
        if args.output:
            write_output(args.output, lambda path: save_npy(path, result.output), "the board's output")

    store_and_show(args, board, result, print_run, write_files)
    return 0 if result.matches_reference else 1
