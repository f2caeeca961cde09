"""What every run on the target shares, whichever engine ran it (ours, or TFLM): the figures read
from one inference report beside TFLM's host reference, peak SRAM, bit-exactness, rows for the
results store, and their provenance."""
from __future__ import annotations

from typing import Callable, Sequence, TypedDict

import numpy as np

from engine.ir import DTYPES
from engine.oracle import run_tflm
from hil.firmware_build.firmware import Firmware
from hil.firmware_build.toolchain import toolchain_summary
from hil.experiments.models import ModelSource
from hil.run.protocol import InferenceReport
from hil.run.runners import Runner
from hil.run.transcript import Transcript, save_for_run
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.targets.boardspec import BoardSpec


class TargetRun:
    """What every run on the target offers, whichever engine ran it (ours, or TFLM): peak SRAM,
    bit-exactness, the start of a summary, and rows for the results store. Its users are dataclasses
    with TargetFields' fields."""

    @property
    def peak_sram(self) -> int:
        """The whole firmware's static data and the measured stack (ModelRun counts the model's
        part of the static data only)."""
        return self.static_ram + self.stack_high_water

    @property
    def matches_reference(self) -> bool:
        return self.output.dtype == self.reference.dtype and np.array_equal(self.output, self.reference)

    def summary_head(self, **engine: object) -> dict[str, object]:
        """The start of every run's summary: the model, board and backend, then `engine` (TFLM's
        name and version), then the latency with its unit and resolution."""
        return {
            "model": self.model,
            "model_sha256": self.model_sha256,
            "board": self.board,
            "backend": self.backend,
            **engine,
            "latency": self.latency,
            "latency_unit": self.unit,
            "latency_resolution": self.resolution,
        }

    def row_maker(self, provenance: Provenance, **extra: object) -> Callable[..., Measurement]:
        """`row(metric, value, unit, more=None)`: a row of this run, its extra holding bit-exactness,
        the latency resolution, `extra`, `more` and the run's transcript file (written now)."""
        common = {"matches_reference": self.matches_reference, "resolution": self.resolution, **extra,
                  **save_for_run(getattr(self, "transcript", None), provenance.run_id)}

        def row(metric: str, value: float, unit: str, more: dict[str, object] | None = None) -> Measurement:
            return provenance.measurement(self.model, self.model_sha256, metric, value, unit, {**common, **(more or {})})

        return row


class TargetFields(TypedDict):
    """The fields every TargetRun dataclass (ModelRun, TflmRun) fills from one run the same way."""

    model: str
    model_sha256: str
    board: str
    backend: str
    unit: str
    latency: float
    resolution: float
    static_ram: int
    stack_high_water: int
    flash: int
    output: np.ndarray
    reference: np.ndarray
    checksum: str
    transcript: Transcript | None


def target_fields(board: BoardSpec, source: ModelSource, value: np.ndarray, runner: Runner, firmware: Firmware,
                  report: InferenceReport, dtype: str, shape: Sequence[int],
                  transcript: Transcript | None) -> TargetFields:
    """What a run of `firmware` measured, from its inference `report`: the latency in the runner's
    unit, the whole firmware's static RAM and flash, the stack, and the output (of type `dtype`
    and shape `shape`) beside TFLM's host output for the same input `value`."""
    latency = runner.latency(report.ticks_min)
    return TargetFields(
        model=source.name,
        model_sha256=source.sha256,
        board=board.name,
        backend=runner.backend,
        unit=latency.unit,
        latency=latency.value,
        resolution=latency.resolution,
        static_ram=firmware.size.static_ram,
        stack_high_water=report.stack_high_water,
        flash=firmware.size.flash,
        output=np.frombuffer(report.output, dtype=DTYPES[dtype]).reshape(shape),
        reference=run_tflm(source.tflite, [value])[0].reshape(shape),
        checksum=report.checksum,
        transcript=transcript,
    )


def target_provenance(board: BoardSpec, backend: str, engine: str, engine_version: str,
                      compilers: Sequence[str], test_id: str = "") -> Provenance:
    """Provenance for a run's rows: the engine, and the versions of the compilers that built its
    firmware and of QEMU where it ran there."""
    tools = [*compilers] + (["qemu-system-arm"] if backend == "qemu" else [])
    return Provenance.collect(
        engine=engine,
        engine_version=engine_version,
        board=board.name,
        backend=backend,
        toolchain=toolchain_summary(*tools),
        test_id=test_id,
    )
