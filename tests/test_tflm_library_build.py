"""`tinylab tflm build`: the make line TFLM's own Makefile gets for each board, the checks made
before it runs, where the library's headers go, and the cache. Building for real needs a TFLM
checkout: set TINYLAB_TFLM_SRC (and TINYLAB_TFLM_DOWNLOADS for its fetched third-party folders)."""
from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from hil.firmware_build.tflm_baseline_library import TflmForAnotherCoreError, load_tflm_library
from hil.firmware_build.tflm_library_build import (CHECKOUT_DOWNLOADS, MAKEFILE, MANIFEST_NAME, THIRD_PARTY_FOLDERS,
                                                   TflmBuildError, TflmBuildSpec, build_key, build_tflm_library, cached_builds,
                                                   header_destination, make_command, missing_downloads, toolchain_root)
from hil.progress import ProgressBar
from hil.targets.boards import load_board
from tinylab_cli.main import main

from conftest import needs_arm_gcc

TFLM_SRC = os.environ.get("TINYLAB_TFLM_SRC", "")
needs_tflm_src = pytest.mark.skipif(not TFLM_SRC, reason="set TINYLAB_TFLM_SRC to a tflite-micro checkout "
                                    "(and TINYLAB_TFLM_DOWNLOADS to its fetched third-party folders) to build TFLM")


def fake_checkout(root: Path, downloads: tuple[str, ...] = THIRD_PARTY_FOLDERS) -> Path:
    """A folder shaped like a TFLM checkout (its Makefile's path, the downloads folder): enough for
    the checks made before make runs, which never runs here."""
    (root / MAKEFILE).parent.mkdir(parents=True)
    (root / MAKEFILE).write_text("# not TFLM's Makefile\n")
    for name in downloads:
        (root / CHECKOUT_DOWNLOADS / name).mkdir(parents=True)
    return root


@needs_arm_gcc
@pytest.mark.parametrize("board, arch, fpu", [
    ("qemu-f746", "cortex-m7+fp", "fpv5-sp-d16"),
    ("qemu-f412", "cortex-m4+fp", "fpv4-sp-d16"),
    ("qemu-h743", "cortex-m7+fp", "fpv5-d16"),
])
def test_the_make_line_names_the_boards_core_fpu_and_toolchain(tmp_path, board, arch, fpu):
    spec = TflmBuildSpec(tmp_path, load_board(board), "reference")
    variables = spec.make_variables(toolchain_root(), tmp_path / "gen")
    line = " ".join(make_command(variables, ["microlite"], jobs=2))
    assert line == (f"make -f tensorflow/lite/micro/tools/make/Makefile TARGET=cortex_m_generic TARGET_ARCH={arch} "
                    f"FPU={fpu} BUILD_TYPE=release TARGET_TOOLCHAIN_ROOT={Path(shutil.which('arm-none-eabi-gcc')).parent}/ "
                    f"BASE_GENDIR={tmp_path / 'gen'} microlite -j2")
    cmsis = TflmBuildSpec(tmp_path, load_board(board), "cmsis-nn", "default", downloads=tmp_path / "dl",
                          cmsis_nn=tmp_path / "nn").make_variables("/opt/gcc/bin/", tmp_path / "gen")
    assert (cmsis["OPTIMIZED_KERNEL_DIR"], cmsis["BUILD_TYPE"], cmsis["TARGET_TOOLCHAIN_ROOT"]) == ("cmsis_nn", "default", "/opt/gcc/bin/")
    assert (cmsis["DOWNLOADS_DIR"], cmsis["CMSIS_NN_PATH"]) == (str(tmp_path / "dl"), str(tmp_path / "nn"))


@needs_arm_gcc
def test_overrides_join_the_make_line_and_an_older_makefile_gets_gendir(tmp_path):
    """Variables the Makefile sets can be overridden on the make line (and key the cache); a
    Makefile without BASE_GENDIR (tflite-micro before late 2022) is given GENDIR instead."""
    checkout = fake_checkout(tmp_path / "tflm")
    ofast = (("KERNEL_OPTIMIZATION_LEVEL", "-Ofast"),)
    spec = TflmBuildSpec(checkout, load_board("qemu-h743"), "reference", overrides=ofast)
    variables = spec.make_variables("/usr/bin/", tmp_path / "gen")
    assert variables["KERNEL_OPTIMIZATION_LEVEL"] == "-Ofast"
    assert variables["GENDIR"] == f"{tmp_path / 'gen'}/{spec.target_name}/" and "BASE_GENDIR" not in variables
    (checkout / MAKEFILE).write_text("BASE_GENDIR ?= gen\n")
    assert spec.make_variables("/usr/bin/", tmp_path / "gen")["BASE_GENDIR"] == str(tmp_path / "gen")
    plain = TflmBuildSpec(checkout, load_board("qemu-h743"), "reference")
    assert build_key(spec, "713b6ed", False) != build_key(plain, "713b6ed", False)


def test_a_soft_float_board_gets_tflms_soft_float_arch_and_no_fpu():
    soft = replace(load_board("qemu-f412"), name="soft-m4", fpu="none")
    variables = TflmBuildSpec(Path("."), soft).make_variables("/usr/bin/", Path("gen"))
    assert variables["TARGET_ARCH"] == "cortex-m4" and "FPU" not in variables


def test_a_core_tflms_makefile_cannot_build_is_refused_by_name():
    soft_m33 = replace(load_board("qemu-f746"), name="soft-m33", core="cortex-m33", fpu="none")
    with pytest.raises(TflmBuildError, match="no soft-float cortex-m33 build; it builds for .*cortex-m33 \\(hard float\\)"):
        TflmBuildSpec(Path("."), soft_m33)
    with pytest.raises(TflmBuildError, match="kernels 'cmsis_nn': choose one of reference, cmsis-nn"):
        TflmBuildSpec(Path("."), load_board("qemu-f746"), "cmsis_nn")


@needs_arm_gcc
def test_a_folder_that_is_not_a_checkout_is_refused(tmp_path):
    with pytest.raises(TflmBuildError, match=f"{tmp_path} is not a TFLM checkout: no {MAKEFILE}"):
        build_tflm_library(TflmBuildSpec(tmp_path, load_board("qemu-f412")), cache_dir=tmp_path / "cache")


@needs_arm_gcc
def test_offline_downloads_must_hold_every_folder_the_makefile_fetches(tmp_path):
    checkout = fake_checkout(tmp_path / "tflm", downloads=("flatbuffers", "gemmlowp", "ruy", "kissfft", "pigweed", "cmsis"))
    spec = TflmBuildSpec(checkout, load_board("qemu-f412"), "cmsis-nn", downloads=checkout / CHECKOUT_DOWNLOADS)
    assert missing_downloads(spec) == ["cmsis_nn"]
    with pytest.raises(TflmBuildError, match="lacks cmsis_nn: TFLM's Makefile would try to download them"):
        build_tflm_library(spec, cache_dir=tmp_path / "cache")
    assert missing_downloads(replace(spec, kernels="reference")) == []
    assert not (tmp_path / "cache").exists()  # nothing ran


def test_headers_keep_tflms_paths_and_third_party_ones_go_under_third_party(tmp_path):
    checkout = fake_checkout(tmp_path / "tflm")
    spec = TflmBuildSpec(checkout, load_board("qemu-f746"), "cmsis-nn", cmsis_nn=tmp_path / "CMSIS-NN")
    assert header_destination("tensorflow/lite/micro/micro_interpreter.h", spec) == \
        Path("tensorflow/lite/micro/micro_interpreter.h")
    assert header_destination(f"{CHECKOUT_DOWNLOADS}/flatbuffers/include/flatbuffers/base.h", spec) == \
        Path("third_party/flatbuffers/include/flatbuffers/base.h")
    assert header_destination(str(tmp_path / "CMSIS-NN/Include/arm_nnfunctions.h"), spec) == \
        Path("third_party/cmsis_nn/Include/arm_nnfunctions.h")
    assert header_destination("/elsewhere/x.h", spec) is None


def test_the_cli_needs_a_checkout_and_lists_an_empty_cache(capsys):
    assert main(["tflm", "build", "--board", "qemu-f412"]) == 2
    assert "build needs --src TFLM_CHECKOUT" in capsys.readouterr().err
    assert main(["tflm", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["libraries"] == []


def test_progress_off_a_terminal_prints_a_few_lines_not_one_per_object():
    stream = io.StringIO()
    bar = ProgressBar(200, "make", stream=stream, interactive=False, quiet_steps=10)
    for i in range(200):
        bar.advance(f"object{i}.o")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("make [") and "200/200" in lines[-1]
    jumps = io.StringIO()  # objects counted a few at a time, as make's progress is
    bar = ProgressBar(200, "make", stream=jumps, interactive=False, quiet_steps=10)
    for done in (7, 19, 45, 46, 120, 200):
        bar.advance("x.o", to=done)
    assert [line.split()[2] for line in jumps.getvalue().splitlines()] == ["45/200", "120/200", "200/200"]


@needs_arm_gcc
@needs_tflm_src
def test_a_real_build_for_the_cortex_m4_is_a_library_the_lab_accepts_for_it_only(tmp_path):
    """Runs TFLM's Makefile (minutes): the reference kernels for qemu-f412, offline with
    TINYLAB_TFLM_DOWNLOADS; then the same request comes from the cache."""
    downloads = os.environ.get("TINYLAB_TFLM_DOWNLOADS")
    spec = TflmBuildSpec(Path(TFLM_SRC), load_board("qemu-f412"), "reference",
                         downloads=Path(downloads) if downloads else None)
    seen: list[int] = []
    build = build_tflm_library(spec, jobs=os.cpu_count() or 1, cache_dir=tmp_path, progress=lambda d, t, n: seen.append(d))
    assert not build.from_cache and seen and build.archive.is_file() and (build.directory / MANIFEST_NAME).is_file()
    assert build.manifest["make_command"].count("TARGET_ARCH=cortex-m4+fp FPU=fpv4-sp-d16 BUILD_TYPE=release") == 1
    library = load_tflm_library(build.directory, load_board("qemu-f412"))
    assert library.fp_arch == "VFPv4-D16" and library.strips_error_strings and not library.cmsis_nn
    with pytest.raises(TflmForAnotherCoreError, match="Cortex-M4's FPU"):
        load_tflm_library(build.directory, load_board("qemu-f746"))
    again = build_tflm_library(spec, cache_dir=tmp_path)
    assert again.from_cache and again.directory == build.directory
    assert [b.directory for b in cached_builds(tmp_path)] == [build.directory]
