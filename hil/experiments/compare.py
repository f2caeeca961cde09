"""The engine against its baselines, measured in one run: our optimised kernels against our own
portable kernels (instructions or cycles on the same board), and our SRAM against TFLite Micro's
arena for the same model (from the tflite-micro package on this host); with a patch plan
(`--patches`), the same model with its first ops by patches, on the same board in the same run. A
model that fits the board only by patches is compared with TFLM alone, and says why whole tensors
do not fit."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.compiler import PATCHES_ENGINE_NAME
from engine.errors import DoesNotFitError
from engine.fold import fold_pad
from engine.ir import Graph
from engine.patches.rewrite import PatchGrid, prologue_length
from engine.oracle import TflmArena, tflm_arena
from hil.firmware_build.planlayout import PlanLayout
from hil.experiments.modelrun import ModelRun, engine_provenance, run_model
from hil.experiments.models import ModelSource
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.targets.boardspec import BoardSpec


@dataclass
class Comparison:
    ours: ModelRun | None  # None: whole tensors do not fit the board (whole_refused says why)
    portable: ModelRun | None
    tflm: TflmArena
    patched: ModelRun | None = None  # the optimised kernels with the patch plan, where one was chosen
    whole_refused: str = ""
    source_input: frozenset[int] = frozenset()  # the model's input and its reshapes: not the stage's activations

    def stage_activations(self, run: ModelRun) -> int | None:
        """The most bytes of the patched stage's activations live at once in `run`'s plan (the
        input left out): MCUNetV2's measure of what patches save."""
        if run is None or not run.memory_plan or self.patched is None:
            return None
        layout = PlanLayout.from_json(run.memory_plan)
        return layout.stage_bytes(self.patched.patches.grid.split, set(self.source_input))

    def patch_summary(self) -> dict[str, object]:
        """The patch plan against the whole-tensor one: peak SRAM, latency, flash and halo."""
        p = self.patched
        if p is None:
            return {"patches": self.ours.patches.to_json() if self.ours.patches else {"grid": "off"}}
        summary = {"patches": p.patches.to_json(), "patched_latency": p.latency, "patched_peak_sram_bytes": p.peak_sram,
                   "patched_stage_activation_bytes": self.stage_activations(p),
                   "patched_sram_vs_tflm_arena": p.peak_sram / self.tflm.total, "patched_flash_bytes": p.flash,
                   "patched_arena_bytes": p.arena_planned, "patched_matches_reference": p.matches_reference}
        if self.ours is not None:
            whole_stage = self.stage_activations(self.ours)
            summary.update(patched_latency_vs_whole=p.latency / self.ours.latency,
                           patched_sram_vs_whole=p.peak_sram / self.ours.peak_sram,
                           stage_activation_bytes=whole_stage,
                           stage_activation_shrink=whole_stage / max(1, summary["patched_stage_activation_bytes"] or 0)
                           if whole_stage else None)
        return summary

    @property
    def engine_sram(self) -> int:
        """What the engine needs in SRAM: the model's peak (its arena, its own statics and the
        stack measured on the target), the lab's buffers left out."""
        return self.ours.peak_sram

    @property
    def latency_ratio(self) -> float:
        return self.ours.latency / self.portable.latency

    @property
    def sram_vs_tflm_arena(self) -> float:
        return self.engine_sram / self.tflm.total

    @property
    def sram_vs_tflm_activations(self) -> float:
        return self.engine_sram / self.tflm.head

    @property
    def arena_vs_lower_bound(self) -> float:
        return self.ours.arena_planned / max(1, self.ours.arena_lower_bound)

    def summary(self) -> dict[str, object]:
        if self.ours is None:
            return {"model": self.patched.model, "board": self.patched.board, "latency_unit": self.patched.unit,
                    "whole_refused": self.whole_refused, "tflm_arena_bytes": self.tflm.total,
                    "tflm_activation_bytes": self.tflm.head, "matches_reference": self.patched.matches_reference,
                    **self.patch_summary()}
        return {
            "model": self.ours.model,
            "board": self.ours.board,
            "latency_unit": self.ours.unit,
            "latency": self.ours.latency,
            "latency_portable": self.portable.latency,
            "latency_ratio": self.latency_ratio,
            "engine_sram_bytes": self.engine_sram,
            "arena_bytes": self.ours.arena_planned,
            "arena_lower_bound_bytes": self.ours.arena_lower_bound,
            "arena_vs_lower_bound": self.arena_vs_lower_bound,
            "arena_portable_bytes": self.portable.arena_planned,
            "stack_high_water_bytes": self.ours.stack_high_water,
            "peak_sram_bytes": self.ours.peak_sram,
            "flash_bytes": self.ours.flash,
            "flash_portable_bytes": self.portable.flash,
            "tflm_arena_bytes": self.tflm.total,
            "tflm_activation_bytes": self.tflm.head,
            "sram_vs_tflm_arena": self.sram_vs_tflm_arena,
            "sram_vs_tflm_activations": self.sram_vs_tflm_activations,
            "matches_reference": self.ours.matches_reference and self.portable.matches_reference
            and (self.patched is None or self.patched.matches_reference),
            **self.patch_summary(),
        }

    def measurements(self, board: BoardSpec) -> list[Measurement]:
        first = self.ours or self.patched
        ours = engine_provenance(board, first.backend)
        host = Provenance(**{**ours.__dict__, "engine": "tflite-micro", "engine_version": "host package",
                             "backend": "host", "toolchain": "tflite-micro (x86-64 host build)"})
        model, sha = first.model, first.model_sha256
        rows = []
        if self.patched is not None:
            rows += self.patched.measurements(Provenance(**{**ours.__dict__, "engine": PATCHES_ENGINE_NAME}))
        if self.ours is not None:
            portable = Provenance(**{**ours.__dict__, "engine": ours.engine + "-portable"})
            ratios = {"latency_vs_portable": self.latency_ratio, "sram_vs_tflm_arena": self.sram_vs_tflm_arena,
                      "sram_vs_tflm_activations": self.sram_vs_tflm_activations}
            rows += [*self.ours.measurements(ours),
                     ours.measurement(model, sha, "engine_sram", self.engine_sram, "bytes", ratios),
                     ours.measurement(model, sha, "arena_lower_bound", self.ours.arena_lower_bound, "bytes"),
                     *self.portable.measurements(portable)]
        return rows + [host.measurement(model, sha, "tflm_arena", self.tflm.total, "bytes"),
                       host.measurement(model, sha, "tflm_arena_activations", self.tflm.head, "bytes")]


def compare(board: BoardSpec, source: ModelSource, value: np.ndarray, flash_budget: int | None = None,
            patches: str | PatchGrid = "off", sram_budget: int | None = None) -> Comparison:
    """Whole tensors (optimised and portable kernels), TFLM's arena and, unless `patches` is "off"
    or its choice is whole tensors, the patch plan."""
    first = None if patches == "off" else run_model(board, source, value, kernels="optimized",
                                                      flash_budget=flash_budget, patches=patches, sram_budget=sram_budget)
    if first is not None and first.patches is not None and first.patches.grid is None:
        ours, patched = first, None  # auto chose whole tensors: that run is the whole-tensor one, with the reason
    else:
        patched = first
        try:
            ours = run_model(board, source, value, kernels="optimized", flash_budget=flash_budget)
        except DoesNotFitError as error:
            if patched is None:
                raise
            return Comparison(None, None, tflm_arena(source.tflite), patched, whole_refused=str(error),
                              source_input=input_tensors(source.graph))
    return Comparison(
        ours=ours,
        portable=run_model(board, source, value, kernels="portable", flash_budget=flash_budget),
        tflm=tflm_arena(source.tflite),
        patched=patched,
        source_input=input_tensors(source.graph),
    )


def input_tensors(graph: Graph) -> frozenset[int]:
    """The model's input and the tensors its leading RESHAPEs make of it (the same bytes)."""
    folded = fold_pad(graph)
    return frozenset([folded.inputs[0], *(op.outputs[0] for op in folded.ops[:prologue_length(folded)])])
