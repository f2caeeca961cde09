"""`tinylab tflm`: build TFLM's library for a board with TFLM's own Makefile into the lab's cache
(`build`), and list the libraries there (`list`), each with the --tflm-dir to pass."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from hil.firmware_build.tflm_library_build import (BUILD_TYPES, KERNELS, TflmBuild, TflmBuildError, TflmBuildSpec,
                                                   build_tflm_library, cached_builds, default_cache_dir)
from hil.progress import ProgressBar, format_duration
from hil.targets.boards import load_board

SUMMARY = "build TFLM's library for a board with TFLM's own Makefile, into the lab's cache (for --tflm-dir)"
EXAMPLES = """\
  tinylab tflm build --src ~/tflite-micro --board qemu-f746              # reference and CMSIS-NN kernels
  tinylab tflm build --src ~/tflite-micro --board qemu-f746 qemu-f412 --kernels cmsis-nn
  tinylab tflm build --src ~/tflite-micro --downloads ~/tflm-downloads --board qemu-f412   # offline
  tinylab tflm list
Each library is printed with the --tflm-dir to pass to bench or nightly; give --tflm-dir once
per library (a reference and a CMSIS-NN build, one per core): each board takes those built for it.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("build", "list"),
                        help="build: run TFLM's Makefile for each board's core and float ABI (an existing build is "
                        "reused); list: the libraries in the cache")
    parser.add_argument("--src", type=Path, metavar="TFLM_CHECKOUT", help="a tflite-micro checkout (build)")
    parser.add_argument("--board", nargs="+", default=["qemu-f746"], metavar="BOARD",
                        help="the boards to build for; boards with the same core and FPU share a build (default: qemu-f746)")
    parser.add_argument("--kernels", nargs="+", choices=tuple(KERNELS), default=list(KERNELS),
                        help="TFLM's reference kernels, CMSIS-NN's (OPTIMIZED_KERNEL_DIR=cmsis_nn), or both (the default)")
    parser.add_argument("--build-type", choices=BUILD_TYPES, default="release",
                        help="TFLM's BUILD_TYPE (default: release, as benchmarks use it; default is TFLM's debug-logging build)")
    parser.add_argument("--downloads", type=Path, metavar="DIR",
                        help="the third-party folders TFLM's Makefile fetches (flatbuffers, gemmlowp, ruy, kissfft, "
                        "pigweed, cmsis, cmsis_nn), already fetched: nothing is downloaded "
                        "(default: the checkout's tensorflow/lite/micro/tools/make/downloads/)")
    parser.add_argument("--cmsis-nn", type=Path, metavar="DIR",
                        help="a CMSIS-NN checkout for the cmsis-nn build (default: cmsis_nn in the downloads folder)")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="make's parallel jobs (default: one per core)")
    parser.add_argument("--force", action="store_true", help="build again even where the cache has the library")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return list_builds(args)
    if args.src is None:
        raise TflmBuildError("build needs --src TFLM_CHECKOUT, a tflite-micro checkout")
    specs = unique_specs(args)
    built: list[tuple[TflmBuild, list[str]]] = []
    for spec, boards in specs:
        if not args.json:
            print(f"TFLM {spec.kernels} kernels, {spec.build_type}, for {', '.join(boards)} "
                  f"({spec.board.core}, {spec.board.fpu}): make TARGET_ARCH={spec.target_arch} ...", flush=True)
        bar = None if args.json else ProgressBar(1, "  make", quiet_steps=10)

        def progress(done: int, total: int, name: str) -> None:
            if bar is not None:
                bar.total = total
                bar.advance(name, to=done)

        build = build_tflm_library(spec, jobs=args.jobs, force=args.force, progress=progress)
        built.append((build, boards))
        if not args.json:
            for note in build.notes:
                print(f"  note: {note}")
            how = "already in the cache" if build.from_cache else f"built in {format_duration(build.seconds)}"
            print(f"  {how}: {build.directory}", flush=True)
    arguments = [f"--tflm-dir {b.directory}" for b, _ in built]
    if args.json:
        print(json.dumps({"libraries": [library_json(b, boards) for b, boards in built],
                          "tflm_dir_arguments": " ".join(arguments)}, indent=2))
    else:
        print("pass to bench or nightly:\n  " + " ".join(arguments))
    return 0


def unique_specs(args: argparse.Namespace) -> list[tuple[TflmBuildSpec, list[str]]]:
    """One build per (core, FPU, kernels), with the boards it serves."""
    found: dict[tuple[str, str, str], tuple[TflmBuildSpec, list[str]]] = {}
    for name in args.board:
        board = load_board(name)
        for kernels in dict.fromkeys(args.kernels):
            key = (board.core, board.fpu, kernels)
            if key in found:
                found[key][1].append(board.name)
                continue
            spec = TflmBuildSpec(args.src, board, kernels, args.build_type, args.downloads,
                                 args.cmsis_nn if kernels == "cmsis-nn" else None)
            found[key] = (spec, [board.name])
    return list(found.values())


def library_json(build: TflmBuild, boards: list[str] | None = None) -> dict:
    return {"tflm_dir": str(build.directory), "from_cache": build.from_cache, "seconds": build.seconds,
            **({"boards": boards} if boards is not None else {}), **build.manifest}


def list_builds(args: argparse.Namespace) -> int:
    builds = cached_builds()
    if args.json:
        print(json.dumps({"cache": str(default_cache_dir()), "libraries": [library_json(b) for b in builds]}, indent=2))
        return 0
    if not builds:
        print(f"no TFLM library in {default_cache_dir()}: build one with `tinylab tflm build --src TFLM_CHECKOUT --board B`")
        return 0
    for build in builds:
        print(f"{build.describe()}\n  --tflm-dir {build.directory}")
    return 0
