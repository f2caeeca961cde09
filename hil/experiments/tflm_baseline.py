"""The TFLM baseline on the target: the harness (our startup, timer, UART, protocol and main)
built around TFLM's MicroInterpreter from a library the user provides (--tflm-dir or
$TINYLAB_TFLM_DIR), run by the same runner as the engine's models and compared with the TFLM host
oracle, so that TFLM and the engine are measured figure for figure. Without a library, or with one
that does not fit the board, `measure_tflm_baseline` says why the TFLM column is empty
(hil.experiments.tflm_columns fills the columns of a table from several libraries)."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.oracle import tflm_arena
from hil.firmware_build.firmware import COMPILER, CXX_COMPILER, Firmware, build_firmware, render_harness
from hil.firmware_build.staticram import StaticRamSplit, split_static_ram
from hil.firmware_build.tflm_baseline_library import (
    NO_LIBRARY_REASON,
    STAND_IN_ENGINE,
    TFLM_DIR_ENV,
    TflmBaselineError,
    TflmLibrary,
    TflmLibraryError,
    TflmUnavailable,
    find_tflm_library,
    load_tflm_library,
    tflm_dir_from,
)
from hil.firmware_build.tflm_baseline_workload import (
    ARENA_ALIGNMENT,
    TFLM_ARENA_SYMBOL,
    TflmModelError,
    TfliteModelInfo,
    aligned_arena,
    check_no_static_constructors,
    inspect_tflite,
    require_cxx_toolchain,
    resolver_calls,
    tflm_workload,
)
from hil.errors import LabError, ProtocolError
from hil.experiments.models import ModelSource
from hil.experiments.targetrun import TargetRun, target_fields, target_provenance
from hil.experiments.tflm_arena_search import ArenaSearch, ArenaSize, TflmDoesNotFitError, read_arena_figures
from hil.run.runners import Runner, runner_for
from hil.run.target import open_with_input
from hil.run.transcript import Transcript, kept_on_failure
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.targets.boardspec import BoardSpec

__all__ = [
    "NO_LIBRARY_REASON", "TFLM_DIR_ENV", "TflmBaselineError", "TflmDoesNotFitError", "TflmLibrary",
    "TflmLibraryError", "TflmModelError", "TflmRun", "TflmUnavailable", "find_tflm_library",
    "load_tflm_library", "measure_tflm_baseline", "measure_with_library", "read_arena_figures", "run_tflm_baseline", "sizing_arena",
    "tflm_dir_from", "tflm_provenance",
]

# The first build's arena: TFLM's host figure (x86-64, 64-bit pointers: more than the target's
# bookkeeping) plus this margin for kernels whose scratch differs on the target (CMSIS-NN's).
SIZING_MARGIN_BYTES = 4096
SIZING_MARGIN_FRACTION = 0.25
HARNESS_STATIC_BYTES = 2048  # the harness's own .data and .bss (command buffer, workload table)


@dataclass
class TflmRun(TargetRun):
    """What one run of a model under TFLM on a board measured (the same figures as ModelRun's).
    Its peak SRAM is TFLM's own, as ours is the model's: the static RAM of TFLM, its library and
    the workload (the arena, the interpreter, the resolver) and the stack high-water; the
    harness's own buffers are `lab_overhead`, apart."""

    model: str
    model_sha256: str
    board: str
    backend: str
    engine: str  # tflm | tflm-cmsis-nn
    engine_version: str
    unit: str
    latency: float  # per inference, in `unit`
    resolution: float
    static_ram: int  # .data + .bss of the whole firmware (TFLM's arena inside)
    model_static_ram: int  # TFLM's part of static_ram (tflm_static_ram)
    input_staged: bool  # whether the harness kept a staging copy of the input (the lab's, where there is room)
    stack_high_water: int
    arena_used: int  # MicroInterpreter::arena_used_bytes() on the target
    arena_reserved: int  # the static arena in the measured firmware: the smallest TFLM starts with
    flash: int
    output: np.ndarray
    reference: np.ndarray
    checksum: str
    library: str  # the library's description: archive, architecture, kernels
    arena_search: ArenaSize | None = None  # how arena_reserved was found
    transcript: Transcript | None = field(default=None, compare=False, repr=False)  # what the link said

    @property
    def peak_sram(self) -> int:
        """TFLM's peak SRAM: its static RAM (arena inside) and the measured stack high-water."""
        return self.model_static_ram + self.stack_high_water

    @property
    def lab_overhead(self) -> int:
        return self.static_ram - self.model_static_ram

    def summary(self) -> dict[str, object]:
        return {
            **self.summary_head(engine=self.engine, engine_version=self.engine_version),
            "peak_sram_bytes": self.peak_sram,
            "model_static_bytes": self.model_static_ram,
            "lab_overhead_bytes": self.lab_overhead,
            "input_staged": self.input_staged,
            "static_ram_bytes": self.static_ram,
            "stack_high_water_bytes": self.stack_high_water,
            "arena_used_bytes": self.arena_used,
            "arena_reserved_bytes": self.arena_reserved,
            **({"arena_search": self.arena_search.to_json()} if self.arena_search else {}),
            "flash_bytes": self.flash,
            "matches_reference": self.matches_reference,
            "output_checksum": self.checksum,
            "library": self.library,
        }

    def measurements(self, provenance: Provenance) -> list[Measurement]:
        """The rows the engine's runs store, under TFLM's engine name. arena_planned is TFLM's own
        figure (arena_used_bytes() on the target); arena_touched is not measured (the harness does
        not paint TFLM's arena, whose tail holds the interpreter's state)."""
        row = self.row_maker(provenance, library=self.library)
        search = {"arena_search": self.arena_search.to_json()} if self.arena_search else {}
        return [
            row("latency", self.latency, self.unit),
            row("peak_sram", self.peak_sram, "bytes", {"model_static_ram": self.model_static_ram}),
            row("lab_overhead", self.lab_overhead, "bytes", {"input_staged": self.input_staged}),
            row("static_ram", self.static_ram, "bytes"),
            row("stack_high_water", self.stack_high_water, "bytes"),
            row("arena_planned", self.arena_used, "bytes",
                {"source": "MicroInterpreter::arena_used_bytes() on the target", "arena_reserved": self.arena_reserved,
                 **search}),
            row("flash", self.flash, "bytes"),
            row("matches_reference", float(self.matches_reference), "bool"),
        ]


def tflm_provenance(board: BoardSpec, run: TflmRun, test_id: str = "") -> Provenance:
    """Provenance for a TFLM run's rows: the library's engine name (tflm, tflm-cmsis-nn) and its
    archive's hash as engine and version."""
    return target_provenance(board, run.backend, run.engine, run.engine_version, [COMPILER, CXX_COMPILER], test_id)


def measure_tflm_baseline(
    board: BoardSpec,
    source: ModelSource,
    value: np.ndarray,
    tflm_dir: str | Path | None = None,
    *,
    optimize: str | None = None,
    runner: Runner | None = None,
    warmup: int = 1,
) -> TflmRun | TflmUnavailable:
    """TFLM's figures for the model on the board from the library in `tflm_dir` (else
    $TINYLAB_TFLM_DIR), or why there are none (measure_with_library)."""
    return measure_with_library(board, source, value, find_tflm_library(board, tflm_dir), optimize=optimize,
                                runner=runner, warmup=warmup)


def measure_with_library(
    board: BoardSpec,
    source: ModelSource,
    value: np.ndarray,
    library: TflmLibrary | TflmUnavailable,
    *,
    optimize: str | None = None,
    runner: Runner | None = None,
    warmup: int = 1,
) -> TflmRun | TflmUnavailable:
    """TFLM's figures for the model on the board, or why there are none: no library given
    (NO_LIBRARY_REASON), a library that fails validation or is built for another core, a model it
    cannot run, or an arena that does not fit. Build and run failures of a valid library raise
    their LabError as the engine's do."""
    if isinstance(library, TflmUnavailable):
        return library
    if library.stand_in:
        return TflmUnavailable(
            f"the library in {library.root} is tinylab's test stand-in ({STAND_IN_ENGINE}), not TFLM", "invalid-library",
            library.engine)
    try:
        return run_tflm_baseline(board, source, value, library, optimize=optimize, runner=runner, warmup=warmup)
    except TflmDoesNotFitError as error:
        return TflmUnavailable(str(error), "does-not-fit", library.engine)
    except TflmModelError as error:
        return TflmUnavailable(str(error), "unsupported-model", library.engine)


def run_tflm_baseline(
    board: BoardSpec,
    source: ModelSource,
    value: np.ndarray,
    library: TflmLibrary,
    *,
    optimize: str | None = None,
    runner: Runner | None = None,
    warmup: int = 1,
) -> TflmRun:
    """Find the smallest arena TFLM starts with on the target (tflm_arena_search), build the
    firmware with exactly that arena (and a staging copy of the input where the board has room for
    one beside it; else `db` loads the input straight into TFLM's input tensor), run one timed
    inference after `warmup` ones, and compare the output of the one that ran on `value` with the
    TFLM host oracle."""
    info = inspect_tflite(source.tflite, source.name)
    resolver_calls(info)  # an op without a resolver entry is refused before any build
    data = np.ascontiguousarray(value).tobytes()
    if len(data) != info.input.bytes:
        raise LabError(f"model {source.name}: the input has {len(data)} bytes, its input tensor {info.input.bytes}")
    require_cxx_toolchain(board)
    runner = runner or runner_for(board)
    transcript = runner.fresh_transcript()

    with kept_on_failure(transcript):
        return _measure_tflm(board, source, value, library, runner, optimize, warmup, info, data, transcript)


def _measure_tflm(board: BoardSpec, source: ModelSource, value: np.ndarray, library: TflmLibrary, runner: Runner,
                  optimize: str | None, warmup: int, info: TfliteModelInfo, data: bytes,
                  transcript: Transcript) -> TflmRun:
    """run_tflm_baseline's runs on the target: the arena search, then the measured run (again
    after a fresh search where a remembered arena no longer starts)."""
    build = functools.partial(_build, board, source, info, library, optimize=optimize)
    search = ArenaSearch(board, source, info, library, build, runner, room=arena_room(board, info),
                         sizing=sizing_arena(board, source, info))
    while True:
        arena = search.smallest()
        firmware = build(arena.smallest)
        if firmware.stack_bytes - aligned_arena(info.input.bytes) >= board.min_stack_bytes:
            firmware = build(arena.smallest, staged=True)  # room for a staging copy: the input is preloaded where it can be
        try:
            with open_with_input(runner, firmware, data) as link:
                report = link.infer(count=1, warmup=warmup, timeout_s=max(runner.timeout_s, 600.0))
                measured = read_arena_figures(link, info.name)
            break
        except (ProtocolError, TflmModelError):
            if not arena.remembered:
                raise
            search.forget()  # the remembered arena no longer starts: search again
    if not report.output_of_loaded_input:
        raise LabError(f"model {source.name} on {board.name} under TFLM: the firmware reported the output of "
                       f"inference {report.output_inference}, whose input was '{report.output_input}', not the input loaded")
    split = tflm_static_ram(firmware)
    return TflmRun(
        **target_fields(board, source, value, runner, firmware, report, info.output.dtype, info.output.shape,
                        transcript),
        engine=library.engine,
        engine_version=library.engine_version,
        model_static_ram=split.model_bytes,
        input_staged=firmware.input_staged,
        arena_used=measured.used,
        arena_reserved=measured.reserved,
        arena_search=arena,
        library=library.describe(),
    )


def tflm_static_ram(firmware: Firmware) -> StaticRamSplit:
    """The firmware's static RAM split: TFLM's (everything but what the harness's own sources
    define: the arena, the interpreter, the resolver, the library's and the C library's statics)
    and the lab's (the command buffer, the kept output, the workload table, padding)."""
    harness = [name for name in render_harness(firmware.board, 1) if name.endswith(".c")]
    return split_static_ram(firmware, harness, TFLM_ARENA_SYMBOL, model_is_rest=True)


def arena_room(board: BoardSpec, info: TfliteModelInfo) -> int:
    """The most arena a firmware for the board can have: its SRAM less the stack it keeps, the
    output the harness keeps aside and a little for the harness's own static data. (The input has
    no buffer of its own: `db` writes it into TFLM's input tensor.)"""
    room = board.sram_bytes - board.min_stack_bytes - HARNESS_STATIC_BYTES - aligned_arena(info.output.bytes)
    return room - room % ARENA_ALIGNMENT


def sizing_arena(board: BoardSpec, source: ModelSource, info: TfliteModelInfo) -> int:
    """The first build's arena: TFLM's host figure plus a margin, within the board's room."""
    host = tflm_arena(source.tflite)
    room = arena_room(board, info)
    if host.head > room:
        raise TflmDoesNotFitError(
            f"model {source.name} does not fit {board.name} under TFLM: its activations alone need "
            f"{host.head:,} B (TFLM's arena head on the host); the board has {room:,} B for an arena"
        )
    return min(room, aligned_arena(host.total + max(SIZING_MARGIN_BYTES, int(host.total * SIZING_MARGIN_FRACTION))))


def _build(board: BoardSpec, source: ModelSource, info: TfliteModelInfo, library: TflmLibrary,
           arena: int, optimize: str | None, staged: bool = False) -> Firmware:
    """The TFLM firmware with an arena of `arena` bytes; `staged`: with a staging copy of the input."""
    firmware = build_firmware(board, tflm_workload(info, source.tflite, arena, library, staged), optimize=optimize)
    check_no_static_constructors(firmware.elf)
    return firmware
