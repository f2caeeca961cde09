"""The TFLM baseline on the target: the harness (our startup, timer, UART, protocol and main)
built around TFLM's MicroInterpreter from a library the user provides (--tflm-dir or
$TINYLAB_TFLM_DIR), run by the same runner as the engine's models and compared with the TFLM host
oracle, so that TFLM and the engine are measured figure for figure. Without a library, or with one
that does not fit the board, `measure_tflm_baseline` says why the TFLM column is empty."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.oracle import tflm_arena
from hil.firmware_build.firmware import COMPILER, CXX_COMPILER, Firmware, build_firmware
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
    ARENA_WORKLOAD,
    ArenaFigures,
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
from hil.run.protocol import DeviceLink
from hil.run.runners import Runner, runner_for
from hil.run.target import open_with_input
from hil.run.transcript import Transcript, kept_on_failure
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.targets.boardspec import BoardSpec

__all__ = [
    "NO_LIBRARY_REASON", "TFLM_DIR_ENV", "TflmBaselineError", "TflmDoesNotFitError", "TflmLibrary",
    "TflmLibraryError", "TflmModelError", "TflmRun", "TflmUnavailable", "find_tflm_library",
    "format_tflm_column", "load_tflm_library", "measure_tflm_baseline", "run_tflm_baseline", "sizing_arena",
    "tflm_column_entry", "tflm_dir_from", "tflm_provenance",
]

# The first build's arena: TFLM's host figure (x86-64, 64-bit pointers: more than the target's
# bookkeeping) plus this margin for kernels whose scratch differs on the target (CMSIS-NN's).
SIZING_MARGIN_BYTES = 4096
SIZING_MARGIN_FRACTION = 0.25
HARNESS_STATIC_BYTES = 2048  # the harness's own .data and .bss (command buffer, workload table)


class TflmDoesNotFitError(TflmBaselineError):
    """TFLM's arena for the model does not fit the board's SRAM."""


@dataclass
class TflmRun(TargetRun):
    """What one run of a model under TFLM on a board measured (the same figures as ModelRun's)."""

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
    stack_high_water: int
    arena_used: int  # MicroInterpreter::arena_used_bytes() on the target
    arena_reserved: int  # the static arena in the measured firmware: arena_used rounded up to 16 B
    flash: int
    output: np.ndarray
    reference: np.ndarray
    checksum: str
    library: str  # the library's description: archive, architecture, kernels
    transcript: Transcript | None = field(default=None, compare=False, repr=False)  # what the link said

    def summary(self) -> dict[str, object]:
        return {
            **self.summary_head(engine=self.engine, engine_version=self.engine_version),
            "peak_sram_bytes": self.peak_sram,
            "static_ram_bytes": self.static_ram,
            "stack_high_water_bytes": self.stack_high_water,
            "arena_used_bytes": self.arena_used,
            "arena_reserved_bytes": self.arena_reserved,
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
        return [
            row("latency", self.latency, self.unit),
            row("peak_sram", self.peak_sram, "bytes"),
            row("static_ram", self.static_ram, "bytes"),
            row("stack_high_water", self.stack_high_water, "bytes"),
            row("arena_planned", self.arena_used, "bytes",
                {"source": "MicroInterpreter::arena_used_bytes() on the target", "arena_reserved": self.arena_reserved}),
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
    """TFLM's figures for the model on the board, or why there are none: no library given
    (NO_LIBRARY_REASON), a library that fails validation, a model it cannot run, or an arena that
    does not fit. Build and run failures of a valid library raise their LabError as the engine's do."""
    library = find_tflm_library(board, tflm_dir)
    if isinstance(library, TflmUnavailable):
        return library
    if library.stand_in:
        return TflmUnavailable(
            f"the library in {library.root} is tinylab's test stand-in ({STAND_IN_ENGINE}), not TFLM", "invalid-library"
        )
    try:
        return run_tflm_baseline(board, source, value, library, optimize=optimize, runner=runner, warmup=warmup)
    except TflmDoesNotFitError as error:
        return TflmUnavailable(str(error), "does-not-fit")
    except TflmModelError as error:
        return TflmUnavailable(str(error), "unsupported-model")


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
    """Build the TFLM firmware twice (a first build with a generous arena reads TFLM's arena on the
    target; the measured build has exactly that arena, or the first one's should that not do), run
    one timed inference after `warmup`, and compare the output with the TFLM host oracle."""
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
    """run_tflm_baseline's runs on the target (the arena sizing run, then the measured one)."""
    generous, figures = _arena_on_target(board, source, info, library, optimize, runner)
    for arena in (figures.used, generous):
        firmware = _build(board, source, info, library, arena, optimize)
        try:
            with open_with_input(runner, firmware, data) as link:
                report = link.infer(count=1, warmup=warmup, timeout_s=max(runner.timeout_s, 600.0))
                measured = read_arena_figures(link, info.name)
            break
        except ProtocolError as error:
            if "AllocateTensors failed" not in str(error) or arena == generous:
                raise
    return TflmRun(
        **target_fields(board, source, value, runner, firmware, report, info.output.dtype, info.output.shape,
                        transcript),
        engine=library.engine,
        engine_version=library.engine_version,
        arena_used=measured.used,
        arena_reserved=measured.reserved,
        library=library.describe(),
    )


def arena_room(board: BoardSpec, info: TfliteModelInfo) -> int:
    """The most arena a firmware for the board can have: its SRAM less the stack it keeps, the
    input buffer and a little for the harness's own static data."""
    room = board.sram_bytes - board.min_stack_bytes - info.input.bytes - HARNESS_STATIC_BYTES
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
           arena: int, optimize: str | None) -> Firmware:
    firmware = build_firmware(board, tflm_workload(info, source.tflite, arena, library), optimize=optimize)
    check_no_static_constructors(firmware.elf)
    return firmware


def _arena_on_target(board: BoardSpec, source: ModelSource, info: TfliteModelInfo, library: TflmLibrary,
                     optimize: str | None, runner: Runner) -> tuple[int, ArenaFigures]:
    """TFLM's arena_used_bytes() on the target, from a build with a generous arena (the host figure
    plus a margin; all the room the board has if that is not enough), and that arena's size."""
    room = arena_room(board, info)
    arena = sizing_arena(board, source, info)
    while True:
        firmware = _build(board, source, info, library, arena, optimize)
        try:
            with runner.open(firmware) as link:
                return arena, read_arena_figures(link, info.name)
        except ProtocolError as error:
            if "AllocateTensors failed" not in str(error):
                raise
            if arena >= room:
                raise TflmDoesNotFitError(
                    f"model {source.name} does not fit {board.name} under TFLM: AllocateTensors failed with an "
                    f"arena of {arena:,} B, all the room the board has for one"
                ) from None
            arena = room


def read_arena_figures(link: DeviceLink, model_workload: str) -> ArenaFigures:
    """Select the `tflm-arena` workload, read its figures, and select the model's workload again."""
    link.select(ARENA_WORKLOAD)
    raw, _ = link.results()
    link.select(model_workload)
    figures = ArenaFigures.from_output(raw)
    if figures.status != 0:
        raise TflmModelError(f"board {link.board}: TFLM did not start (status {figures.status})")
    return figures


# ---- the TFLM column of a benchmark table -------------------------------------------------------


def tflm_column_entry(board: BoardSpec, source: ModelSource, value: np.ndarray, tflm_dir: str | Path | None,
                      *, optimize: str | None = None) -> tuple[dict[str, object], list[Measurement]]:
    """One model's TFLM entry: its summary and the rows to store, or {model, reason, kind} and none."""
    result = measure_tflm_baseline(board, source, value, tflm_dir, optimize=optimize)
    if isinstance(result, TflmUnavailable):
        return {"model": source.name, "reason": result.reason, "kind": result.kind}, []
    return result.summary(), result.measurements(tflm_provenance(board, result))


def format_tflm_column(entries: list[dict[str, object]], ours: list[dict[str, object]] | None = None) -> str:
    """The TFLM column as text: TFLM's figures beside the engine's (with ratios) where both were
    measured, and why the column is empty where it is."""
    ours_by_model = {o["model"]: o for o in ours or []}
    lines = [f"{'model':<32} {'engine':<14} {'latency':>14} {'unit':<12} {'ours/TFLM':>9} {'peak SRAM':>10} "
             f"{'ours/TFLM':>9} {'arena':>9} {'flash':>9}  matches TFLM"] if any("reason" not in e for e in entries) else []
    for entry in entries:
        if "reason" in entry:
            lines.append(f"{entry['model']:<32} TFLM column empty: {entry['reason']}")
            continue
        mine = ours_by_model.get(entry["model"])
        same_unit = mine is not None and mine["latency_unit"] == entry["latency_unit"]
        latency_ratio = f"{mine['latency'] / entry['latency']:.2f}" if same_unit and entry["latency"] else "-"
        sram_ratio = f"{mine['peak_sram_bytes'] / entry['peak_sram_bytes']:.2f}" if mine else "-"
        lines.append(
            f"{entry['model']:<32} {entry['engine']:<14} {entry['latency']:>14,.0f} {entry['latency_unit']:<12} "
            f"{latency_ratio:>9} {entry['peak_sram_bytes']:>10,} {sram_ratio:>9} {entry['arena_used_bytes']:>9,} "
            f"{entry['flash_bytes']:>9,}  {'yes' if entry['matches_reference'] else 'NO'}"
        )
    return "\n".join(lines)
