"""Flash as a budget, like SRAM: a model's firmware image by component, and the widening of weights
(engine.codegen.widening.choose_wide) cut back until the whole image fits the budget.

The optimised kernels run faster with int16 copies of the weights of some layers, at twice their
flash. The budget is the board's flash unless the user gives a smaller one (`--flash-budget`).
Everything else in the image (the harness, the kernel library, the generated code) is measured
from a real build, never guessed: when an image is over budget, the widening is cut by the
measured excess and the firmware rebuilt, best gain per byte kept first."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from engine.compiler import CompiledModel, with_wide_budget
from engine.errors import DoesNotFitError
from hil.firmware_build.firmware import Firmware
from hil.errors import RegionOverflowError
from hil.sizes import byte_count
from hil.targets.boardspec import BoardSpec

KERNEL_PREFIX = "tl_"  # the kernel library's functions
FIT_ATTEMPTS = 4  # builds after the first: each one removes at least the measured excess


def add_flash_budget_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flash-budget", type=byte_count, metavar="BYTES",
                        help="the most flash the firmware image may take (default: the board's flash); the optimised "
                        "kernels keep int16 copies of weights only where they fit, best gain per byte first")


@dataclass(frozen=True)
class FlashBreakdown:
    """A model firmware's flash (text + data) in four parts that add up to the image."""

    weights: int  # the model's constants as int8 words: weights, biases, requantisation constants, tables
    widened: int  # the int16 copies of weights beyond their int8 size
    code: int  # the generated per-layer functions and the kernel library
    lab: int  # the rest: start-up, drivers, protocol, C library
    budget: int

    @property
    def total(self) -> int:
        return self.weights + self.widened + self.code + self.lab

    def to_json(self) -> dict[str, int]:
        return {"flash_bytes": self.total, "flash_budget_bytes": self.budget, "flash_weights_bytes": self.weights,
                "flash_widened_weights_bytes": self.widened, "flash_code_bytes": self.code, "flash_lab_bytes": self.lab}

    def describe(self) -> str:
        return (f"flash {self.total:,} B of a {self.budget:,} B budget: weights {self.weights:,} B, widened weights "
                f"{self.widened:,} B, code {self.code:,} B, lab {self.lab:,} B")


def function_bytes(elf_path, prefixes: tuple[str, ...]) -> int:
    """Bytes of the functions in the ELF whose names start with one of `prefixes`."""
    from elftools.elf.elffile import ELFFile

    with open(elf_path, "rb") as handle:
        table = ELFFile(handle).get_section_by_name(".symtab")
        if table is None:
            return 0
        return sum(int(s["st_size"]) for s in table.iter_symbols()
                   if s["st_info"]["type"] == "STT_FUNC" and s.name.startswith(prefixes))


def flash_breakdown(firmware: Firmware, compiled: CompiledModel, budget: int) -> FlashBreakdown:
    generated = compiled.generated
    code = function_bytes(firmware.elf, (f"{generated.prefix}_", KERNEL_PREFIX))
    weights = generated.weight_bytes - generated.widened_bytes
    lab = firmware.size.flash - generated.weight_bytes - code
    return FlashBreakdown(weights, generated.widened_bytes, code, lab, budget)


def fit_flash(board: BoardSpec, compiled: CompiledModel, build: Callable[[CompiledModel], Firmware],
              budget: int | None = None) -> tuple[Firmware, CompiledModel, FlashBreakdown]:
    """Build `compiled`, cutting its widened weights until the image fits `budget` (default: the
    board's flash); DoesNotFitError, with the parts, when even int8 weights do not fit."""
    budget = board.flash_bytes if budget is None else budget
    if budget <= 0:
        raise DoesNotFitError(f"a flash budget of {budget:,} B leaves no room for any firmware")
    name = compiled.graph.name
    for _ in range(FIT_ATTEMPTS + 1):
        try:
            firmware = build(compiled)
            flash = firmware.size.flash
        except RegionOverflowError as error:
            if error.region != "FLASH":
                raise
            firmware, flash = None, board.flash_bytes + error.excess
        widened = compiled.generated.widened_bytes
        if flash <= budget and firmware is not None:
            return firmware, compiled, flash_breakdown(firmware, compiled, budget)
        if widened == 0:
            base = compiled.generated.weight_bytes
            raise DoesNotFitError(
                f"model {name} does not fit {board.name}'s flash: its image needs {flash:,} B with int8 weights "
                f"({base:,} B of constants, {flash - base:,} B of code and lab); the budget is {budget:,} B"
            )
        compiled = with_wide_budget(compiled, max(widened - (flash - budget), 0))
    raise DoesNotFitError(f"model {name}: no widening of its weights fitted {budget:,} B of flash after "
                          f"{FIT_ATTEMPTS + 1} builds")
