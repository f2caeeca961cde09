"""The TFLM library a user provides for the TFLM baseline: where it is (--tflm-dir, else
$TINYLAB_TFLM_DIR), and whether it can be linked into a board's firmware. A directory holds TFLM's
headers and libtensorflow-microlite.a built with TFLM's own tooling (with or without CMSIS-NN);
what it was built for is read from the archive with arm-none-eabi-readelf and arm-none-eabi-nm.

Layouts found: DIR/{include/,}tensorflow/lite/micro/... with DIR/{lib/,}libtensorflow-microlite.a
and flatbuffers under DIR/{include/,third_party/flatbuffers/include/} (what `tinylab tflm build`
puts in the cache, or a tree from TFLM's create_tflm_tree.py plus its library); or a TFLM checkout
after, for instance,
  make -f tensorflow/lite/micro/tools/make/Makefile TARGET=cortex_m_generic TARGET_ARCH=cortex-m7+fp \
       FPU=fpv5-sp-d16 BUILD_TYPE=release TARGET_TOOLCHAIN_ROOT=/usr/bin/ OPTIMIZED_KERNEL_DIR=cmsis_nn microlite
given as DIR (the archive under gen/*/lib/, the third-party headers in the Makefile's downloads/),
or its build folder DIR/gen/NAME given as DIR when the checkout holds several builds.

The core and FPU it was built for come from its objects' build attributes: Tag_CPU_arch,
Tag_CPU_name where it names a core (recent GCCs write the architecture there, "7E-M", for both a
Cortex-M4 and a Cortex-M7), Tag_FP_arch (VFPv4-D16 is a Cortex-M4's FPU, FPv5 a Cortex-M7's or
-M33's), the float ABI and the FPU's precision; and from the manifest `tinylab tflm build` writes."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from hil.firmware_build.tflm_library_build import MANIFEST_NAME
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
# The FPU architecture (readelf's Tag_FP_arch) each board FPU is, and the cores each one is found in.
FPU_ARCHITECTURES = {
    "fpv4-sp-d16": "VFPv4-D16",
    "fpv5-sp-d16": "FPv5/FP-D16 for ARMv8",
    "fpv5-d16": "FPv5/FP-D16 for ARMv8",
}
FP_ARCHITECTURE_CORES = {
    "VFPv4-D16": "a Cortex-M4's FPU (FPv4)",
    "FPv5/FP-D16 for ARMv8": "a Cortex-M7's or Cortex-M33's FPU (FPv5)",
}
# Instructions FPv5 has and FPv4 lacks: a library using them faults on a Cortex-M4 at its first one.
FPV5_ONLY_INSTRUCTIONS = "vrinta, vsel, vmaxnm, vcvta"
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


class TflmForAnotherCoreError(TflmLibraryError):
    """A TFLM library built for another core, FPU or float ABI than the board's; `engine` says
    which column it would fill on its own core."""

    def __init__(self, message: str, engine: str = "") -> None:
        super().__init__(message)
        self.engine = engine


@dataclass(frozen=True)
class TflmUnavailable:
    """Why the TFLM column is empty: no library given, or the library, model or board does not do."""

    reason: str
    kind: str = "not-given"  # not-given | invalid-library | another-core | unsupported-model | does-not-fit
    engine: str = ""  # the column it would have filled (tflm, tflm-cmsis-nn) where that is known

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class ArchiveMember:
    """What readelf says about one object file of a static library."""

    name: str
    machine: str = ""
    cpu_arch: str = ""
    cpu_name: str = ""
    fp_arch: str = ""  # "VFPv4-D16" (Cortex-M4), "FPv5/FP-D16 for ARMv8" (Cortex-M7, -M33); "" without an FPU
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
    fp_arch: str = ""  # Tag_FP_arch of its objects ("" for a soft-float library)
    manifest: Mapping[str, object] | None = None  # what `tinylab tflm build` recorded, where it built it

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

    @property
    def kernels(self) -> str:
        return "CMSIS-NN kernels" if self.cmsis_nn else "reference kernels"

    def target(self) -> str:
        """What it was built for, from its attributes (and its manifest where it has one)."""
        fpu = f"FPU {self.fp_arch}" if self.fp_arch else "no FPU"
        built = ""
        if self.manifest:
            built = f", built by tinylab tflm build for {self.manifest.get('core')} {self.manifest.get('fpu')} " \
                    f"({self.manifest.get('build_type')}, TFLM {str(self.manifest.get('tflm_commit', ''))[:12]})"
        return f"{self.cpu_arch}, {fpu}, {'hard' if self.hard_float else 'soft'}-float{built}"

    def describe(self) -> str:
        return f"{self.engine} ({self.archive}, {self.target()}, {self.kernels}, {self.engine_version})"


def tflm_dir_from(argument: str | Path | None, environ: Mapping[str, str] | None = None) -> Path | TflmUnavailable:
    """The TFLM directory: the --tflm-dir argument, else $TINYLAB_TFLM_DIR; else why there is none."""
    found = tflm_dirs_from([argument] if argument is not None else None, environ)
    return found[0] if isinstance(found, list) else found


def tflm_dirs_from(arguments: Sequence[str | Path] | None, environ: Mapping[str, str] | None = None) -> list[Path] | TflmUnavailable:
    """The TFLM directories: each --tflm-dir given, else those of $TINYLAB_TFLM_DIR (separated by
    the path separator, ':'); else why there is none."""
    environ = os.environ if environ is None else environ
    given = [str(a).strip() for a in arguments or () if a is not None and str(a).strip()]
    if not given:
        given = [part.strip() for part in environ.get(TFLM_DIR_ENV, "").split(os.pathsep) if part.strip()]
    if not given:
        return TflmUnavailable(NO_LIBRARY_REASON)
    return [Path(part).expanduser() for part in dict.fromkeys(given)]


def find_tflm_library(board: BoardSpec, tflm_dir: str | Path | None = None,
                      environ: Mapping[str, str] | None = None) -> TflmLibrary | TflmUnavailable:
    """The validated library for `board`, or why there is none (never raises for a bad directory)."""
    located = tflm_dir_from(tflm_dir, environ)
    if isinstance(located, TflmUnavailable):
        return located
    return try_tflm_library(located, board)


def try_tflm_library(root: Path, board: BoardSpec) -> TflmLibrary | TflmUnavailable:
    """load_tflm_library, with a refusal as the reason the column stays empty."""
    try:
        return load_tflm_library(root, board)
    except TflmForAnotherCoreError as error:
        return TflmUnavailable(str(error), "another-core", error.engine)
    except TflmLibraryError as error:
        return TflmUnavailable(str(error), "invalid-library")


def load_tflm_library(root: Path, board: BoardSpec) -> TflmLibrary:
    """Validate the TFLM directory `root` for `board`; TflmLibraryError names what is missing or
    wrong (TflmForAnotherCoreError for a library built for another core, FPU or float ABI)."""
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
    extra = tuple(p for p in (root / CMSIS_NN_ARCHIVE_NAME, root / "lib" / CMSIS_NN_ARCHIVE_NAME,
                              archive.parent / CMSIS_NN_ARCHIVE_NAME) if p.is_file() and p != archive)
    extra = tuple(dict.fromkeys(p.resolve() for p in extra))
    members = {library: read_members(library) for library in (archive, *extra)}
    for library, objects in members.items():
        check_machine(library, objects, board)
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
    engine = STAND_IN_ENGINE if stand_in else ("tflm-cmsis-nn" if uses_cmsis else "tflm")
    manifest = read_manifest(root)
    try:
        target = check_target(archive, members[archive], board)
        for library in extra:
            check_target(library, members[library], board)
        check_manifest(root, manifest, board)
    except TflmForAnotherCoreError as error:
        raise TflmForAnotherCoreError(str(error), engine) from None
    return TflmLibrary(
        root=root.resolve(),
        archive=archive.resolve(),
        include_dirs=tuple(d.resolve() for d in include_dirs),
        extra_archives=extra,
        cpu_arch=target.cpu_arch,
        cpu_name=target.cpu_name,
        hard_float=target.hard_float,
        cmsis_nn=bool(uses_cmsis),
        sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
        stand_in=stand_in,
        strips_error_strings=MICRO_PRINTF_SYMBOL not in defined,
        fp_arch=target.fp_arch,
        manifest=manifest,
    )


def read_manifest(root: Path) -> dict | None:
    """The manifest `tinylab tflm build` leaves beside the library, or None."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except ValueError as error:
        raise TflmLibraryError(f"{path} is not JSON ({error}); build the library again with tinylab tflm build") from None
    return manifest if isinstance(manifest, dict) else None


def check_manifest(root: Path, manifest: Mapping[str, object] | None, board: BoardSpec) -> None:
    """Refuse a library that `tinylab tflm build` built for another core or FPU (where its
    objects' attributes cannot tell: two soft-float v7E-M builds look alike). A single-precision
    build serves a board whose FPU of the same kind has double precision too."""
    if not manifest:
        return
    core, fpu = manifest.get("core"), manifest.get("fpu")
    runs_here = core == board.core and (fpu == board.fpu or (
        fpu in FPU_ARCHITECTURES and FPU_ARCHITECTURES[fpu] == FPU_ARCHITECTURES.get(board.fpu) and "-sp-" in str(fpu)))
    if not runs_here:
        raise TflmForAnotherCoreError(
            f"TFLM directory {root} was built by tinylab tflm build for {core} ({fpu}); board {board.name} "
            f"is a {board.core} ({board.fpu}): build one for it with tinylab tflm build --board {board.name}"
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
    "Tag_FP_arch": ("fp_arch", re.compile(r"^\s*Tag_FP_arch:\s+(.+?)\s*$")),
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


def check_machine(archive: Path, members: list[ArchiveMember], board: BoardSpec) -> None:
    """Refuse objects for another machine than an Arm one (a host build, say)."""
    foreign = [m for m in members if m.machine and m.machine != "ARM"]
    if foreign:
        raise TflmLibraryError(
            f"{archive} is built for {foreign[0].machine} ({foreign[0].name}), not for an Arm Cortex-M; "
            f"build one for {board.name} with tinylab tflm build --board {board.name}"
        )


@dataclass(frozen=True)
class LibraryTarget:
    """What a library's objects say they were built for."""

    cpu_arch: str
    cpu_name: str
    fp_arch: str
    hard_float: bool


def check_target(archive: Path, members: list[ArchiveMember], board: BoardSpec) -> LibraryTarget:
    """Refuse a library built for another machine, architecture, core, FPU or float ABI than the
    board's (TflmForAnotherCoreError); return what it was built for."""
    rebuild = f"build one for it with tinylab tflm build --board {board.name}"
    check_machine(archive, members, board)
    wanted = CORE_ARCHITECTURES.get(board.core)
    archs = sorted({m.cpu_arch for m in members if m.cpu_arch})
    if not archs:
        raise TflmLibraryError(f"{archive}: no Arm build attributes (Tag_CPU_arch) in any of its object files")
    wrong = [m for m in members if m.cpu_arch and m.cpu_arch != wanted]
    if wrong:
        raise TflmForAnotherCoreError(
            f"{archive} is built for another architecture: {wrong[0].name} is {wrong[0].cpu_arch}"
            f"{f' ({wrong[0].cpu_name})' if wrong[0].cpu_name else ''}; board {board.name} is a {board.core} ({wanted}): "
            f"{rebuild} (TFLM's TARGET_ARCH={board.core}{'+fp' if board.fpu != 'none' else ''})"
        )
    other_core = [m for m in members if m.cpu_name.lower().startswith("cortex-") and m.cpu_name.lower() != board.core]
    if other_core:
        raise TflmForAnotherCoreError(
            f"{archive} is built for a {other_core[0].cpu_name} ({other_core[0].name}: Tag_CPU_name); board {board.name} "
            f"is a {board.core}: {rebuild}"
        )
    board_hard = board.fpu != "none"
    hard = [m for m in members if m.vfp_args == "VFP registers"]
    soft = [m for m in members if m.cpu_arch and m.vfp_args != "VFP registers"]
    if board_hard and soft:
        raise TflmForAnotherCoreError(
            f"{archive} uses the soft-float calling convention ({soft[0].name}), the firmware for {board.name} is "
            f"hard-float ({board.fpu}): {rebuild} (TFLM's TARGET_ARCH={board.core}+fp)"
        )
    if not board_hard and hard:
        raise TflmForAnotherCoreError(
            f"{archive} uses the hard-float calling convention ({hard[0].name}); {board.name} has no FPU: "
            f"{rebuild} (TFLM's TARGET_ARCH={board.core})"
        )
    fp_archs = sorted({m.fp_arch for m in members if m.fp_arch})
    if board_hard:
        check_fp_arch(archive, members, board, rebuild)
    if board_hard and "-sp-" in board.fpu:
        double = [m for m in members if m.cpu_arch and m.hardfp_use != "SP only"]
        if double:
            raise TflmForAnotherCoreError(
                f"{archive} is built for a double-precision FPU ({double[0].name}); {board.name}'s FPU is "
                f"single-precision ({board.fpu}): {rebuild} (TFLM's FPU={board.fpu})"
            )
    names = sorted({m.cpu_name for m in members if m.cpu_name})
    return LibraryTarget(archs[0], names[0] if names else "", fp_archs[0] if fp_archs else "", board_hard)


def check_fp_arch(archive: Path, members: list[ArchiveMember], board: BoardSpec, rebuild: str) -> None:
    """Refuse objects built for another FPU than the board's (Tag_FP_arch): FPv5 code faults on a
    Cortex-M4's FPv4, and an FPv4 library on a Cortex-M7 is a Cortex-M4 build."""
    wanted = FPU_ARCHITECTURES.get(board.fpu)
    other = [m for m in members if m.fp_arch and wanted and m.fp_arch != wanted]
    if not other:
        return
    found = other[0].fp_arch
    why = (f"it holds FPv5 instructions ({FPV5_ONLY_INSTRUCTIONS}) that {FP_ARCHITECTURE_CORES[wanted]} does not "
           f"execute: the firmware would fault at its first one"
           if wanted == "VFPv4-D16" and found.startswith("FPv5") else f"it is a build for {FP_ARCHITECTURE_CORES.get(found, found)}")
    raise TflmForAnotherCoreError(
        f"{archive} is built for the FPU {found} ({other[0].name}: Tag_FP_arch), board {board.name} is a {board.core} "
        f"with {board.fpu} ({wanted}): {why}; {rebuild} (TFLM's FPU={board.fpu})"
    )


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
