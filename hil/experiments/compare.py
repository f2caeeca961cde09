"""The engine against its baselines, measured in one run: our optimised kernels against our own
portable kernels (instructions or cycles on the same board), and our SRAM against TFLite Micro's
arena for the same model (from the tflite-micro package on this host)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.oracle import TflmArena, tflm_arena
from hil.experiments.modelrun import ModelRun, engine_provenance, run_model
from hil.experiments.models import ModelSource
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.targets.boardspec import BoardSpec


@dataclass
class Comparison:
    ours: ModelRun
    portable: ModelRun
    tflm: TflmArena

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
            "matches_reference": self.ours.matches_reference and self.portable.matches_reference,
        }

    def measurements(self, board: BoardSpec) -> list[Measurement]:
        backend = self.ours.backend
        ours = engine_provenance(board, backend)
        portable = Provenance(**{**ours.__dict__, "engine": ours.engine + "-portable"})
        host = Provenance(**{**ours.__dict__, "engine": "tflite-micro", "engine_version": "host package",
                             "backend": "host", "toolchain": "tflite-micro (x86-64 host build)"})
        model, sha = self.ours.model, self.ours.model_sha256
        ratios = {"latency_vs_portable": self.latency_ratio, "sram_vs_tflm_arena": self.sram_vs_tflm_arena,
                  "sram_vs_tflm_activations": self.sram_vs_tflm_activations}
        return [
            *self.ours.measurements(ours),
            ours.measurement(model, sha, "engine_sram", self.engine_sram, "bytes", ratios),
            ours.measurement(model, sha, "arena_lower_bound", self.ours.arena_lower_bound, "bytes"),
            *self.portable.measurements(portable),
            host.measurement(model, sha, "tflm_arena", self.tflm.total, "bytes"),
            host.measurement(model, sha, "tflm_arena_activations", self.tflm.head, "bytes"),
        ]


def compare(board: BoardSpec, source: ModelSource, value: np.ndarray, flash_budget: int | None = None) -> Comparison:
    return Comparison(
        ours=run_model(board, source, value, kernels="optimized", flash_budget=flash_budget),
        portable=run_model(board, source, value, kernels="portable", flash_budget=flash_budget),
        tflm=tflm_arena(source.tflite),
    )
