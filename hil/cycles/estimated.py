"""Estimated cycles for a run: `--cycle-model m4|m7|auto` attaches the execution profiler to the
run's QEMU, and the run's timed window is then estimated with the core and memory system named.
The estimate stands beside the instruction count, never in place of it."""
from __future__ import annotations

import argparse
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from hil.cycles.coremodel import CoreTiming, CycleEstimate, CycleModelError, MemorySystem, estimate, model_for
from hil.cycles.disassembly import disassemble
from hil.cycles.profile import Profiler, ProfileError
from hil.firmware_build.firmware import Firmware
from hil.run.runners.base import Latency, Runner
from hil.store.measurement import Measurement
from hil.targets.boardspec import BoardSpec

CYCLE_MODELS = ("auto", "m4", "m7")
ESTIMATED_UNIT = "estimated_cycles"
ESTIMATED_METRIC = "estimated_latency"

Estimator = Callable[[Firmware, Latency], CycleEstimate]


def add_cycle_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cycle-model", choices=CYCLE_MODELS, metavar="{auto,m4,m7}",
                        help="under QEMU, also estimate cycles (unit estimated_cycles) from an execution profile of "
                        "the same run, with the Cortex-M4 or M7 timing model and the memory system of the real board "
                        "the emulated board stands for (auto: that board's core); see `tinylab cycles validate` for "
                        "the model's measured error")


@contextmanager
def cycle_estimation(runner: Runner, board: BoardSpec, choice: str | None) -> Iterator[Estimator | None]:
    """While open, `runner`'s QEMU runs write an execution profile; the yielded function
    estimates the last run's timed window (None when `choice` is None) with the model `choice`
    names for `board` (hil.cycles.coremodel.model_for)."""
    if choice is None:
        yield None
        return
    core, memory = model_for(board.name, choice)
    with profiled(runner, board, core, memory) as estimator:
        yield estimator


@contextmanager
def profiled(runner: Runner, board: BoardSpec, core: CoreTiming, memory: MemorySystem) -> Iterator[Estimator]:
    """While open, `runner`'s QEMU runs write an execution profile (with `memory`'s caches) into a
    temporary folder; the yielded function estimates the last run's timed window with `core`."""
    if not hasattr(runner, "profiler"):
        raise CycleModelError(f"--cycle-model needs an emulated run: the {runner.backend} backend of board "
                              f"{board.name} measures {runner.unit} itself")
    with tempfile.TemporaryDirectory(prefix="tinylab-profile-") as folder:
        runner.profiler = Profiler(board, Path(folder), memory.plugin_caches())

        def estimate_last(firmware: Firmware, measured: Latency) -> CycleEstimate:
            return estimate_timed_window(runner.profiler, firmware, measured, core, memory)

        try:
            yield estimate_last
        finally:
            runner.profiler = None


def estimate_timed_window(profiler: Profiler, firmware: Firmware, measured: Latency, core: CoreTiming,
                          memory: MemorySystem) -> CycleEstimate:
    """The estimate of the fastest timed window of `profiler`'s last run of `firmware`, once its
    instruction count is checked against the `measured` latency of that window."""
    profile = profiler.collect()
    if not profile.windows:
        raise ProfileError("the profiled run has no timed window")
    window = min(profile.windows, key=lambda w: w.instructions)
    check_window(window.instructions, measured)
    return estimate(profile, window, disassemble(firmware.elf), core, memory)


def check_window(profiled: int, measured: Latency) -> None:
    """The profiled window must be the timed one: its instruction count within one timer tick of
    what the firmware's timer measured."""
    if measured.unit != "instructions" or abs(profiled - measured.value) > measured.resolution:
        raise ProfileError(f"the profiled window ran {profiled:,} instructions but the firmware's timer measured "
                           f"{measured} (one tick is {measured.resolution:g}): the profile is not of the timed window")


def estimate_summary(cycles: CycleEstimate) -> dict[str, object]:
    """The estimate in a run's JSON summary, beside (never instead of) its instruction count."""
    return {"estimated_cycles": round(cycles.cycles), "estimated_cycles_detail": cycles.to_json()}


def estimate_row(row: Callable[..., Measurement], cycles: CycleEstimate) -> Measurement:
    """The store's row of the estimate: its own metric (the instruction count stays the run's
    `latency`), in the unit estimated_cycles, with the model, its error bar and the parts in its extra."""
    return row(ESTIMATED_METRIC, cycles.cycles, ESTIMATED_UNIT, cycles.to_json())


def describe_estimate(detail: dict[str, object]) -> str:
    """One line: estimated cycles, CPI, and milliseconds only with the model's name and error bar."""
    return (f"{detail['estimated_cycles']:,} estimated_cycles (CPI {detail['cpi']:.2f}; {detail['cycle_model']}: "
            f"{detail['estimated_ms']:,.2f} ms, error {detail['error_bar']})")
