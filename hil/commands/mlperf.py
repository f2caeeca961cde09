"""`tinylab mlperf`: MLPerf Tiny's performance mode, and its accuracy mode over a folder of inputs."""
from __future__ import annotations

import argparse
from pathlib import Path

from hil.commands.single_run import store_and_show
from hil.commands.build import add_model_id_argument, model_id_for
from hil.experiments.mlperf import DEFAULT_WARMUP, WINDOW_S, WINDOWS, run_mlperf
from hil.experiments.models import DEFAULT_MODEL, resolve_model
from hil.store.option import add_store_argument
from hil.targets.boards import load_board

SUMMARY = "MLPerf Tiny performance (median of 'infer N W' windows) and accuracy (top-1 or AUC) on a board"
EXAMPLES = """\
  tinylab mlperf ../shared/models/kws_ref_model.tflite --board qemu-f746 --inputs kws_inputs/
  tinylab mlperf mcunet-tiny --board nucleo-f746zg --json

  The input folder holds .npy or .bin files, in the model's input type (or float, quantised with
  the input's scale and zero point). Labels come from labels.csv (file,label rows), MLPerf Tiny's
  y_labels.csv (file,classes,class), or else the file name: 'normal'/'anomaly' between underscores
  (normal_0003.npy), or the last '_' word as the class index (tst_000012_Stop_7.bin is class 7).
  A classifier is scored by top-1, an anomaly detector (autoencoder, or one output) by ROC AUC.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                        help=f"a .tflite file or a built-in model (default: {DEFAULT_MODEL})")
    parser.add_argument("--board", default="qemu-f746", help="board name or file (default: qemu-f746)")
    parser.add_argument("--inputs", type=Path,
                        help="folder of labelled inputs for the accuracy pass (the first one is also the "
                        "performance input); without it, performance only, on pseudo-random data")
    parser.add_argument("--windows", type=int, default=WINDOWS, help=f"timed windows (default: {WINDOWS})")
    parser.add_argument("--window-s", type=float,
                        help=f"shortest window, in seconds of the board's clock (default: {WINDOW_S:g}, as MLPerf "
                        "Tiny asks; under QEMU, seconds of virtual time, 1 us = 1000 instructions, which take "
                        "several times longer to run)")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP,
                        help=f"warm-up inferences before each window (default: {DEFAULT_WARMUP})")
    parser.add_argument("--optimize", help="gcc -O level without the dash (default: the board's)")
    parser.add_argument("--no-store", action="store_true", help="do not write the figures to the results store")
    add_model_id_argument(parser)
    add_store_argument(parser)


def print_run(summary: dict[str, object]) -> None:
    print(f"{summary['model']} on {summary['board']} ({summary['backend']}), MLPerf Tiny performance mode")
    print(f"  latency      {summary['latency']:,.0f} {summary['latency_unit']} per inference "
          f"(median of {summary['windows']} windows of {summary['inferences_per_window']} inferences, "
          f"{summary['warmup']} warm-up; windows of at least {summary['window_s']:g} s of "
          f"{'QEMU virtual time' if summary['window_time'] == 'virtual' else 'the board clock'})")
    print(f"  lap clock    {summary['lap_clock']}")
    if "accuracy" in summary:
        metric = "top-1" if summary["accuracy_metric"] == "top1" else "ROC AUC"
        print(f"  {metric:<12} {summary['accuracy']:.4f} over {summary['files']} inputs ({summary['task']})")
        print(f"  matches TFLM {summary['outputs_matching_tflm']} of {summary['files']} outputs bit for bit")


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    source = resolve_model(args.model)
    result = run_mlperf(board, source, args.inputs, windows=args.windows, window_s=args.window_s,
                        warmup=args.warmup, optimize=args.optimize, model_id=model_id_for(source, args.model_id))
    store_and_show(args, board, result, print_run)
    accuracy = result.accuracy
    return 0 if accuracy is None or accuracy.matches_reference == accuracy.files else 1
