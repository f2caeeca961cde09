"""Where a model's firmware keeps its input: a staging copy beside the arena where the board has
room for one, else only the input's own slot inside the arena (hil.firmware_build.firmware.InputSlot)."""
from __future__ import annotations

from dataclasses import dataclass

from engine.compiler import CompiledModel
from engine.errors import DoesNotFitError
from hil.firmware_build.firmware import InputSlot
from hil.targets.boardspec import BoardSpec

# The harness's own static RAM besides the staging copy: the command buffer (513 B), its
# counters, the workload table, the timer's state. tests/test_modelrun.py checks a real build
# against it, so that the decision below never promises room that is not there.
HARNESS_STATIC_BYTES = 1024
# The section the arena goes to where the input is loaded in place: .noinit, which start-up does
# not clear, so that an input written there before boot survives (engine/templates/model.c.j2).
ARENA_SECTION_DEFINE = 'TL_ARENA_SECTION=".noinit.{prefix}_arena"'


@dataclass(frozen=True)
class StagingBudget:
    """Whether a staging copy of the input fits: arena and the model's statics, the copy, the
    harness and the board's minimum stack, against the board's SRAM."""

    board: str
    sram: int
    model_static: int
    staging: int
    harness: int
    stack: int

    @property
    def needed(self) -> int:
        return self.model_static + self.staging + self.harness + self.stack

    @property
    def fits(self) -> bool:
        return self.needed <= self.sram

    def describe(self) -> str:
        return (f"arena and model statics {self.model_static:,} + staging copy {self.staging:,} + harness "
                f"{self.harness:,} + minimum stack {self.stack:,} = {self.needed:,} B, against {self.sram:,} B "
                f"of SRAM on {self.board}")


def staging_budget(board: BoardSpec, compiled: CompiledModel) -> StagingBudget:
    generated = compiled.generated
    return StagingBudget(
        board=board.name,
        sram=board.sram_bytes,
        model_static=generated.arena_bytes + generated.static_scratch_bytes,
        staging=generated.input_bytes,
        harness=HARNESS_STATIC_BYTES,
        stack=board.min_stack_bytes,
    )


def choose_input_staging(board: BoardSpec, compiled: CompiledModel, wanted: bool | None = None) -> bool:
    """Whether the firmware keeps a staging copy of the input: where it fits (`wanted` None), or
    as `wanted` says. Asking for a copy that does not fit is refused with the numbers."""
    budget = staging_budget(board, compiled)
    if wanted is None:
        return budget.fits
    if wanted and not budget.fits:
        raise DoesNotFitError(f"model {compiled.graph.name}: no room for a staging copy of its input: {budget.describe()}")
    return wanted


def input_slot(compiled: CompiledModel) -> InputSlot:
    """The model's input inside its arena, where `db` and preloads write without a staging copy."""
    generated = compiled.generated
    return InputSlot(
        arena_symbol=f"{generated.prefix}_arena",
        offset=generated.input_offset,
        input_bytes=generated.input_bytes,
        output_bytes=generated.output_bytes,
    )


def arena_section_define(compiled: CompiledModel) -> str:
    """The -D definition that puts the model's arena in .noinit."""
    return ARENA_SECTION_DEFINE.format(prefix=compiled.generated.prefix)
