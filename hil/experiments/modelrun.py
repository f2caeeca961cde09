"""Compile a model with the engine, build it into firmware for a board, run it, and compare its
output with TFLite Micro's for the same input."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.compiler import ENGINE_NAME, ENGINE_VERSION, CompiledModel, compile_graph
from engine.patches.choose import PatchChoice
from engine.patches.rewrite import PatchGrid
from hil.cycles.coremodel import CycleEstimate
from hil.cycles.estimated import cycle_estimation, estimate_row, estimate_summary
from hil.firmware_build.firmware import COMPILER, Firmware, build_firmware
from hil.firmware_build.flash import FlashBreakdown, fit_flash
from hil.firmware_build.inputplacement import choose_input_staging
from hil.firmware_build.inputwire import RAW, InputWire
from hil.firmware_build.patching import resolve_patches
from hil.firmware_build.model_workload import check_fits, model_static_ram, model_workload
from hil.firmware_build.planlayout import plan_layout
from hil.errors import LabError
from hil.experiments.models import ModelSource
from hil.experiments.targetrun import TargetRun, target_fields, target_provenance
from hil.run.runners import Runner, runner_for
from hil.run.target import open_with_input
from hil.run.transcript import Transcript, kept_on_failure
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.targets.boardspec import BoardSpec


@dataclass
class ModelRun(TargetRun):
    """What one run of a model on a board measured. Its peak SRAM is the model's own: the arena
    (input and output inside), the model's statics and the stack high-water; the lab's static
    buffers (a staging copy of the input, the command buffer, ...) are `lab_overhead`, apart."""

    model: str
    model_sha256: str
    board: str
    backend: str
    unit: str
    latency: float  # per inference, in `unit`
    resolution: float
    static_ram: int  # .data + .bss (+ .noinit) of the whole firmware (the arena inside)
    model_static_ram: int  # the model's part of static_ram: its arena and its own statics (from the ELF)
    input_staged: bool  # whether the firmware kept a staging copy of the input
    stack_high_water: int
    arena_planned: int
    arena_lower_bound: int
    arena_touched: int
    flash: int
    weights_bytes: int
    output: np.ndarray
    reference: np.ndarray
    checksum: str
    memory_plan: dict[str, object] | None = None  # hil.firmware_build.planlayout's JSON: stored with arena_planned
    flash_parts: FlashBreakdown | None = None
    lab_objects: dict[str, int] = field(default_factory=dict)  # the lab's static RAM objects (name -> bytes)
    transcript: Transcript | None = field(default=None, compare=False, repr=False)  # what the link said
    patches: PatchChoice | None = None  # the patch plan the build used (None: whole tensors)
    cycles: CycleEstimate | None = None  # with --cycle-model: estimated cycles of the same timed window

    @property
    def peak_sram(self) -> int:
        """The model's peak SRAM: its arena (input and output inside), its own statics and the
        measured stack high-water; to compare with TFLM's arena and TinyEngine's peak memory."""
        return self.model_static_ram + self.stack_high_water

    @property
    def lab_overhead(self) -> int:
        """The static RAM that is the lab's, not the model's (the rest of static_ram)."""
        return self.static_ram - self.model_static_ram

    def summary(self) -> dict[str, object]:
        return {
            **self.summary_head(),
            "peak_sram_bytes": self.peak_sram,
            "model_static_bytes": self.model_static_ram,
            "lab_overhead_bytes": self.lab_overhead,
            "input_staged": self.input_staged,
            "static_ram_bytes": self.static_ram,
            "stack_high_water_bytes": self.stack_high_water,
            "arena_planned_bytes": self.arena_planned,
            "arena_lower_bound_bytes": self.arena_lower_bound,
            "arena_touched_bytes": self.arena_touched,
            "flash_bytes": self.flash,
            **(self.flash_parts.to_json() if self.flash_parts else {}),
            "weights_bytes": self.weights_bytes,
            "matches_reference": self.matches_reference,
            "output_checksum": self.checksum,
            "patches": self.patches.to_json() if self.patches else {"grid": "off"},
            **(estimate_summary(self.cycles) if self.cycles else {}),
        }

    def _plan_extra(self) -> dict | None:
        """Stored with arena_planned: the memory plan and, where the build used one, the patch plan."""
        extra = {"plan": self.memory_plan} if self.memory_plan else {}
        if self.patches is not None:
            extra["patches"] = self.patches.to_json()
        return extra or None

    def measurements(self, provenance: Provenance) -> list[Measurement]:
        row = self.row_maker(provenance)
        return [
            row("latency", self.latency, self.unit),
            row("peak_sram", self.peak_sram, "bytes", {"model_static_ram": self.model_static_ram}),
            row("lab_overhead", self.lab_overhead, "bytes",
                {"input_staged": self.input_staged, "objects": self.lab_objects}),
            row("static_ram", self.static_ram, "bytes"),
            row("stack_high_water", self.stack_high_water, "bytes"),
            row("arena_planned", self.arena_planned, "bytes", self._plan_extra()),
            row("arena_touched", self.arena_touched, "bytes"),
            row("flash", self.flash, "bytes", {"parts": self.flash_parts.to_json()} if self.flash_parts else None),
            row("matches_reference", float(self.matches_reference), "bool"),
        ] + ([estimate_row(row, self.cycles)] if self.cycles else [])


@dataclass(frozen=True)
class BuiltModel:
    """A model's firmware, the compiled model inside it, and its flash by component."""

    firmware: Firmware
    compiled: CompiledModel
    flash: FlashBreakdown
    patches: PatchChoice | None = None


def build_model_firmware(
    board: BoardSpec, source: ModelSource, optimize: str | None = None, kernels: str = "optimized",
    flash_budget: int | None = None, *, input_staging: bool | None = None, name: str | None = None,
    patches: str | PatchGrid = "off", sram_budget: int | None = None, input_wire: InputWire = RAW,
) -> BuiltModel:
    """The model's firmware for the board, its workload named `name` (default: the model's), its
    image within `flash_budget` bytes (default: the board's flash). `input_staging`: keep a staging
    copy of the input (True), load it in place (False), or the first where the board has room for
    it (None). `patches`: "off", "auto" (chosen for the board and `sram_budget`) or a grid
    (hil.firmware_build.patching). `input_wire`: how `db` bytes become the input (an anomaly
    score needs the staging copy)."""
    choice = resolve_patches(board, source.graph, kernels, patches, sram_budget)
    compiled = compile_graph(source.graph, kernels=kernels, patches=choice.grid if choice else None)
    check_fits(board, compiled, flash_budget)
    staged = choose_input_staging(board, compiled, True if input_wire.anomaly_score else input_staging)
    firmware, compiled, flash = fit_flash(
        board, compiled,
        lambda c: build_firmware(board, model_workload(c, name or source.name, staged=staged, input_wire=input_wire),
                                 optimize=optimize),
        flash_budget)
    return BuiltModel(firmware, compiled, flash, choice)


def run_model(
    board: BoardSpec,
    source: ModelSource,
    value: np.ndarray,
    *,
    optimize: str | None = None,
    runner: Runner | None = None,
    warmup: int = 1,
    kernels: str = "optimized",
    flash_budget: int | None = None,
    input_staging: bool | None = None,
    patches: str | PatchGrid = "off",
    sram_budget: int | None = None,
    cycle_model: str | None = None,
) -> ModelRun:
    """Build, run one timed inference after `warmup` ones, and compare with TFLM the output the
    firmware reports: that of an inference on `value` (without a staging copy of the input, the
    first; the others run on generated input). `flash_budget` and `input_staging` as
    build_model_firmware's, and `patches` and `sram_budget`. `cycle_model` (auto, m4, m7): also
    estimate cycles from a profile of the same run (hil.cycles)."""
    built = build_model_firmware(board, source, optimize, kernels, flash_budget, input_staging=input_staging,
                                 patches=patches, sram_budget=sram_budget)
    firmware, compiled = built.firmware, built.compiled
    runner = runner or runner_for(board)
    transcript = runner.fresh_transcript()
    graph = compiled.graph
    out_tensor = graph.tensors[graph.outputs[0]]
    data = np.ascontiguousarray(value).tobytes()
    with cycle_estimation(runner, board, cycle_model) as estimator:
        with kept_on_failure(transcript), open_with_input(runner, firmware, data) as link:
            report = link.infer(count=1, warmup=warmup, timeout_s=max(runner.timeout_s, 600.0))
        cycles = estimator(firmware, runner.latency(report.ticks_min)) if estimator else None
    if not report.output_of_loaded_input:
        raise LabError(f"model {source.name} on {board.name}: the firmware reported the output of inference "
                       f"{report.output_inference}, whose input was '{report.output_input}', not the input loaded")
    split = model_static_ram(firmware, compiled)
    return ModelRun(
        **target_fields(board, source, value, runner, firmware, report, out_tensor.dtype, out_tensor.shape, transcript),
        arena_planned=compiled.plan.arena_bytes,
        arena_lower_bound=compiled.plan.lower_bound,
        arena_touched=report.arena_touched,
        weights_bytes=compiled.generated.weight_bytes,
        memory_plan=plan_layout(compiled, board.sram_bytes).to_json(),
        flash_parts=built.flash,
        model_static_ram=split.model_bytes,
        input_staged=firmware.input_staged,
        lab_objects={o.name: o.size for o in split.lab},
        patches=built.patches,
        cycles=cycles,
    )


def engine_provenance(board: BoardSpec, backend: str, test_id: str = "") -> Provenance:
    """Provenance for the rows of a run of the engine's firmware."""
    return target_provenance(board, backend, ENGINE_NAME, ENGINE_VERSION, [COMPILER], test_id)
