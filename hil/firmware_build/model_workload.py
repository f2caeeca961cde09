"""A compiled model as a workload of the harness: the fit checks before a build, the workload table
and sources, how the firmware prints the output, and the model's share of the static RAM."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from engine.compiler import KERNELS_DIR, CompiledModel, kernel_sources
from engine.errors import DoesNotFitError
from hil.firmware_build.firmware import Firmware, WorkloadSources, render_template
from hil.firmware_build.inputwire import RAW, InputWire
from hil.firmware_build.inputplacement import arena_section_define, input_slot
from hil.firmware_build.staticram import StaticRamSplit, split_static_ram
from hil.targets.boardspec import BoardSpec


def check_fits(board: BoardSpec, compiled: CompiledModel, flash_budget: int | None = None) -> None:
    """Refuse, with the numbers, a model whose plan or int8 weights cannot fit the board at all
    (int16 copies of weights are cut to fit by hil.firmware_build.flash.fit_flash)."""
    name = compiled.graph.name
    arena, scratch = compiled.plan.arena_bytes, compiled.generated.static_scratch_bytes
    weights = compiled.generated.weight_bytes - compiled.generated.widened_bytes
    budget = board.flash_bytes if flash_budget is None else flash_budget
    room = board.sram_bytes - board.min_stack_bytes
    if arena + scratch > room:
        needs = f"its arena needs {arena:,} B" + (f" and its kernels' static scratch {scratch:,} B" if scratch else "")
        raise DoesNotFitError(
            f"model {name} does not fit {board.name}: {needs} of SRAM; the board has "
            f"{board.sram_bytes:,} B, of which {board.min_stack_bytes:,} B are kept for the stack"
            + ("" if compiled.patched else "; --patches auto runs its first ops patch by patch if that fits")
        )
    if weights > budget:
        room = f"the board has {board.flash_bytes:,} B" if flash_budget is None else f"the flash budget is {budget:,} B"
        raise DoesNotFitError(f"model {name} does not fit {board.name}: its weights need {weights:,} B of flash; {room}")


OUTPUT_TYPES = {"int8": "LAB_OUTPUT_INT8", "uint8": "LAB_OUTPUT_UINT8", "int16": "LAB_OUTPUT_INT16",
                "int32": "LAB_OUTPUT_INT32", "float32": "LAB_OUTPUT_FLOAT32"}


def float32_parts(value: float) -> tuple[int, int]:
    """(mantissa, exponent) with value == mantissa * 2**exponent exactly, for the value rounded to
    float32 (a .tflite file's scales are float32); the mantissa is odd or 0."""
    exact = float(np.float32(value))
    if exact == 0.0:
        return 0, 0
    fraction, exponent = math.frexp(exact)
    mantissa, exponent = int(fraction * (1 << 24)), exponent - 24
    while mantissa % 2 == 0:
        mantissa, exponent = mantissa // 2, exponent + 1
    return mantissa, exponent


def output_format(compiled: CompiledModel) -> dict[str, object]:
    """How the firmware prints the model's output in `m-results-[...]`."""
    tensor = compiled.graph.tensors[compiled.graph.outputs[0]]
    return tensor_output_format(tensor.dtype, tensor.scale, tensor.zero_point)


def tensor_output_format(dtype: str, scale, zero_point) -> dict[str, object]:
    """An output tensor's print format: its element type, and for a quantised integer tensor (one
    scale) the scale as mantissa * 2^exponent and the zero point."""
    quantised = dtype in ("int8", "uint8", "int16") and len(scale) == 1 and scale[0] > 0
    mantissa, exponent = float32_parts(scale[0]) if quantised else (0, 0)
    return {
        "dtype": dtype,
        "type": OUTPUT_TYPES[dtype],
        "scale": float(np.float32(scale[0])) if quantised else 0.0,
        "scale_mantissa": mantissa,
        "scale_exponent": exponent,
        "zero_point": int(zero_point[0]) if quantised and zero_point else 0,
    }


def model_workload(compiled: CompiledModel, name: str, *, staged: bool = True,
                   input_wire: InputWire = RAW) -> WorkloadSources:
    """The model's workload table and sources; `staged`: with a staging copy of the input, else
    with the input loaded in place (its slot in the arena, the arena in .noinit); `db` bytes
    converted as `input_wire` says."""
    return replace(models_workload([(compiled, name)], staged=staged), input_wire=input_wire)


def models_workload(models: list[tuple[CompiledModel, str]], *, staged: bool = True) -> WorkloadSources:
    """A workload table of one or more compiled models (distinct C prefixes), each a workload
    named as given (`select NAME%` picks one; the first is current at boot). In place (`staged`
    False) only for one model: its input slot is where `db` writes."""
    if not staged and len(models) != 1:
        raise ValueError("an input loaded in place takes a firmware of one model")
    files: dict[str, str] = {}
    for compiled, _ in models:
        files.update(compiled.generated.files)
    files["model_workloads.c"] = render_template(
        "model/workloads.c.j2",
        models=[{"prefix": c.generated.prefix, "name": name, "output": output_format(c)} for c, name in models],
    )
    return WorkloadSources(
        files=files,
        input_capacity=max(c.generated.input_bytes for c, _ in models),
        library=kernel_sources(),
        include_dirs=(KERNELS_DIR,),
        label=models[0][1] if len(models) == 1 else f"{len(models)} models",
        input_slot=None if staged else input_slot(models[0][0]),
        defines=() if staged else (arena_section_define(models[0][0]),),
    )


def model_static_ram(firmware: Firmware, compiled: CompiledModel) -> StaticRamSplit:
    """The firmware's static RAM, split between the model (its generated sources and kernel
    library) and the lab, from the ELF."""
    sources = [n for n in compiled.generated.files if n.endswith(".c")] + [str(p) for p in kernel_sources()]
    return split_static_ram(firmware, sources, f"{compiled.generated.prefix}_arena")
