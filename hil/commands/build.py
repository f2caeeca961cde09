"""`tinylab build`: a model's firmware ELF for a board, for other tools to flash, boot or drive."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from hil.destinations import add_output_argument, write_output
from hil.firmware_build.firmware import Firmware
from hil.firmware_build.flash import add_flash_budget_argument
from hil.errors import LabError
from hil.experiments.modelrun import build_model_firmware
from hil.experiments.mlperf_ids import KNOWN_MODEL_IDS, MLPERF_MODELS, infer_model_id, input_wire_for
from hil.experiments.models import DEFAULT_MODEL, ModelSource, resolve_model
from hil.targets.boards import load_board
from hil.targets.boardspec import BoardSpec

SUMMARY = "build a model's firmware ELF for a board (the MLPerf Tiny line protocol on its UART)"
EXAMPLES = """\
  tinylab build ../shared/models/kws_ref_model.tflite --board nucleo-f746zg -o kws.elf
  tinylab build mcunet-tiny --board qemu-f746 -o tiny.elf --model-id ic01 --json
"""


def add_model_id_argument(parser: argparse.ArgumentParser) -> None:
    known = ", ".join(f"{name} is {mid}" for name, mid in KNOWN_MODEL_IDS.items())
    parser.add_argument("--model-id", metavar="NAME",
                        help="the model name the firmware reports (profile%%: m-model-[NAME]); the MLPerf Tiny "
                        f"runner picks its test by it. {', '.join(MLPERF_MODELS)} also convert the input as MLPerf "
                        "Tiny's reference does (vww01/ic01: uint8 minus 128; ad01: float32 quantised on the device, "
                        f"and one anomaly score). Default: the reference models' ids ({known}), else the model's name")


def model_id_for(source: ModelSource, model_id: str | None) -> str:
    """The id the firmware reports: `model_id`, else the reference model's MLPerf Tiny id, else
    the model's name."""
    name = model_id or infer_model_id(source.name) or source.name
    if not name or any(c.isspace() or c in "%[]\"\\" for c in name):
        raise LabError(f"model id {name!r}: use a name without spaces, quotes, brackets or '%'")
    return name


def build_model(board: BoardSpec, source: ModelSource, model_id: str | None = None,
                optimize: str | None = None, flash_budget: int | None = None) -> Firmware:
    """The model's firmware for the board, its workload named by model_id_for, its input converted
    as that id says (hil.experiments.mlperf_ids)."""
    name = model_id_for(source, model_id)
    return build_model_firmware(board, source, optimize, flash_budget=flash_budget, name=name,
                                input_wire=input_wire_for(name, source.graph)).firmware


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                        help=f"a .tflite file or a built-in model (default: {DEFAULT_MODEL})")
    parser.add_argument("--board", default="qemu-f746", help="board name or file (default: qemu-f746)")
    add_output_argument(parser, "-o", "--output", required=True, help="where to write the ELF")
    parser.add_argument("--optimize", help="gcc -O level without the dash (default: the board's)")
    add_flash_budget_argument(parser)
    add_model_id_argument(parser)


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    source = resolve_model(args.model)
    firmware = build_model(board, source, args.model_id, args.optimize, args.flash_budget)
    out: Path = args.output
    write_output(out, lambda path: shutil.copyfile(firmware.elf, path), "the ELF")
    size = firmware.size
    summary = {
        "model": source.name, "model_sha256": source.sha256, "board": board.name, "elf": str(out),
        "optimize": firmware.optimize, "text_bytes": size.text, "data_bytes": size.data, "bss_bytes": size.bss,
        "flash_bytes": size.flash, "static_ram_bytes": size.static_ram, "input_staged": firmware.input_staged,
        "model_id": model_id_for(source, args.model_id), "input_conversion": firmware.input_wire.kind,
        "anomaly_score": firmware.input_wire.anomaly_score,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{out}: {source.name} for {board.name} (-{firmware.optimize})")
        print(f"  text {size.text:,} B  data {size.data:,} B  bss {size.bss:,} B")
        print(f"  flash {size.flash:,} B of {board.flash_bytes:,}; static RAM {size.static_ram:,} B of {board.sram_bytes:,}")
    return 0
