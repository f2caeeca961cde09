"""`tinylab bench`: run several models on a board and store every figure."""
from __future__ import annotations

import argparse
import json

from hil.cycles.coremodel import CycleModelError
from hil.cycles.estimated import add_cycle_model_argument, describe_estimate
from hil.firmware_build.flash import add_flash_budget_argument
from hil.firmware_build.patching import add_patch_arguments, describe_choice
from hil.experiments.compare import compare
from hil.experiments.modelrun import engine_provenance, run_model
from hil.experiments.models import DEFAULT_MODEL, default_input, resolve_model
from hil.experiments.tflm_columns import format_tflm_column, tflm_column_entries, tflm_columns
from hil.firmware_build.tflm_baseline_library import TFLM_DIR_ENV
from hil.store.option import add_store_argument
from hil.store.results import open_store
from hil.targets.boards import load_board

SUMMARY = "benchmark models on a board (default: the project's own model) and store every figure"
EXAMPLES = """\
  tinylab bench                                  # the default model on qemu-f746
  tinylab bench ../shared/models/*.tflite --board qemu-f412
  tinylab bench ../shared/models/*.tflite --cycle-model auto   # also estimated cycles (hil.cycles)
  tinylab bench --compare ../shared/models/vww_96_int8.tflite   # against portable kernels and TFLM's arena
  tinylab bench --tflm-dir ~/tflm-m7     # also TFLM on the target, from a TFLM library built for the core
  tinylab bench --compare --tflm-dir REF --tflm-dir CMSIS ../shared/models/*.tflite   # both TFLM columns
  tinylab bench --compare --patches auto ../shared/models/*.tflite   # whole tensors, patches and TFLM
  tinylab bench --compare --patches auto --sram 160K ../shared/models-mcunet/mcunet-320kb-1mb_imagenet.tflite
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", default=[DEFAULT_MODEL],
                        help=f".tflite files or built-in models (default: {DEFAULT_MODEL})")
    parser.add_argument("--board", default="qemu-f746", help="board name or file (default: qemu-f746)")
    parser.add_argument("--optimize", help="gcc -O level without the dash (default: the board's)")
    add_flash_budget_argument(parser)
    add_patch_arguments(parser)
    add_cycle_model_argument(parser)
    parser.add_argument("--compare", action="store_true",
                        help="also run our portable kernels and measure TFLM's arena in the same run, and print the ratios")
    add_tflm_dir_argument(parser)
    add_store_argument(parser)


def add_tflm_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tflm-dir", action="append", metavar="DIR",
                        help="a TFLM library (headers and libtensorflow-microlite.a, for instance from `tinylab tflm "
                        "build`): also measure TFLM on the target. Repeatable: a reference and a CMSIS-NN build fill "
                        "both TFLM columns, and each board takes the first built for its core "
                        f"(default: ${TFLM_DIR_ENV}, several separated by ':')")


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if args.compare:
        if args.cycle_model:
            raise CycleModelError("--cycle-model goes with a plain bench, not --compare (run them one after the other)")
        return run_comparison(args, board)
    columns = tflm_columns(board, args.tflm_dir)
    summaries, tflm = [], []
    with open_store(args.store) as store:
        provenance = None
        for spec in args.models:
            source = resolve_model(spec)
            if not args.json:
                print(f"{source.name}: building and running on {board.name} ...", flush=True)
            result = run_model(board, source, default_input(source.graph), optimize=args.optimize,
                               flash_budget=args.flash_budget, patches=args.patches, sram_budget=args.sram,
                               cycle_model=args.cycle_model)
            provenance = provenance or engine_provenance(board, result.backend)
            store.add(result.measurements(provenance))
            summaries.append(result.summary())
            entries, rows = tflm_column_entries(board, source, default_input(source.graph), columns, optimize=args.optimize)
            store.add(rows)
            tflm.extend(entries)
        stored_in = str(store.path)
    if args.json:
        print(json.dumps({"runs": summaries, "tflm": tflm, "store": stored_in}, indent=2))
    else:
        header = f"{'model':<32} {'latency':>16} {'unit':<12} {'peak SRAM':>10} {'arena':>9} {'flash':>9}  matches TFLM"
        print(header)
        for s in summaries:
            print(f"{s['model']:<32} {s['latency']:>16,.0f} {s['latency_unit']:<12} {s['peak_sram_bytes']:>10,} "
                  f"{s['arena_planned_bytes']:>9,} {s['flash_bytes']:>9,}  {'yes' if s['matches_reference'] else 'NO'}")
        for s in summaries:
            if "estimated_cycles" in s:
                print(f"  {s['model']}: {describe_estimate(s['estimated_cycles_detail'])}")
        print_patch_choices(summaries)
        print("TFLM on the target, same harness:\n" + format_tflm_column(tflm, summaries))
        print(f"figures stored in {stored_in}")
    return 0 if all(s["matches_reference"] for s in summaries + [t for t in tflm if "reason" not in t]) else 1


def run_comparison(args: argparse.Namespace, board) -> int:
    columns = tflm_columns(board, args.tflm_dir)
    summaries, tflm = [], []
    with open_store(args.store) as store:
        for spec in args.models:
            source = resolve_model(spec)
            if not args.json:
                print(f"{source.name}: optimised and portable builds on {board.name}, TFLM arena on this host ...", flush=True)
            comparison = compare(board, source, default_input(source.graph), flash_budget=args.flash_budget,
                                 patches=args.patches, sram_budget=args.sram)
            store.add(comparison.measurements(board))
            summaries.append(comparison.summary())
            entries, rows = tflm_column_entries(board, source, default_input(source.graph), columns)
            store.add(rows)
            tflm.extend(entries)
        stored_in = str(store.path)
    if args.json:
        print(json.dumps({"comparisons": summaries, "tflm": tflm, "store": stored_in}, indent=2))
    else:
        print_comparison(summaries)
        print_patch_choices(summaries)
        print_patch_table(summaries)
        print("TFLM on the target, same harness:\n" + format_tflm_column(tflm, summaries))
        print(f"figures stored in {stored_in}")
    return 0 if all(s["matches_reference"] for s in summaries + [t for t in tflm if "reason" not in t]) else 1


def print_patch_choices(summaries: list[dict]) -> None:
    """One line per model whose build chose or was given a patch plan: the plan and why."""
    for s in summaries:
        p = s.get("patches", {"grid": "off"})
        if "reason" in p:
            print(f"patches {s['model']}: {describe_choice(p)}")


def print_patch_table(summaries: list[dict]) -> None:
    """Whole tensors, the patch plan and TFLM side by side, for the models a comparison ran by
    patches: peak SRAM, latency, flash, all from the same run."""
    rows = [s for s in summaries if "patched_latency" in s]
    if not rows:
        return
    unit = rows[0]["latency_unit"]

    def whole(s: dict, key: str, text: str = "{:,.0f}") -> str:
        return text.format(s[key]) if key in s else "no fit"

    print(f"{'patches':<30} {'plan':>8}  {'peak SRAM':>9} {'patched':>9} {'ratio':>6} {'stage':>6} {'TFLM':>9}  {'latency':>13} "
          f"{'patched':>13} {'extra':>7} {'halo':>6}  {'flash':>9} {'patched':>9}  bit-exact")
    print(f"{'':<30} {'':>8}  {'whole, B':>9} {'B':>9} {'':>6} {'act.':>6} {'arena, B':>9}  {'whole, ' + unit[:5]:>13} "
          f"{unit:>13} {'':>7} {'MACs':>6}  {'whole, B':>9} {'B':>9}")
    for s in rows:
        p = s["patches"]
        extra = f"{s['patched_latency_vs_whole'] - 1:+.1%}" if "patched_latency_vs_whole" in s else "-"
        stage = f"{s['stage_activation_shrink']:.1f}x" if s.get("stage_activation_shrink") else "-"
        print(f"{s['model']:<30} {p['grid']:>8}  {whole(s, 'peak_sram_bytes'):>9} {s['patched_peak_sram_bytes']:>9,} "
              f"{whole(s, 'patched_sram_vs_whole', '{:.2f}'):>6} {stage:>6} {s['tflm_arena_bytes']:>9,}  {whole(s, 'latency'):>13} "
              f"{s['patched_latency']:>13,.0f} {extra:>7} "
              f"{p['extra_compute']:>+6.1%}  {whole(s, 'flash_bytes'):>9} {s['patched_flash_bytes']:>9,}  "
              f"{'yes' if s['patched_matches_reference'] else 'NO'}")
    print("stage act. = how many times fewer bytes of the patched stage's activations are live at once with patches "
          "(the most at one step, the input left out)")
    for s in rows:
        if s.get("whole_refused"):
            print(f"  {s['model']}, whole tensors: {s['whole_refused']}")


def print_comparison(summaries: list[dict]) -> None:
    unit = summaries[0]["latency_unit"] if summaries else ""
    print(f"{'model':<30} {'ours':>13} {'portable':>13} {'ratio':>6}  {'SRAM':>8} {'TFLM arena':>10} {'ratio':>6} "
          f"{'TFLM act.':>9} {'ratio':>6}  {'arena':>8} {'bound':>8}  {'flash':>9} {'portable':>9}  bit-exact")
    print(f"{'':<30} {unit:>13} {unit:>13} {'':>6}  {'bytes':>8} {'bytes':>10} {'':>6} {'bytes':>9} {'':>6}  "
          f"{'':>8} {'':>8}  {'bytes':>9} {'bytes':>9}")
    for s in summaries:
        if "latency" not in s:
            print(f"{s['model']:<30} whole tensors do not fit {s['board']}; patches only (below)")
            continue
        print(f"{s['model']:<30} {s['latency']:>13,.0f} {s['latency_portable']:>13,.0f} {s['latency_ratio']:>6.2f}  "
              f"{s['engine_sram_bytes']:>8,} {s['tflm_arena_bytes']:>10,} {s['sram_vs_tflm_arena']:>6.2f} "
              f"{s['tflm_activation_bytes']:>9,} {s['sram_vs_tflm_activations']:>6.2f}  "
              f"{s['arena_bytes']:>8,} {s['arena_lower_bound_bytes']:>8,}  {s['flash_bytes']:>9,} "
              f"{s['flash_portable_bytes']:>9,}  {'yes' if s['matches_reference'] else 'NO'}")
    print("SRAM = the model's peak SRAM (arena, its own statics, the stack high-water mark measured on the target; "
          "the lab's buffers apart); TFLM act. = the activation "
          "part of TFLM's arena (its head), TFLM arena = head + bookkeeping.")
