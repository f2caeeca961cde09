"""What a TFLM library was built for, read from its objects' build attributes (real objects from
arm-none-eabi-gcc, not fakes), and the TFLM columns of a table filled from several libraries:
each board takes the library built for its core and FPU, and an empty column says why."""
from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from hil.experiments.tflm_columns import TFLM_ENGINES, tflm_columns, unavailable_row
from hil.experiments.models import ModelSource
from hil.firmware_build.firmware import cpu_flags
from hil.firmware_build.tflm_baseline_library import (MANIFEST_NAME, TFLM_DIR_ENV, TflmForAnotherCoreError, TflmLibrary,
                                                      TflmUnavailable, load_tflm_library, read_members, tflm_dirs_from,
                                                      try_tflm_library)
from hil.targets.boards import load_board
from hil.targets.boardspec import BoardSpec

from test_tflm_baseline import INVOKE_ONLY, compile_archive, needs_gxx, write_headers

CMSIS_CALL = INVOKE_ONLY + 'extern "C" int arm_convolve_wrapper_s8(int x) { return x; }\n'


@pytest.fixture(scope="module")
def boards() -> dict[str, BoardSpec]:
    return {name: load_board(name) for name in ("qemu-f746", "qemu-f412", "qemu-h743")}


def library_for(root: Path, board: BoardSpec, source: str = INVOKE_ONLY) -> Path:
    """A TFLM-shaped folder whose archive is compiled with the board's CPU flags."""
    write_headers(root)
    compile_archive(root / "lib/libtensorflow-microlite.a", {"interp.cc": source}, [*cpu_flags(board), "-std=gnu++17"],
                    includes=root / "include")
    return root


# ---- the attributes of real objects ---------------------------------------------------------------


@needs_gxx
def test_the_fpu_architecture_tells_a_cortex_m7_build_from_a_cortex_m4_build(tmp_path, boards):
    m7 = read_members(library_for(tmp_path / "m7", boards["qemu-f746"]) / "lib/libtensorflow-microlite.a")
    m4 = read_members(library_for(tmp_path / "m4", boards["qemu-f412"]) / "lib/libtensorflow-microlite.a")
    assert [(m.cpu_arch, m.fp_arch, m.vfp_args, m.hardfp_use) for m in m7] == [
        ("v7E-M", "FPv5/FP-D16 for ARMv8", "VFP registers", "SP only")]
    assert [(m.cpu_arch, m.fp_arch, m.vfp_args, m.hardfp_use) for m in m4] == [
        ("v7E-M", "VFPv4-D16", "VFP registers", "SP only")]
    # This GCC names the architecture, not the core, in Tag_CPU_name: the two look alike there.
    assert m7[0].cpu_name == m4[0].cpu_name == "7E-M"


@needs_gxx
def test_a_cortex_m7_library_is_refused_for_a_cortex_m4_board_naming_the_fpv5_instructions(tmp_path, boards):
    root = library_for(tmp_path, boards["qemu-f746"])
    with pytest.raises(TflmForAnotherCoreError) as caught:
        load_tflm_library(root, boards["qemu-f412"])
    message = str(caught.value)
    assert "FPv5/FP-D16 for ARMv8" in message and "VFPv4-D16" in message and "vrinta" in message
    assert "fault" in message and "tinylab tflm build --board qemu-f412" in message
    reason = try_tflm_library(root, boards["qemu-f412"])
    assert isinstance(reason, TflmUnavailable) and reason.kind == "another-core" and reason.engine == "tflm"
    library = load_tflm_library(root, boards["qemu-f746"])
    assert library.fp_arch == "FPv5/FP-D16 for ARMv8" and library.hard_float


@needs_gxx
def test_a_cortex_m4_library_is_refused_for_a_cortex_m7_board(tmp_path, boards):
    root = library_for(tmp_path, boards["qemu-f412"], CMSIS_CALL)
    for board in ("qemu-f746", "qemu-h743"):
        reason = try_tflm_library(root, boards[board])
        assert isinstance(reason, TflmUnavailable) and reason.kind == "another-core"
        assert reason.engine == "tflm-cmsis-nn"  # its kernels are known although it is refused
        assert "a Cortex-M4's FPU (FPv4)" in reason.reason and "VFPv4-D16" in reason.reason
    assert load_tflm_library(root, boards["qemu-f412"]).fp_arch == "VFPv4-D16"


@needs_gxx
def test_a_single_precision_cortex_m7_library_serves_the_double_precision_h743(tmp_path, boards):
    library = load_tflm_library(library_for(tmp_path, boards["qemu-f746"]), boards["qemu-h743"])
    assert library.engine == "tflm" and boards["qemu-h743"].fpu == "fpv5-d16"


@needs_gxx
def test_a_core_named_in_tag_cpu_name_must_be_the_boards(tmp_path, boards):
    """An object that names its core (an assembler's .cpu, another compiler) is checked by it."""
    root = library_for(tmp_path, boards["qemu-f746"])
    assembly = tmp_path / "m4.s"
    assembly.write_text(".cpu cortex-m4\n.fpu fpv5-sp-d16\n.eabi_attribute 28, 1\n.eabi_attribute 27, 1\n"
                        ".thumb\n.text\n.global tinylab_m4_only\ntinylab_m4_only: bx lr\n")
    subprocess.run(["arm-none-eabi-as", "-mfloat-abi=hard", str(assembly), "-o", str(tmp_path / "m4.o")], check=True)
    subprocess.run(["arm-none-eabi-ar", "rs", str(root / "lib/libtensorflow-microlite.a"), str(tmp_path / "m4.o")],
                   check=True, capture_output=True)
    assert [m.cpu_name for m in read_members(root / "lib/libtensorflow-microlite.a")] == ["7E-M", "Cortex-M4"]
    with pytest.raises(TflmForAnotherCoreError, match="built for a Cortex-M4 .*Tag_CPU_name.*is a cortex-m7"):
        load_tflm_library(root, boards["qemu-f746"])


@needs_gxx
def test_the_manifest_of_tflm_build_tells_soft_float_builds_apart(tmp_path):
    """Soft-float Cortex-M4 and -M7 objects carry the same attributes; the manifest that
    `tinylab tflm build` leaves says which core the library is for."""
    f746 = load_board("qemu-f746")
    soft_m7 = replace(f746, name="soft-m7", fpu="none")
    soft_m4 = replace(f746, name="soft-m4", core="cortex-m4", fpu="none")
    root = library_for(tmp_path, soft_m7)
    assert load_tflm_library(root, soft_m4).engine == "tflm"  # the attributes alone cannot tell
    (root / MANIFEST_NAME).write_text(json.dumps({"core": "cortex-m7", "fpu": "none", "build_type": "release"}))
    assert load_tflm_library(root, soft_m7).manifest["core"] == "cortex-m7"
    with pytest.raises(TflmForAnotherCoreError, match="built by tinylab tflm build for cortex-m7 \\(none\\)"):
        load_tflm_library(root, soft_m4)


# ---- the TFLM columns from several libraries ------------------------------------------------------


def test_several_directories_come_from_the_arguments_or_the_environment(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert tflm_dirs_from([a, b, a], {}) == [a, b]  # each once, in order
    assert tflm_dirs_from(None, {TFLM_DIR_ENV: f"{a}:{b}"}) == [a, b]
    assert tflm_dirs_from([b], {TFLM_DIR_ENV: str(a)}) == [b]  # the arguments win
    assert isinstance(tflm_dirs_from([], {TFLM_DIR_ENV: " : "}), TflmUnavailable)


@needs_gxx
def test_each_board_takes_the_libraries_built_for_its_core(tmp_path, boards):
    m7_ref = library_for(tmp_path / "m7-ref", boards["qemu-f746"])
    m7_cmsis = library_for(tmp_path / "m7-cmsis", boards["qemu-f746"], CMSIS_CALL)
    m4_ref = library_for(tmp_path / "m4-ref", boards["qemu-f412"])
    given = [m4_ref, m7_ref, m7_cmsis]

    f746 = tflm_columns(boards["qemu-f746"], given, {})
    assert {e: c.root for e, c in f746.columns.items()} == {"tflm": m7_ref.resolve(), "tflm-cmsis-nn": m7_cmsis.resolve()}

    f412 = tflm_columns(boards["qemu-f412"], given, {})
    assert isinstance(f412.columns["tflm"], TflmLibrary) and f412.columns["tflm"].root == m4_ref.resolve()
    empty = f412.columns["tflm-cmsis-nn"]
    assert isinstance(empty, TflmUnavailable) and empty.kind == "another-core" and str(m7_cmsis) in empty.reason
    assert str(m7_ref) not in empty.reason  # the reference build's refusal belongs to the other column

    alone = tflm_columns(boards["qemu-f746"], [m7_ref], {}).columns["tflm-cmsis-nn"]
    assert alone.kind == "not-given" and "no TFLM + CMSIS-NN library for qemu-f746" in alone.reason
    assert "tinylab tflm build --board qemu-f746" in alone.reason

    missing = tflm_columns(boards["qemu-f746"], [tmp_path / "absent"], {})
    assert all(missing.columns[e].kind == "invalid-library" and "does not exist" in missing.columns[e].reason
               for e in TFLM_ENGINES)
    none = tflm_columns(boards["qemu-f746"], None, {})
    assert all(none.columns[e].kind == "not-given" for e in TFLM_ENGINES)


def test_an_empty_column_is_stored_with_its_reason(boards):
    source = ModelSource("m", b"x")
    why = TflmUnavailable("it does not fit", "does-not-fit", "tflm")
    row = unavailable_row(boards["qemu-h743"], source, "tflm", why, why)
    assert (row.engine, row.board, row.backend, row.metric, row.value) == ("tflm", "qemu-h743", "qemu", "unavailable", 1.0)
    assert json.loads(row.extra) == {"reason": "it does not fit", "kind": "does-not-fit"}
