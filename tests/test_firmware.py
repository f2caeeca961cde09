"""Rendering and building firmware with the real arm-none-eabi-gcc."""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from hil.firmware_build.firmware import WorkloadSources, build_firmware, cpu_flags
from hil.errors import BuildError
from hil.experiments.calibration import CalibrationPlan
from hil.targets.boards import load_board

from conftest import EMULATED_BOARDS, needs_arm_gcc

pytestmark = needs_arm_gcc



def table(arena_bytes: int = 16) -> str:
    """A one-workload table whose arena is a static array of `arena_bytes`."""
    return f"""
#include <stddef.h>
#include "lab.h"
static uint8_t arena[{arena_bytes}];
static void nothing(void) {{}}
static const workload_t only = {{"only", NULL, 0, NULL, 0, arena, sizeof arena, nothing}};
const workload_t *const lab_workloads[] = {{&only}};
const uint32_t lab_workload_count = 1;
void lab_workloads_init(void) {{}}
"""


@pytest.mark.parametrize("board_name", EMULATED_BOARDS)
def test_calibration_firmware_builds_and_reports_its_size(board_name, tmp_path):
    board = load_board(board_name)
    firmware = build_firmware(board, CalibrationPlan().sources(), cache_dir=tmp_path)
    assert firmware.elf.is_file() and not firmware.from_cache
    assert 1000 < firmware.size.text < 64 * 1024
    assert firmware.size.bss >= CalibrationPlan().arena_bytes
    assert firmware.size.flash == firmware.size.text + firmware.size.data
    assert firmware.stack_bytes == board.ram.length - firmware.size.static_ram


def test_unchanged_firmware_comes_from_the_cache(tmp_path):
    board = load_board("qemu-f746")
    first = build_firmware(board, CalibrationPlan().sources(), cache_dir=tmp_path)
    second = build_firmware(board, CalibrationPlan().sources(), cache_dir=tmp_path)
    assert second.from_cache and second.digest == first.digest and second.elf == first.elf
    other = build_firmware(board, CalibrationPlan(repeats=7).sources(), cache_dir=tmp_path)
    assert not other.from_cache and other.digest != first.digest
    again = build_firmware(board, CalibrationPlan().sources(), optimize="Os", cache_dir=tmp_path)
    assert not again.from_cache and again.optimize == "Os"


def calling_table(arena_bytes: int) -> str:
    """table() whose workload calls lab_scale, a function of a library."""
    return table(arena_bytes).replace("static void nothing(void) {}", """extern int lab_scale(int x);
static volatile int sink;
static void nothing(void) { sink = lab_scale(sink); }""")


def test_a_library_is_compiled_once_and_links_the_image_its_sources_would(tmp_path):
    board, cache = load_board("qemu-f412"), tmp_path / "cache"
    library = tmp_path / "scale.c"
    library.write_text("int lab_scale(int x);\nint lab_scale(int x) { return 3 * x + 1; }\n")
    first = build_firmware(board, WorkloadSources(files={"table.c": calling_table(16)}, library=(library,)),
                           cache_dir=cache)
    objects = sorted((cache / "objects").glob("*.o"))
    assert [o.name.split("-")[0] for o in objects] == ["scale"]
    compiled_at = objects[0].stat().st_mtime_ns
    second = build_firmware(board, WorkloadSources(files={"table.c": calling_table(32)}, library=(library,)),
                            cache_dir=cache)
    assert not second.from_cache and second.digest != first.digest
    assert sorted((cache / "objects").glob("*.o")) == objects and objects[0].stat().st_mtime_ns == compiled_at

    # The same link with the C file in place of its object gives the same bytes.
    direct = tmp_path / "direct"
    shutil.copytree(first.elf.parent, direct)
    link = shlex.split((direct / "build-command.txt").read_text().splitlines()[-1])
    link = [str(library) if word == str(objects[0]) else word for word in link]
    assert str(library) in link
    link[link.index("-o") + 1] = "direct.elf"
    subprocess.run(link, cwd=direct, check=True, capture_output=True)
    images = []
    for elf in (first.elf, direct / "direct.elf"):
        subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(elf) + ".bin"], check=True)
        images.append(Path(str(elf) + ".bin").read_bytes())
    assert images[0] == images[1]

    library.write_text("int lab_scale(int x);\nint lab_scale(int x) { return 5 * x + 1; }\n")
    build_firmware(board, WorkloadSources(files={"table.c": calling_table(16)}, library=(library,)), cache_dir=cache)
    assert len(list((cache / "objects").glob("*.o"))) == 2  # changed content, compiled anew


def test_compiler_error_is_surfaced_with_its_output(tmp_path):
    broken = WorkloadSources(files={"table.c": table() + "\nint broken(void) { return undefined_name; }\n"})
    with pytest.raises(BuildError) as caught:
        build_firmware(load_board("qemu-f746"), broken, cache_dir=tmp_path)
    assert "arm-none-eabi-gcc failed building firmware for qemu-f746" in str(caught.value)
    assert "undefined_name" in str(caught.value)


def test_firmware_too_big_for_ram_names_the_numbers(tmp_path):
    board = load_board("qemu-f412")
    huge = WorkloadSources(files={"table.c": table(board.ram.length + 4096)})
    with pytest.raises(BuildError, match=r"does not fit qemu-f412: RAM overflowed by \d+ B \(the board has 262144 B of ram\)"):
        build_firmware(board, huge, cache_dir=tmp_path)


def test_too_little_stack_left_is_refused_with_the_numbers(tmp_path):
    board = load_board("qemu-f412")
    leaves = board.min_stack_bytes // 2
    almost = WorkloadSources(files={"table.c": table(board.ram.length - leaves)})
    with pytest.raises(BuildError, match=r"leaves \d+ B of its 262144 B RAM for the stack, less than the board's min_stack_bytes"):
        build_firmware(board, almost, cache_dir=tmp_path)


def test_unknown_optimisation_level_is_refused(tmp_path):
    with pytest.raises(BuildError, match="optimisation level 'O9'"):
        build_firmware(load_board("qemu-f746"), CalibrationPlan().sources(), optimize="O9", cache_dir=tmp_path)


def test_cpu_flags_follow_the_board():
    assert cpu_flags(load_board("qemu-f412"))[:2] == ["-mcpu=cortex-m4", "-mthumb"]
    assert "-mfpu=fpv4-sp-d16" in cpu_flags(load_board("qemu-f412"))
