"""The TFLM baseline on the target (hil.experiments.tflm_baseline): finding and validating the user's TFLM
library, the generated C++ workload, and the build + link + QEMU path.

No TFLM library can be obtained on this machine (TFLM and CMSIS-NN are on no package registry the
lab may use), so the build-and-run tests link a test-only STAND-IN library built here: headers that
declare the small subset of TFLM's API the generated workload uses (MicroInterpreter,
MicroMutableOpResolver, GetModel, TfLiteTensor), implemented trivially (the "model" is a byte
transform, not a network). What they prove: the harness compiles a C++ workload with
arm-none-eabi-g++, links it against a user's static library, runs it under QEMU through the same
runner and protocol as the engine, reads TFLM's arena figure from the target, rebuilds with that
arena and measures latency, stack, SRAM and flash; the harness leaves the library's arena alone;
the output travels back bit for bit. What they do not prove: that a real TFLM build compiles
against the generated source, or any figure of TFLM itself. The stand-in defines a marker symbol,
so that the lab labels it "test-stand-in-not-tflm" and never measures or reports it as TFLM."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hil.firmware_build.firmware import CXX_COMPILER, cpu_flags
from hil.firmware_build.tflm_baseline_library import STAND_IN_ENGINE
from hil.firmware_build.tflm_baseline_workload import (
    RESOLVER_METHODS,
    _check_cxx_toolchain,
    inspect_tflite,
    render_workload,
    require_cxx_toolchain,
    resolver_calls,
)
from hil.errors import BuildError, LabError
from hil.experiments.models import ModelSource, default_input, resolve_model
from hil.experiments.tflm_baseline import (
    NO_LIBRARY_REASON,
    TFLM_DIR_ENV,
    TflmDoesNotFitError,
    TflmLibrary,
    TflmLibraryError,
    TflmModelError,
    TflmRun,
    TflmUnavailable,
    find_tflm_library,
    load_tflm_library,
    measure_tflm_baseline,
    run_tflm_baseline,
    sizing_arena,
    tflm_dir_from,
    tflm_provenance,
)
from hil.experiments.tflm_baseline import arena_room
from hil.experiments.tflm_columns import format_tflm_column
from hil.targets.boards import load_board
from hil.targets.boardspec import BoardSpec
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
SHARED = sorted(SHARED_MODELS.glob("*.tflite")) if SHARED_MODELS.is_dir() else []
needs_shared = pytest.mark.skipif(not SHARED, reason=f"no shared models at {SHARED_MODELS}")
needs_gxx = pytest.mark.skipif(shutil.which(CXX_COMPILER) is None, reason=f"{CXX_COMPILER} is not installed")

# ---- the test-only stand-in library (NOT TFLM) ------------------------------------------------------

STAND_IN_COMMON = """\
/* tinylab TEST STAND-IN, not TFLM: the few declarations the generated workload uses. */
#ifndef STAND_IN_COMMON_H
#define STAND_IN_COMMON_H
#include <stddef.h>
#include <stdint.h>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef union { char *raw; int8_t *int8; } TfLitePtrUnion;
typedef struct { TfLitePtrUnion data; size_t bytes; } TfLiteTensor;
#endif
"""
STAND_IN_SCHEMA = """\
#ifndef STAND_IN_SCHEMA_H
#define STAND_IN_SCHEMA_H
#include <stdint.h>
namespace tflite {
class Model { public: uint32_t version() const; };
const Model *GetModel(const void *buffer);
}
#endif
"""
STAND_IN_INTERPRETER = """\
#ifndef STAND_IN_INTERPRETER_H
#define STAND_IN_INTERPRETER_H
#include "flatbuffers/flatbuffers.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/schema/schema_generated.h"
#define TFLITE_SCHEMA_VERSION (3)
namespace tflite {
class MicroOpResolver;
class MicroInterpreter {
 public:
  MicroInterpreter(const Model *model, const MicroOpResolver &resolver, uint8_t *arena, size_t arena_size);
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor *input(size_t index);
  TfLiteTensor *output(size_t index);
  size_t arena_used_bytes() const;
 private:
  uint8_t *arena_;
  size_t size_;
  size_t used_;
  TfLiteTensor input_;
  TfLiteTensor output_;
};
}
#endif
"""
STAND_IN_SOURCE = """\
/* tinylab TEST STAND-IN, not TFLM. "Inference": output[j] = input[j % input bytes] ^ 0x5A.
   AllocateTensors places the tensors at the arena's head and writes a pattern at its tail, which
   Invoke checks: it fails if anything (the harness) wrote over it. */
#include <string.h>
#include "tensorflow/lite/micro/micro_interpreter.h"

extern "C" const char tinylab_test_stand_in_not_tflm[] = "tinylab test stand-in: not TFLM";

namespace tflite {
static const size_t kTail = 256u;
static size_t align16(size_t n) { return (n + 15u) & ~static_cast<size_t>(15u); }

uint32_t Model::version() const { return 3u; }
const Model *GetModel(const void *buffer) { return static_cast<const Model *>(buffer); }

MicroInterpreter::MicroInterpreter(const Model *, const MicroOpResolver &, uint8_t *arena, size_t arena_size)
    : arena_(arena), size_(arena_size), used_(0u), input_(), output_() {}

TfLiteStatus MicroInterpreter::AllocateTensors()
{
    used_ = align16(STAND_IN_INPUT_BYTES) + align16(STAND_IN_OUTPUT_BYTES) + kTail + STAND_IN_EXTRA_ARENA;
    if (used_ > size_) {
        return kTfLiteError;
    }
    input_.data.raw = reinterpret_cast<char *>(arena_);
    input_.bytes = STAND_IN_INPUT_BYTES;
    output_.data.raw = reinterpret_cast<char *>(arena_ + align16(STAND_IN_INPUT_BYTES));
    output_.bytes = STAND_IN_OUTPUT_BYTES;
    memset(arena_ + size_ - kTail, 0x42, kTail);
    return kTfLiteOk;
}

TfLiteStatus MicroInterpreter::Invoke()
{
    for (size_t i = size_ - kTail; i < size_; ++i) {
        if (arena_[i] != 0x42u) {
            return kTfLiteError;
        }
    }
    for (size_t j = 0; j < STAND_IN_OUTPUT_BYTES; ++j) {
        output_.data.raw[j] = static_cast<char>(input_.data.raw[j % STAND_IN_INPUT_BYTES] ^ 0x5A);
    }
    return kTfLiteOk;
}

/* STAND_IN_UNDERREPORT: report less than AllocateTensors needs (to test the lab's fallback). */
size_t MicroInterpreter::arena_used_bytes() const { return used_ - STAND_IN_UNDERREPORT; }

TfLiteTensor *MicroInterpreter::input(size_t index) { return index == 0u ? &input_ : nullptr; }
TfLiteTensor *MicroInterpreter::output(size_t index) { return index == 0u ? &output_ : nullptr; }
}
"""


def stand_in_resolver_header() -> str:
    """MicroMutableOpResolver<N> with every method of the lab's resolver table; each fails once
    more than N ops are added, so a wrong N in the generated source shows."""
    methods = "\n".join(f"  TfLiteStatus {name}() {{ return Add(); }}" for name in sorted(set(RESOLVER_METHODS.values())))
    return f"""\
#ifndef STAND_IN_RESOLVER_H
#define STAND_IN_RESOLVER_H
#include "tensorflow/lite/c/common.h"
namespace tflite {{
class MicroOpResolver {{}};
template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {{
 public:
{methods}
 private:
  TfLiteStatus Add() {{ return count_ < tOpCount ? (++count_, kTfLiteOk) : kTfLiteError; }}
  unsigned int count_ = 0;
}};
}}
#endif
"""


def write_headers(root: Path, include: str = "include", flatbuffers: str = "include") -> None:
    """The stand-in's headers under root/`include`, flatbuffers/flatbuffers.h under root/`flatbuffers`."""
    files = {
        f"{include}/tensorflow/lite/c/common.h": STAND_IN_COMMON,
        f"{include}/tensorflow/lite/schema/schema_generated.h": STAND_IN_SCHEMA,
        f"{include}/tensorflow/lite/micro/micro_interpreter.h": STAND_IN_INTERPRETER,
        f"{include}/tensorflow/lite/micro/micro_mutable_op_resolver.h": stand_in_resolver_header(),
        f"{flatbuffers}/flatbuffers/flatbuffers.h": "/* tinylab test stand-in: TFLM's headers include this */\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def compile_archive(archive: Path, sources: dict[str, str], flags: list[str], compiler: str = CXX_COMPILER,
                    archiver: str = "arm-none-eabi-ar", includes: Path | tuple[Path, ...] = ()) -> Path:
    """Compile `sources` (name -> text) with `flags` into the static library `archive`."""
    work = archive.parent / f".{archive.stem}-objects"
    work.mkdir(parents=True, exist_ok=True)
    objects = []
    for name, text in sources.items():
        (work / name).write_text(text)
        obj = work / (Path(name).stem + ".o")
        include = [f"-I{d}" for d in ((includes,) if isinstance(includes, Path) else includes)]
        subprocess.run([compiler, *flags, *include, "-c", str(work / name), "-o", str(obj)], check=True,
                       capture_output=True, text=True)
        objects.append(str(obj))
    archive.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([archiver, "rcs", str(archive), *objects], check=True, capture_output=True)
    return archive


def stand_in_flags(board: BoardSpec, input_bytes: int = 64, output_bytes: int = 4, extra_arena: int = 0,
                   underreport: int = 0) -> list[str]:
    return [*cpu_flags(board), "-O2", "-std=gnu++17", "-fno-exceptions", "-fno-rtti", "-DTF_LITE_STATIC_MEMORY",
            f"-DSTAND_IN_INPUT_BYTES={input_bytes}u", f"-DSTAND_IN_OUTPUT_BYTES={output_bytes}u",
            f"-DSTAND_IN_EXTRA_ARENA={extra_arena}u", f"-DSTAND_IN_UNDERREPORT={underreport}u"]


def build_stand_in(root: Path, board: BoardSpec, *, input_bytes: int = 64, output_bytes: int = 4,
                   extra_arena: int = 0, underreport: int = 0) -> Path:
    """A TFLM-shaped directory (include/, lib/libtensorflow-microlite.a) holding the stand-in."""
    write_headers(root)
    compile_archive(root / "lib" / "libtensorflow-microlite.a", {"stand_in.cc": STAND_IN_SOURCE},
                    stand_in_flags(board, input_bytes, output_bytes, extra_arena, underreport), includes=root / "include")
    return root


# A "library" with TFLM's interpreter symbol, for the validation tests that need a valid archive.
INVOKE_ONLY = """\
#include "tensorflow/lite/micro/micro_interpreter.h"
namespace tflite { TfLiteStatus MicroInterpreter::Invoke() { return kTfLiteOk; } }
"""


@pytest.fixture(scope="module")
def f746() -> BoardSpec:
    return load_board("qemu-f746")


@pytest.fixture(autouse=True)
def no_tflm_dir_from_the_environment(monkeypatch):
    monkeypatch.delenv(TFLM_DIR_ENV, raising=False)


# ---- no library given -------------------------------------------------------------------------------


def test_without_a_directory_the_reason_says_how_to_give_one(f746):
    reason = find_tflm_library(f746, None)
    assert isinstance(reason, TflmUnavailable) and reason.kind == "not-given"
    assert str(reason) == NO_LIBRARY_REASON == "no TFLM library given: pass --tflm-dir or set TINYLAB_TFLM_DIR"
    source = ModelSource("unused", b"")
    assert measure_tflm_baseline(f746, source, np.zeros(1, np.int8)) == reason  # nothing built, nothing run


def test_the_argument_wins_over_the_environment_variable(tmp_path):
    assert tflm_dir_from(None, {}) == TflmUnavailable(NO_LIBRARY_REASON)
    assert tflm_dir_from(None, {TFLM_DIR_ENV: str(tmp_path)}) == tmp_path
    assert tflm_dir_from(tmp_path / "given", {TFLM_DIR_ENV: str(tmp_path)}) == tmp_path / "given"
    assert tflm_dir_from("  ", {TFLM_DIR_ENV: "  "}) == TflmUnavailable(NO_LIBRARY_REASON)


def test_the_environment_variable_is_read_when_no_argument_is_given(f746, tmp_path, monkeypatch):
    monkeypatch.setenv(TFLM_DIR_ENV, str(tmp_path / "absent"))
    reason = find_tflm_library(f746)
    assert isinstance(reason, TflmUnavailable) and reason.kind == "invalid-library"
    assert str(tmp_path / "absent") in reason.reason and "does not exist" in reason.reason


# ---- validation: every error names what is missing or wrong ---------------------------------------


def refused(root: Path, board: BoardSpec) -> str:
    with pytest.raises(TflmLibraryError) as caught:
        load_tflm_library(root, board)
    reason = find_tflm_library(board, root)
    assert isinstance(reason, TflmUnavailable) and reason.reason == str(caught.value)  # the same words, no traceback
    return str(caught.value)


def test_a_missing_directory_is_refused(f746, tmp_path):
    assert "does not exist" in refused(tmp_path / "nowhere", f746)


def test_a_directory_without_the_archive_is_refused(f746, tmp_path):
    write_headers(tmp_path)
    message = refused(tmp_path, f746)
    assert "no libtensorflow-microlite.a" in message and "gen/*/lib" in message


@needs_gxx
def test_a_directory_without_the_headers_is_refused(f746, tmp_path):
    build_stand_in(tmp_path, f746)
    shutil.rmtree(tmp_path / "include")
    message = refused(tmp_path, f746)
    assert "no tensorflow/lite/micro/micro_interpreter.h" in message and "headers" in message


@needs_gxx
def test_a_missing_header_is_named(f746, tmp_path):
    build_stand_in(tmp_path, f746)
    (tmp_path / "include/tensorflow/lite/schema/schema_generated.h").unlink()
    assert "no tensorflow/lite/schema/schema_generated.h" in refused(tmp_path, f746)


@needs_gxx
def test_missing_flatbuffers_headers_are_named(f746, tmp_path):
    build_stand_in(tmp_path, f746)
    (tmp_path / "include/flatbuffers/flatbuffers.h").unlink()
    assert "no flatbuffers/flatbuffers.h" in refused(tmp_path, f746)


@needs_gxx
def test_flatbuffers_in_a_third_party_folder_is_found(f746, tmp_path):
    build_stand_in(tmp_path, f746)
    (tmp_path / "include/flatbuffers").rename(tmp_path / "fb")
    (tmp_path / "third_party/flatbuffers/include").mkdir(parents=True)
    (tmp_path / "fb").rename(tmp_path / "third_party/flatbuffers/include/flatbuffers")
    library = load_tflm_library(tmp_path, f746)
    assert (tmp_path / "third_party/flatbuffers/include").resolve() in library.include_dirs


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("ar") is None, reason="no host gcc")
def test_a_host_library_is_refused_as_another_machine(f746, tmp_path):
    write_headers(tmp_path)
    compile_archive(tmp_path / "libtensorflow-microlite.a", {"x.cc": "int f(int x) { return x; }\n"}, ["-O1"],
                    compiler="g++" if shutil.which("g++") else "gcc", archiver="ar")
    message = refused(tmp_path, f746)
    assert "X86-64" in message and "not for an Arm Cortex-M" in message


@needs_gxx
def test_a_library_for_another_architecture_is_refused(f746, tmp_path):
    write_headers(tmp_path)
    flags = ["-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16", "-std=gnu++17"]
    compile_archive(tmp_path / "lib/libtensorflow-microlite.a", {"interp.cc": INVOKE_ONLY}, flags, includes=tmp_path / "include")
    message = refused(tmp_path, f746)
    assert "another architecture" in message and "v8-M.mainline" in message and "v7E-M" in message
    assert "TARGET_ARCH=cortex-m7+fp" in message


@needs_gxx
def test_a_soft_float_library_is_refused_for_a_hard_float_board(f746, tmp_path):
    write_headers(tmp_path)
    flags = ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=soft", "-std=gnu++17"]
    compile_archive(tmp_path / "lib/libtensorflow-microlite.a", {"interp.cc": INVOKE_ONLY}, flags, includes=tmp_path / "include")
    assert "soft-float calling convention" in refused(tmp_path, f746)


@needs_gxx
def test_a_double_precision_library_is_refused_for_a_single_precision_fpu(f746, tmp_path):
    write_headers(tmp_path)
    flags = ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16", "-std=gnu++17"]
    compile_archive(tmp_path / "lib/libtensorflow-microlite.a", {"interp.cc": INVOKE_ONLY}, flags, includes=tmp_path / "include")
    assert "double-precision FPU" in refused(tmp_path, f746)


@needs_gxx
def test_an_archive_without_tflm_interpreter_is_refused(f746, tmp_path):
    write_headers(tmp_path)
    compile_archive(tmp_path / "lib/libtensorflow-microlite.a", {"x.cc": "int f(int x) { return x; }\n"},
                    [*cpu_flags(f746), "-std=gnu++17"])
    assert "does not define tflite::MicroInterpreter::Invoke()" in refused(tmp_path, f746)


@needs_gxx
def test_cmsis_nn_called_but_absent_is_refused(f746, tmp_path):
    write_headers(tmp_path)
    calls = INVOKE_ONLY + 'extern "C" int arm_convolve_wrapper_s8(int);\nint conv(int x) { return arm_convolve_wrapper_s8(x); }\n'
    compile_archive(tmp_path / "lib/libtensorflow-microlite.a", {"interp.cc": calls}, [*cpu_flags(f746), "-std=gnu++17"],
                    includes=tmp_path / "include")
    message = refused(tmp_path, f746)
    assert "calls CMSIS-NN (arm_convolve_wrapper_s8)" in message and "libcmsis-nn.a" in message


@needs_gxx
def test_cmsis_nn_inside_or_beside_the_library_labels_the_engine(f746, tmp_path):
    calls = INVOKE_ONLY + 'extern "C" int arm_convolve_wrapper_s8(int);\nint conv(int x) { return arm_convolve_wrapper_s8(x); }\n'
    cmsis = 'extern "C" int arm_convolve_wrapper_s8(int x) { return x; }\n'
    flags = [*cpu_flags(f746), "-std=gnu++17"]
    inside = tmp_path / "inside"
    write_headers(inside)
    compile_archive(inside / "libtensorflow-microlite.a", {"interp.cc": calls, "cmsis.cc": cmsis}, flags, includes=inside / "include")
    library = load_tflm_library(inside, f746)
    assert library.cmsis_nn and library.engine == "tflm-cmsis-nn" and library.extra_archives == ()
    beside = tmp_path / "beside"
    write_headers(beside)
    compile_archive(beside / "lib/libtensorflow-microlite.a", {"interp.cc": calls}, flags, includes=beside / "include")
    compile_archive(beside / "lib/libcmsis-nn.a", {"cmsis.cc": cmsis}, flags)
    library = load_tflm_library(beside, f746)
    assert library.engine == "tflm-cmsis-nn" and library.extra_archives == ((beside / "lib/libcmsis-nn.a").resolve(),)
    plain = tmp_path / "plain"
    write_headers(plain)
    compile_archive(plain / "lib/libtensorflow-microlite.a", {"interp.cc": INVOKE_ONLY}, flags, includes=plain / "include")
    library = load_tflm_library(plain, f746)
    assert library.engine == "tflm" and not library.cmsis_nn
    assert library.engine_version.startswith("libtensorflow-microlite.a sha256:") and library.cpu_arch == "v7E-M"


@needs_gxx
def test_a_tflm_checkout_with_builds_under_gen_picks_the_boards_core(tmp_path):
    """The layout TFLM's Makefile leaves: headers at the checkout's root, flatbuffers in its
    downloads folder, one archive per build under gen/."""
    f412, f746 = load_board("qemu-f412"), load_board("qemu-f746")
    downloads = "tensorflow/lite/micro/tools/make/downloads/flatbuffers/include"
    write_headers(tmp_path, include=".", flatbuffers=downloads)
    for name, board in (("cortex_m_generic_cortex-m4+fp_default_gcc", f412), ("cortex_m_generic_cortex-m7+fp_default_gcc", f746)):
        compile_archive(tmp_path / f"gen/{name}/lib/libtensorflow-microlite.a", {"interp.cc": INVOKE_ONLY},
                        [*cpu_flags(board), "-std=gnu++17"], includes=(tmp_path, tmp_path / downloads))
    library = load_tflm_library(tmp_path, f746)
    assert "cortex-m7" in str(library.archive) and (tmp_path / downloads).resolve() in library.include_dirs
    assert "cortex-m4" in str(load_tflm_library(tmp_path, f412).archive)
    # Two builds for the same core: the message says how to pick one, and picking one works.
    second = tmp_path / "gen/cortex_m_generic_cortex-m7+fp_default_cmsis_nn_gcc/lib/libtensorflow-microlite.a"
    second.parent.mkdir(parents=True)
    shutil.copy(library.archive, second)
    message = refused(tmp_path, f746)
    assert "several libtensorflow-microlite.a under gen/ for cortex-m7" in message and "--tflm-dir" in message
    picked = load_tflm_library(second.parent.parent, f746)
    assert picked.archive == second.resolve() and picked.include_dirs[0] == tmp_path.resolve()


@needs_gxx
def test_the_stand_in_is_never_measured_as_tflm(f746, tmp_path):
    build_stand_in(tmp_path, f746)
    library = load_tflm_library(tmp_path, f746)
    assert library.stand_in and library.engine == STAND_IN_ENGINE not in ("tflm", "tflm-cmsis-nn")
    reason = measure_tflm_baseline(f746, ModelSource("unused", b""), np.zeros(1, np.int8), tmp_path)
    assert isinstance(reason, TflmUnavailable) and "test stand-in" in reason.reason and "not TFLM" in reason.reason


# ---- the generated workload -------------------------------------------------------------------------


def check_resolver(source: ModelSource) -> str:
    info = inspect_tflite(source.tflite, source.name)
    calls = resolver_calls(info)
    assert len(calls) == len(set(calls)) == len(info.ops)
    fake = TflmLibrary(  # a description only: nothing is built
        root=Path("/x"), archive=Path("/x/lib.a"), include_dirs=(), extra_archives=(), cpu_arch="v7E-M",
        cpu_name="", hard_float=True, cmsis_nn=False, sha256="0" * 64)
    text = render_workload(info, source.tflite, 10_000, fake)
    assert "tflite::MicroMutableOpResolver<TFLM_OP_COUNT>" in text and f"#define TFLM_OP_COUNT {len(calls)}u" in text
    registered = [line.split("->")[1].split("(")[0] for line in text.splitlines() if "resolver->Add" in line]
    assert registered == calls  # exactly the model's ops, each once, nothing else
    assert f"#define TFLM_MODEL_BYTES {len(source.tflite)}u" in text and "#define TFLM_ARENA_BYTES 10000u" in text
    assert f"#define TFLM_INPUT_BYTES {info.input.bytes}u" in text
    return text


def test_the_projects_model_gets_exactly_its_ops_registered():
    source = resolve_model("mcunet-tiny")
    check_resolver(source)
    assert resolver_calls(inspect_tflite(source.tflite, source.name)) == [
        "AddConv2D", "AddDepthwiseConv2D", "AddAdd", "AddMean", "AddReshape", "AddFullyConnected", "AddSoftmax"]


@needs_shared
@pytest.mark.parametrize("model", SHARED, ids=lambda p: p.stem)
def test_shared_models_get_exactly_their_ops_registered(model):
    check_resolver(resolve_model(str(model)))


@needs_shared
def test_vww_registers_the_ops_its_operators_use_not_every_opcode():
    source = resolve_model(str(SHARED_MODELS / "vww_96_int8.tflite"))
    assert resolver_calls(inspect_tflite(source.tflite, source.name)) == [
        "AddConv2D", "AddDepthwiseConv2D", "AddAveragePool2D", "AddReshape", "AddFullyConnected", "AddSoftmax"]


def test_the_model_bytes_are_embedded_exactly():
    source = resolve_model("mcunet-tiny")
    text = check_resolver(source)
    body = text.split("model_data[TFLM_MODEL_BYTES] = {", 1)[1].split("};", 1)[0]
    assert bytes(int(v, 16) for v in body.replace("\n", "").replace(" ", "").split(",") if v) == source.tflite
    assert "alignas(16) const uint8_t model_data" in text


def test_an_op_without_a_resolver_entry_is_refused_with_its_name():
    source = resolve_model("mcunet-tiny")
    info = inspect_tflite(source.tflite, source.name)
    odd = type(info)(info.name, (*info.ops, "CUSTOM:Fancy"), info.input, info.output)
    with pytest.raises(TflmModelError, match="no TFLM resolver entry for CUSTOM:Fancy"):
        resolver_calls(odd)
    assert issubclass(TflmModelError, LabError)


# ---- build + link + run under QEMU with the stand-in ------------------------------------------------


@needs_arm_gcc
@needs_gxx
@needs_qemu
def test_the_harness_builds_and_measures_a_cxx_workload_linked_against_a_user_library(f746, tmp_path):
    """See the module docstring: this proves the harness side (C++ build, static library link,
    QEMU run, arena read back, measurements), with a stand-in that is not TFLM."""
    source = resolve_model("mcunet-tiny")
    info = inspect_tflite(source.tflite, source.name)
    value = default_input(source.graph, seed=4)
    build_stand_in(tmp_path, f746, input_bytes=info.input.bytes, output_bytes=info.output.bytes, extra_arena=3000)
    library = load_tflm_library(tmp_path, f746)
    run = run_tflm_baseline(f746, source, value, library)
    assert isinstance(run, TflmRun) and run.engine == STAND_IN_ENGINE
    # The input went through the harness into the library's tensor and the output came back.
    expected = (value.ravel().view(np.uint8)[np.arange(info.output.bytes) % info.input.bytes] ^ 0x5A).view(np.int8)
    assert np.array_equal(run.output.ravel(), expected)
    assert not run.matches_reference  # the stand-in is not TFLM: its output differs from the host oracle
    # The arena came back from the target, and the measured build has exactly that arena.
    used = 16 * -(-info.input.bytes // 16) + 16 * -(-info.output.bytes // 16) + 256 + 3000
    assert run.arena_used == used and run.arena_reserved == 16 * -(-used // 16)
    assert run.arena_search.used == used and run.arena_search.probes == 2  # the sizing build, then exactly `used`
    assert run.unit == "instructions" and run.latency > 0 and run.backend == "qemu"
    # Peak SRAM is TFLM's own (its statics, the arena inside, and the stack); the harness's buffers
    # are apart: here a staging copy of the input among them, as the board has room for one.
    assert run.peak_sram == run.model_static_ram + run.stack_high_water
    assert run.static_ram == run.model_static_ram + run.lab_overhead
    assert run.input_staged and run.model_static_ram > run.arena_reserved and run.lab_overhead > info.input.bytes
    assert run.flash > len(source.tflite)
    rows = {r.metric: r for r in run.measurements(tflm_provenance(f746, run))}
    assert set(rows) == {"latency", "peak_sram", "lab_overhead", "static_ram", "stack_high_water", "arena_planned",
                         "flash", "matches_reference"}
    assert {r.engine for r in rows.values()} == {STAND_IN_ENGINE}
    assert rows["latency"].unit == "instructions" and rows["matches_reference"].value == 0.0
    assert json.loads(rows["arena_planned"].extra)["arena_reserved"] == run.arena_reserved
    ours = {"model": run.model, "latency": 2 * run.latency, "latency_unit": run.unit, "peak_sram_bytes": run.peak_sram}
    table = format_tflm_column([run.summary(), {"model": "other", "engine": "tflm-cmsis-nn", "reason": "why",
                                                "kind": "not-given"}], [ours])
    assert STAND_IN_ENGINE in table and " 2.00 " in table and " 1.00 " in table
    assert "other                            TFLM + CMSIS-NN column empty: why" in table


@needs_arm_gcc
@needs_gxx
@needs_qemu
def test_without_room_for_a_staging_copy_the_input_goes_straight_into_tflms_input_tensor(f746, tmp_path):
    """The staging copy never costs TFLM its room: where the arena leaves no room for one, `db`
    loads the input into the input tensor that the interpreter placed in its arena at boot."""
    source = resolve_model("mcunet-tiny")
    info = inspect_tflite(source.tflite, source.name)
    tensors = 16 * -(-info.input.bytes // 16) + 16 * -(-info.output.bytes // 16) + 256
    extra = arena_room(f746, info) - tensors - 1024  # an arena 1 KB short of all the room there is
    build_stand_in(tmp_path, f746, input_bytes=info.input.bytes, output_bytes=info.output.bytes, extra_arena=extra)
    value = default_input(source.graph, seed=7)
    run = run_tflm_baseline(f746, source, value, load_tflm_library(tmp_path, f746))
    assert not run.input_staged and run.lab_overhead < info.input.bytes
    expected = (value.ravel().view(np.uint8)[np.arange(info.output.bytes) % info.input.bytes] ^ 0x5A).view(np.int8)
    assert np.array_equal(run.output.ravel(), expected)
    assert run.arena_reserved == 16 * -(-(tensors + extra) // 16)
    assert run.static_ram + f746.min_stack_bytes + info.input.bytes > f746.sram_bytes  # no room for the copy indeed


@needs_arm_gcc
@needs_gxx
@needs_qemu
def test_an_arena_that_cannot_fit_the_board_is_a_reason_not_a_crash(f746, tmp_path):
    source = resolve_model("mcunet-tiny")
    info = inspect_tflite(source.tflite, source.name)
    build_stand_in(tmp_path, f746, input_bytes=info.input.bytes, output_bytes=info.output.bytes,
                   extra_arena=f746.sram_bytes)
    library = load_tflm_library(tmp_path, f746)
    with pytest.raises(TflmDoesNotFitError, match="AllocateTensors failed with an arena of"):
        run_tflm_baseline(f746, source, default_input(source.graph), library)


@needs_arm_gcc
@needs_gxx
@needs_qemu
def test_an_arena_figure_too_small_to_start_is_searched_up_to_the_smallest_that_starts(f746, tmp_path):
    """TFLM's arena_used_bytes() can be less than AllocateTensors needs: the lab searches between
    it and the sizing arena for the smallest arena that starts, and remembers it."""
    source = resolve_model("mcunet-tiny")
    info = inspect_tflite(source.tflite, source.name)
    build_stand_in(tmp_path, f746, input_bytes=info.input.bytes, output_bytes=info.output.bytes, underreport=1000)
    library = load_tflm_library(tmp_path, f746)
    run = run_tflm_baseline(f746, source, default_input(source.graph), library)
    needed = 16 * -(-info.input.bytes // 16) + 16 * -(-info.output.bytes // 16) + 256
    search = run.arena_search
    assert run.arena_used == needed - 1000 and search.used == needed - 1000
    assert run.arena_reserved == search.smallest == 16 * -(-needed // 16)  # exact: 16 B less does not start
    assert search.sizing == sizing_arena(f746, source, info) > search.smallest
    assert 3 <= search.probes <= 3 + (search.sizing - search.used).bit_length()  # a binary search, not a scan
    again = run_tflm_baseline(f746, source, default_input(source.graph), library)
    assert again.arena_search.remembered and again.arena_reserved == run.arena_reserved


def test_a_toolchain_without_cxx_headers_is_named_with_the_packages(f746, tmp_path, monkeypatch):
    fake = tmp_path / "arm-none-eabi-g++"
    fake.write_text("#!/bin/sh\necho 'fatal error: new: No such file or directory' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    _check_cxx_toolchain.cache_clear()
    try:
        with pytest.raises(BuildError, match="no C\\+\\+ standard headers.*libstdc\\+\\+-arm-none-eabi-dev"):
            require_cxx_toolchain(f746)
    finally:
        _check_cxx_toolchain.cache_clear()


@needs_arm_gcc
@needs_gxx
@needs_qemu
def test_bench_says_why_the_tflm_columns_are_empty(capsys, tmp_path):
    assert main(["bench", "--json"]) == 0
    tflm = json.loads(capsys.readouterr().out)["tflm"]
    assert tflm == [{"model": "mcunet-tiny", "engine": engine, "reason": NO_LIBRARY_REASON, "kind": "not-given"}
                    for engine in ("tflm", "tflm-cmsis-nn")]
    assert main(["bench", "--tflm-dir", str(tmp_path / "absent")]) == 0
    out = capsys.readouterr().out
    assert f"TFLM reference column empty: TFLM directory {tmp_path / 'absent'} does not exist" in out
    assert f"TFLM + CMSIS-NN column empty: TFLM directory {tmp_path / 'absent'} does not exist" in out
