"""The TFLM library a user provides for the TFLM baseline: where it is (--tflm-dir, else
$TINYLAB_TFLM_DIR), and whether it can be linked into a board's firmware. A directory holds TFLM's
headers and libtensorflow-microlite.a built with TFLM's own tooling (with or without CMSIS-NN);
what it was built for is read from the archive with arm-none-eabi-readelf and arm-none-eabi-nm.

Layouts found: DIR/{include/,}tensorflow/lite/micro/... with DIR/{lib/,}libtensorflow-microlite.a
and flatbuffers under DIR/{include/,third_party/flatbuffers/include/} (a tree from TFLM's
create_tflm_tree.py plus its library); or a TFLM checkout after, for instance,
  make -f tensorflow/lite/micro/tools/make/Makefile TARGET=cortex_m_generic \
       TARGET_ARCH=cortex-m7+fp OPTIMIZED_KERNEL_DIR=cmsis_nn microlite
given as DIR (the archive under gen/*/lib/, the third-party headers in the Makefile's downloads/),
or its build folder DIR/gen/NAME given as DIR when the checkout holds several builds."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from hil.firmware_build.toolchain import require_tool
from hil.errors import LabError
from hil.targets.boardspec import BoardSpec

TFLM_DIR_ENV = "TINYLAB_TFLM_DIR"
NO_LIBRARY_REASON = f"no TFLM library given: pass --tflm-dir or set {TFLM_DIR_ENV}"
ARCHIVE_NAME = "libtensorflow-microlite.a"
CMSIS_NN_ARCHIVE_NAME = "libcmsis-nn.a"  # where CMSIS-NN was built as a library of its own
INTERPRETER_HEADER = "tensorflow/lite/micro/micro_interpreter.h"
REQUIRED_HEADERS = (
    INTERPRETER_HEADER,
    "tensorflow/lite/micro/micro_mutable_op_resolver.h",
    "tensorflow/lite/schema/schema_generated.h",
)
FLATBUFFERS_HEADER = "flatbuffers/flatbuffers.h"
# Where TFLM's trees keep their third-party headers, relative to the directory or its include root:
# create_tflm_tree.py's third_party/, and the Makefile's download folder in a TFLM checkout.
THIRD_PARTY_ROOTS = ("third_party", "tensorflow/lite/micro/tools/make/downloads")
THIRD_PARTY_INCLUDES = ("flatbuffers/include", "gemmlowp", "ruy", "kissfft")
# The architecture (readelf's Tag_CPU_arch) a library must be built for, per board core.
CORE_ARCHITECTURES = {
    "cortex-m0": "v6S-M",
    "cortex-m0plus": "v6S-M",
    "cortex-m3": "v7",
    "cortex-m4": "v7E-M",
    "cortex-m7": "v7E-M",
    "cortex-m33": "v8-M.mainline",
    "cortex-m55": "v8.1-M.mainline",
}
# Symbols that show the library's kernels are CMSIS-NN's (TFLM's OPTIMIZED_KERNEL_DIR=cmsis_nn).
CMSIS_NN_SYMBOLS = frozenset({
    "arm_convolve_s8", "arm_convolve_wrapper_s8", "arm_depthwise_conv_wrapper_s8",
    "arm_fully_connected_s8", "arm_softmax_s8", "arm_avgpool_s8", "arm_elementwise_add_s8",
})
# tflite::MicroInterpreter::Invoke(), mangled: every TFLM library defines it.
INTERPRETER_SYMBOL = "_ZN6tflite16MicroInterpreter6InvokeEv"
# MicroPrintf(const char*, ...), mangled: a BUILD_TYPE=release library (TF_LITE_STRIP_ERROR_STRINGS)
# has none, and code compiled against it must strip its error strings too.
MICRO_PRINTF_SYMBOL = "_Z11MicroPrintfPKcz"
# Defined only by the test suite's stand-in library (tests/test_tflm_baseline.py), which is not
# TFLM: a library that defines it is never measured or reported as TFLM.
STAND_IN_SYMBOL = "tinylab_test_stand_in_not_tflm"
STAND_IN_ENGINE = "test-stand-in-not-tflm"


class TflmBaselineError(LabError):
    """The TFLM baseline cannot be measured here: its column stays empty, and this says why."""


class TflmLibraryError(TflmBaselineError):
    """The TFLM directory given is not a usable TFLM library for the board."""


@dataclass(frozen=True)
class TflmUnavailable:
    """Why the TFLM column is empty: no library given, or the library, model or board does not do."""

    reason: str
    kind: str = "not-given"  # not-given | invalid-library | unsupported-model | does-not-fit

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class ArchiveMember:
    """What readelf says about one object file of a static library."""

    name: str
    machine: str = ""
    cpu_arch: str = ""
    cpu_name: str = ""
    vfp_args: str = ""  # "VFP registers" for the hard-float calling convention
    hardfp_use: str = ""  # "SP only" for a single-precision FPU


@dataclass(frozen=True)
class TflmLibrary:
    """A validated TFLM library: its archive(s), the include directories for its headers, and
    what it was built for."""

    root: Path
    archive: Path
    include_dirs: tuple[Path, ...]
    extra_archives: tuple[Path, ...]
    cpu_arch: str
    cpu_name: str
    hard_float: bool
    cmsis_nn: bool
    sha256: str
    stand_in: bool = False
    strips_error_strings: bool = False  # no MicroPrintf: built with TF_LITE_STRIP_ERROR_STRINGS

    @property
    def engine(self) -> str:
        """The results store's engine name: tflm, or tflm-cmsis-nn when its kernels are CMSIS-NN's."""
        if self.stand_in:
            return STAND_IN_ENGINE
        return "tflm-cmsis-nn" if self.cmsis_nn else "tflm"

    @property
    def engine_version(self) -> str:
        """The library's identity: the sha256 of its archive (TFLM libraries carry no version)."""
        return f"{ARCHIVE_NAME} sha256:{self.sha256[:16]}"

    @property
    def archives(self) -> tuple[Path, ...]:
        return (self.archive, *self.extra_archives)

    def describe(self) -> str:
        kernels = "CMSIS-NN kernels" if self.cmsis_nn else "reference kernels"
        return f"{self.engine} ({self.archive}, {self.cpu_arch} {self.cpu_name}, {kernels}, {self.engine_version})"


def tflm_dir_from(argument: str | Path | None, environ: Mapping[str, str] | None = None) -> Path | TflmUnavailable:
    """The TFLM directory: the --tflm-dir argument, else $TINYLAB_TFLM_DIR; else why there is none."""
    environ = os.environ if environ is None else environ
    if argument is not None and str(argument).strip():
        return Path(argument).expanduser()
    from_env = environ.get(TFLM_DIR_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    return TflmUnavailable(NO_LIBRARY_REASON)


def find_tflm_library(board: BoardSpec, tflm_dir: str | Path | None = None,
                      environ: Mapping[str, str] | None = None) -> TflmLibrary | TflmUnavailable:
    """The validated library for `board`, or why there is none (never raises for a bad directory)."""
    located = tflm_dir_from(tflm_dir, environ)
    if isinstance(located, TflmUnavailable):
        return located
    try:
        return load_tflm_library(located, board)
    except TflmLibraryError as error:
        return TflmUnavailable(str(error), "invalid-library")


def load_tflm_library(root: Path, board: BoardSpec) -> TflmLibrary:
    """Validate the TFLM directory `root` for `board`; TflmLibraryError names what is missing or wrong."""
    root = Path(root)
    where = f"TFLM directory {root}"
    if not root.is_dir():
        raise TflmLibraryError(f"{where} does not exist or is not a directory")
    archive = find_archive(root, board)
    include_root = find_include_root(root)
    include_dirs = (include_root, *third_party_includes(root, include_root))
    if not any((d / FLATBUFFERS_HEADER).is_file() for d in include_dirs):
        raise TflmLibraryError(
            f"{where}: no {FLATBUFFERS_HEADER} (TFLM's headers include it): looked in {include_root} and in "
            f"{', '.join(f'{r}/flatbuffers/include' for r in THIRD_PARTY_ROOTS)} under {root}"
        )
    members = read_members(archive)
    arch, cpu_name, hard_float = check_target(archive, members, board)
    extra = tuple(p for p in (root / CMSIS_NN_ARCHIVE_NAME, root / "lib" / CMSIS_NN_ARCHIVE_NAME,
                              archive.parent / CMSIS_NN_ARCHIVE_NAME) if p.is_file() and p != archive)
    extra = tuple(dict.fromkeys(p.resolve() for p in extra))
    for library in extra:
        check_target(library, read_members(library), board)
    defined, referenced = archive_symbols((archive, *extra))
    stand_in = STAND_IN_SYMBOL in defined
    if INTERPRETER_SYMBOL not in defined:
        raise TflmLibraryError(
            f"{where}: {archive.name} does not define tflite::MicroInterpreter::Invoke(); "
            f"is it TFLM's {ARCHIVE_NAME} (make -f tensorflow/lite/micro/tools/make/Makefile microlite)?"
        )
    uses_cmsis = sorted((defined | referenced) & CMSIS_NN_SYMBOLS)
    if uses_cmsis and not (defined & CMSIS_NN_SYMBOLS):
        raise TflmLibraryError(
            f"{where}: {archive.name} calls CMSIS-NN ({', '.join(uses_cmsis[:3])}) but no archive defines it: "
            f"build TFLM with OPTIMIZED_KERNEL_DIR=cmsis_nn into one library, or put {CMSIS_NN_ARCHIVE_NAME} beside it"
        )
    return TflmLibrary(
        root=root.resolve(),
        archive=archive.resolve(),
        include_dirs=tuple(d.resolve() for d in include_dirs),
        extra_archives=extra,
        cpu_arch=arch,
        cpu_name=cpu_name,
        hard_float=hard_float,
        cmsis_nn=bool(uses_cmsis),
        sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
        stand_in=stand_in,
        strips_error_strings=MICRO_PRINTF_SYMBOL not in defined,
    )


def find_archive(root: Path, board: BoardSpec) -> Path:
    """DIR/libtensorflow-microlite.a, DIR/lib/..., or in a TFLM checkout DIR/gen/*/lib/... (the
    one built for the board's core when there are several)."""
    for candidate in (root / ARCHIVE_NAME, root / "lib" / ARCHIVE_NAME):
        if candidate.is_file():
            return candidate
    built = sorted(root.glob(f"gen/*/lib/{ARCHIVE_NAME}"))
    if len(built) > 1:
        built = [p for p in built if board.core in p.parent.parent.name] or built
    if len(built) == 1:
        return built[0]
    if built:
        raise TflmLibraryError(
            f"TFLM directory {root}: several {ARCHIVE_NAME} under gen/ for {board.core} "
            f"({', '.join(str(p.parent.parent.name) for p in built)}): give the one to use as --tflm-dir {root}/gen/NAME"
        )
    raise TflmLibraryError(
        f"TFLM directory {root}: no {ARCHIVE_NAME} (looked for {root / ARCHIVE_NAME}, {root / 'lib' / ARCHIVE_NAME} "
        f"and {root}/gen/*/lib/{ARCHIVE_NAME})"
    )


def header_bases(root: Path) -> tuple[Path, ...]:
    """Where TFLM's headers may be: DIR/include, DIR, and for a build folder gen/NAME of a TFLM
    checkout, the checkout."""
    bases = [root / "include", root]
    if root.resolve().parent.name == "gen":
        bases.append(root.resolve().parent.parent)
    return tuple(bases)


def find_include_root(root: Path) -> Path:
    """The directory under which tensorflow/lite/micro/... lives."""
    for candidate in header_bases(root):
        if all((candidate / header).is_file() for header in REQUIRED_HEADERS):
            return candidate
    partial = next((c for c in header_bases(root) if (c / INTERPRETER_HEADER).is_file()), None)
    if partial is not None:
        missing = [h for h in REQUIRED_HEADERS if not (partial / h).is_file()]
        raise TflmLibraryError(f"TFLM directory {root}: no {', '.join(missing)} under {partial}")
    raise TflmLibraryError(
        f"TFLM directory {root}: no {INTERPRETER_HEADER} under {root / 'include'} or {root}; "
        "the directory must hold TFLM's headers as well as its library"
    )


def third_party_includes(root: Path, include_root: Path) -> list[Path]:
    """The third-party header folders (flatbuffers, gemmlowp, ruy, kissfft) that exist."""
    found: list[Path] = []
    for base in dict.fromkeys((root, include_root, *header_bases(root)[2:])):
        for sub in THIRD_PARTY_ROOTS:
            for folder in THIRD_PARTY_INCLUDES:
                candidate = base / sub / folder
                if candidate.is_dir() and candidate not in found:
                    found.append(candidate)
    return found


def _run(tool: str, *args: str) -> str:
    path = require_tool(tool, TflmLibraryError)
    try:
        result = subprocess.run([path, *args], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise TflmLibraryError(f"{tool} took more than 120 s on {args[-1]}") from None
    if result.returncode != 0:
        raise TflmLibraryError(f"{tool} cannot read {args[-1]}: {(result.stderr or result.stdout).strip()[:400]}")
    return result.stdout


_MEMBER = re.compile(r"^File: .*?\((.+)\)\s*$")
_TAGS = {
    "Machine": ("machine", re.compile(r"^\s*Machine:\s+(.+?)\s*$")),
    "Tag_CPU_arch": ("cpu_arch", re.compile(r"^\s*Tag_CPU_arch:\s+(.+?)\s*$")),
    "Tag_CPU_name": ("cpu_name", re.compile(r'^\s*Tag_CPU_name:\s+"?(.*?)"?\s*$')),
    "Tag_ABI_VFP_args": ("vfp_args", re.compile(r"^\s*Tag_ABI_VFP_args:\s+(.+?)\s*$")),
    "Tag_ABI_HardFP_use": ("hardfp_use", re.compile(r"^\s*Tag_ABI_HardFP_use:\s+(.+?)\s*$")),
}


def read_members(archive: Path) -> list[ArchiveMember]:
    """Each object file of the archive with its machine and ARM build attributes (readelf -h -A)."""
    text = _run("arm-none-eabi-readelf", "-h", "-A", str(archive))
    members: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        match = _MEMBER.match(line)
        if match:
            current = members.setdefault(match.group(1), {})
            continue
        if current is None:
            continue
        for key, (field_name, pattern) in _TAGS.items():
            if key in line:
                found = pattern.match(line)
                if found and field_name not in current:
                    current[field_name] = found.group(1)
    if not members:
        raise TflmLibraryError(f"{archive}: not a static library with object files in it (arm-none-eabi-readelf found none)")
    return [ArchiveMember(name, **fields) for name, fields in members.items()]


def check_target(archive: Path, members: list[ArchiveMember], board: BoardSpec) -> tuple[str, str, bool]:
    """Refuse a library built for another machine, architecture or float ABI than the board's;
    return its architecture, CPU name and whether it is hard-float."""
    foreign = [m for m in members if m.machine and m.machine != "ARM"]
    if foreign:
        raise TflmLibraryError(
            f"{archive} is built for {foreign[0].machine} ({foreign[0].name}), not for an Arm Cortex-M; "
            f"build it for {board.core} with TFLM's Makefile (TARGET=cortex_m_generic TARGET_ARCH={board.core}...)"
        )
    wanted = CORE_ARCHITECTURES.get(board.core)
    archs = sorted({m.cpu_arch for m in members if m.cpu_arch})
    if not archs:
        raise TflmLibraryError(f"{archive}: no Arm build attributes (Tag_CPU_arch) in any of its object files")
    wrong = [m for m in members if m.cpu_arch and m.cpu_arch != wanted]
    if wrong:
        raise TflmLibraryError(
            f"{archive} is built for another architecture: {wrong[0].name} is {wrong[0].cpu_arch}"
            f"{f' ({wrong[0].cpu_name})' if wrong[0].cpu_name else ''}; board {board.name} is a {board.core} ({wanted}): "
            f"rebuild TFLM with TARGET_ARCH={board.core}{'+fp' if board.fpu != 'none' else ''}"
        )
    board_hard = board.fpu != "none"
    hard = [m for m in members if m.vfp_args == "VFP registers"]
    soft = [m for m in members if m.cpu_arch and m.vfp_args != "VFP registers"]
    if board_hard and soft:
        raise TflmLibraryError(
            f"{archive} uses the soft-float calling convention ({soft[0].name}), the firmware for {board.name} is "
            f"hard-float ({board.fpu}): rebuild TFLM with TARGET_ARCH={board.core}+fp"
        )
    if not board_hard and hard:
        raise TflmLibraryError(
            f"{archive} uses the hard-float calling convention ({hard[0].name}); {board.name} has no FPU: "
            f"rebuild TFLM with TARGET_ARCH={board.core}"
        )
    if board_hard and "-sp-" in board.fpu:
        double = [m for m in members if m.cpu_arch and m.hardfp_use != "SP only"]
        if double:
            raise TflmLibraryError(
                f"{archive} is built for a double-precision FPU ({double[0].name}); {board.name}'s FPU is "
                f"single-precision ({board.fpu}): rebuild TFLM for -mfpu={board.fpu}"
            )
    names = sorted({m.cpu_name for m in members if m.cpu_name})
    return archs[0], names[0] if names else "", board_hard


def archive_symbols(archives: tuple[Path, ...]) -> tuple[set[str], set[str]]:
    """The global symbols the archives define, and those they refer to (arm-none-eabi-nm)."""
    defined: set[str] = set()
    referenced: set[str] = set()
    for archive in archives:
        for line in _run("arm-none-eabi-nm", "-g", str(archive)).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                referenced.add(parts[1])
            elif len(parts) == 3:
                defined.add(parts[2])
    return defined, referenced - defined
