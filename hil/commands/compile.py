"""`tinylab compile`: a model to C sources and its memory plan."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from engine.compiler import KERNELS_DIR, kernel_sources
from hil.destinations import add_output_argument
from hil.firmware_build.flash import add_flash_budget_argument
from hil.firmware_build.patching import add_patch_arguments, describe_choice
from hil.experiments.modelrun import build_model_firmware
from hil.experiments.models import DEFAULT_MODEL, resolve_model
from hil.report.planreport import plan_rows, plan_summary
from hil.targets.boards import load_board

SUMMARY = "compile a model into C sources (model.c, model.h, kernels) and print its memory plan"
EXAMPLES = """\
  tinylab compile ../shared/models/kws_ref_model.tflite -o build/kws
  tinylab compile mcunet-tiny -o build/tiny --board qemu-f412 --json
  tinylab compile ../shared/models/ad01_int8.tflite -o build/ad01 --flash-budget 320K
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                        help=f"a .tflite file or a built-in model (default: {DEFAULT_MODEL})")
    add_output_argument(parser, "-o", "--output", folder=True, required=True, help="directory for the C sources")
    parser.add_argument("--board", default="qemu-f746",
                        help="the board whose SRAM and flash the model must fit (default: qemu-f746); its firmware is "
                        "built to measure flash by component")
    add_flash_budget_argument(parser)
    add_patch_arguments(parser)


def run(args: argparse.Namespace) -> int:
    source = resolve_model(args.model)
    built = build_model_firmware(load_board(args.board), source, flash_budget=args.flash_budget, patches=args.patches,
                                 sram_budget=args.sram)
    compiled = built.compiled
    out: Path = args.output
    (out / "kernels").mkdir(parents=True, exist_ok=True)
    for name, text in compiled.generated.files.items():
        (out / name).write_text(text)
    for path in [*kernel_sources(), *sorted(KERNELS_DIR.glob("*.h"))]:
        shutil.copy2(path, out / "kernels" / path.name)
    summary = {"model": source.name, "model_sha256": source.sha256, "board": built.firmware.board.name,
               **plan_summary(compiled), **built.flash.to_json(), "output": str(out),
               "patches": built.patches.to_json() if built.patches else {"grid": "off"}}
    names = {index: tensor.name for index, tensor in enumerate(compiled.graph.tensors)}
    arena_top = compiled.plan.top_of_arena().lines(names)  # what holds the arena's top where it is
    summary["arena_top"] = arena_top
    rows = plan_rows(compiled)
    (out / "plan.json").write_text(json.dumps({**summary, "layers": rows}, indent=2) + "\n")
    if args.json:
        print(json.dumps({**summary, "layers": rows}, indent=2))
        return 0
    print(f"{source.name}: {len(compiled.graph.ops)} ops -> {out}/")
    print(f"{'step':>4}  {'op':<18} {'model op':>8}  {'live tensors':>12}  {'scratch':>8}  {'live bytes':>10}  output over input")
    for row in rows:
        print(f"{row['step']:>4}  {row['op']:<18} {row['op_index']:>8}  {row['tensor_bytes']:>12,}  "
              f"{row['scratch_bytes']:>8,}  {row['live_bytes']:>10,}  {row['overlap']}")
    gap = summary["arena_bytes"] - summary["lower_bound_bytes"]
    print(f"arena {summary['arena_bytes']:,} B; lower bound {summary['lower_bound_bytes']:,} B "
          f"(the most bytes live at one step; the arena is {gap:,} B above it); "
          f"{summary['overlapped_ops']} ops write over their input")
    if gap:
        print("\n".join(arena_top))
    print(f"on {summary['board']}: {built.flash.describe()}")
    if built.patches:
        print(f"patches {describe_choice(summary['patches'])}")
    return 0
