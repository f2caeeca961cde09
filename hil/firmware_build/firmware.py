"""Firmware: render the harness for a board from firmware_templates/, build it with
arm-none-eabi-gcc (a workload's C++ sources with arm-none-eabi-g++), report its size. Builds are
cached by the hash of everything that goes in."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import jinja2

from engine.cache import cache_root, write_atomically
from hil.firmware_build.inputwire import RAW, InputWire
from hil.firmware_build.toolchain import require_tool, tool_version
from hil.errors import BuildError, RegionOverflowError
from hil.resources import firmware_templates_dir
from hil.targets.boardspec import BoardSpec
from hil.targets.chips import OPTIMIZE_LEVELS

TEMPLATES_DIR = firmware_templates_dir()
COMPILER = "arm-none-eabi-gcc"
CXX_COMPILER = "arm-none-eabi-g++"
CXX_SUFFIXES = (".cc", ".cpp")
CXX_LANGUAGE_FLAGS = ("-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics")
# Linked after a workload's objects when it has C++ sources; nano.specs maps them to the _nano
# variants (Debian: libstdc++-arm-none-eabi-newlib, headers in libstdc++-arm-none-eabi-dev).
CXX_LINK_LIBRARIES = ("-lstdc++", "-lm")
BUILD_TIMEOUT_S = 300
REGION_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")
# The symbol the host writes the input at before boot (QEMU's loader device, a probe's memory
# write): the staging copy, or the model's input slot in its arena (linker.ld.j2).
INPUT_TARGET_SYMBOL = "lab_input_target"
STAGING_BUFFER_SYMBOL = "lab_input_buffer"  # the staging copy of the input (main.c.j2)


@dataclass(frozen=True)
class ImageSize:
    """Section totals of an ELF as `size` counts them (Berkeley format)."""

    text: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def static_ram(self) -> int:
        return self.data + self.bss


@dataclass(frozen=True)
class InputSlot:
    """A firmware with no staging copy of the input: `db` bytes and the host's preload go straight
    into the model's input, `input_bytes` at `offset` in the arena `arena_symbol` (which the
    workload keeps out of .bss, so that a preload survives start-up). The harness keeps the first
    inference's output (`output_bytes`) aside to report it. `arena_symbol` None: the workload
    points its input at the slot as it starts (TFLM's input tensor, placed by its interpreter),
    so `db` fills it after boot and nothing can be preloaded."""

    arena_symbol: str | None
    offset: int
    input_bytes: int
    output_bytes: int

    @property
    def preloadable(self) -> bool:
        return self.arena_symbol is not None


@dataclass(frozen=True)
class WorkloadSources:
    """What a firmware links in besides the harness: the workload table and its code.

    `files` are generated texts (name -> content); `library` are C files read from disk (a kernel
    library) or static archives (linked after the objects), `include_dirs` their headers.
    `input_capacity` sizes the staging copy that `db` fills; with an `input_slot` there is none
    and `db` writes into the slot. `defines` are -D flags for every C and C++ source. `cxx_flags`
    are added to the compilation of the C++ sources among `files` (.cc, .cpp), for instance a
    C++ library's -isystem and -D flags. `input_wire`: how `db` bytes become the input."""

    files: Mapping[str, str]
    input_capacity: int = 64
    library: tuple[Path, ...] = ()
    include_dirs: tuple[Path, ...] = ()
    label: str = "workload"
    cxx_flags: tuple[str, ...] = ()
    input_slot: InputSlot | None = None
    defines: tuple[str, ...] = ()
    input_wire: InputWire = RAW

    @property
    def input_staged(self) -> bool:
        """Whether the firmware keeps a staging copy of the input."""
        return self.input_slot is None

    @property
    def preloadable(self) -> bool:
        """Whether a runner may write the input before boot (at lab_input_target)."""
        return self.input_slot is None or self.input_slot.preloadable


@dataclass(frozen=True)
class Firmware:
    board: BoardSpec
    elf: Path
    size: ImageSize
    digest: str
    optimize: str
    label: str
    from_cache: bool = field(default=False, compare=False)
    input_staged: bool = True  # whether it keeps a staging copy of the input (WorkloadSources)
    input_wire: InputWire = RAW  # how its `db` bytes become the input (WorkloadSources)
    preloadable: bool = True  # whether a runner may write the input before boot (WorkloadSources)

    @property
    def stack_bytes(self) -> int:
        """RAM left above the static data: the stack's room."""
        return self.board.ram.length - self.size.static_ram


def cpu_flags(board: BoardSpec) -> list[str]:
    flags = [f"-mcpu={board.core}", "-mthumb"]
    if board.fpu == "none":
        flags.append("-mfloat-abi=soft")
    else:
        flags += ["-mfloat-abi=hard", f"-mfpu={board.fpu}"]
    return flags


def _common_flags(board: BoardSpec, optimize: str, std: str, include_dirs: tuple[Path, ...],
                  language: tuple[str, ...] = ()) -> list[str]:
    """The flags the C and the C++ sources share, in this order: the CPU, -O, -g, the standard,
    `language` flags, sections per function and datum, warnings as errors, the include paths."""
    return [
        *cpu_flags(board),
        f"-{optimize}",
        "-g",
        f"-std={std}",
        *language,
        "-ffunction-sections",
        "-fdata-sections",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-I.",
        *(f"-I{d}" for d in include_dirs),
    ]


def object_flags(board: BoardSpec, optimize: str, include_dirs: tuple[Path, ...],
                 defines: tuple[str, ...] = ()) -> list[str]:
    """The flags that turn one C file into an object: compile_flags without the link's."""
    return [*_common_flags(board, optimize, "gnu11", include_dirs), *(f"-D{d}" for d in defines)]


def compile_flags(board: BoardSpec, optimize: str, include_dirs: tuple[Path, ...],
                  defines: tuple[str, ...] = ()) -> list[str]:
    return [
        *object_flags(board, optimize, include_dirs, defines),
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-Wl,--gc-sections",
        "-Wl,-Map=firmware.map",
        "-T",
        "linker.ld",
    ]


def cxx_compile_flags(board: BoardSpec, optimize: str, include_dirs: tuple[Path, ...], extra: tuple[str, ...]) -> list[str]:
    """Flags for a workload's C++ sources (compiled to objects, then linked with the C sources):
    no exceptions, no RTTI, no thread-safe statics, as embedded C++ libraries are built."""
    return [*_common_flags(board, optimize, "gnu++17", include_dirs, CXX_LANGUAGE_FLAGS), *extra]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_template(name: str, **context: object) -> str:
    """Render one template of firmware_templates/ (used for workloads such as calibration/)."""
    return _environment().get_template(name).render(**context)


def render_harness(board: BoardSpec, input_capacity: int, input_slot: InputSlot | None = None,
                   input_wire: InputWire = RAW) -> dict[str, str]:
    """The board's harness files: startup, linker script, drivers, timer, command loop; with a
    staging copy of `input_capacity` bytes, or without one when the input goes to `input_slot`;
    `db` bytes converted as `input_wire` says."""
    env = _environment()
    if input_slot is None:
        input_target = STAGING_BUFFER_SYMBOL
    else:
        input_capacity = input_slot.input_bytes
        input_target = f"{input_slot.arena_symbol} + {input_slot.offset}" if input_slot.preloadable else ""
    context = {
        "board": board,
        "input_capacity": max(1, input_capacity),
        "input_staging": input_slot is None,
        "input_target": input_target,
        "input_wire": input_wire.c_defines(),
        # whole 4-byte words, so that a 32-bit output element never reads past the kept output
        "output_capacity": max(4, -(-(input_slot.output_bytes if input_slot else 0) // 4) * 4),
    }
    parts = {
        "startup.c": "startup.c.j2",
        "linker.ld": "linker.ld.j2",
        "main.c": "main.c.j2",
        "soc.c": f"soc/{board.soc}.c.j2",
        "uart.c": f"uart/{board.uart.kind}.c.j2",
        "timer.c": f"timer/{board.timer}.c.j2",
    }
    rendered = {}
    for out_name, template in parts.items():
        try:
            rendered[out_name] = env.get_template(template).render(**context)
        except jinja2.TemplateNotFound as missing:
            raise BuildError(
                f"board {board.name}: no firmware template {missing.name} in {TEMPLATES_DIR}"
            ) from None
    rendered["lab.h"] = (TEMPLATES_DIR / "lab.h").read_text()
    rendered["paint_stack.S"] = (TEMPLATES_DIR / "paint_stack.S").read_text()
    return rendered


def default_cache_dir() -> Path:
    return cache_root() / "firmware"


def build_firmware(
    board: BoardSpec,
    workload: WorkloadSources,
    *,
    optimize: str | None = None,
    cache_dir: Path | None = None,
) -> Firmware:
    """Build (or fetch from the cache) the firmware for `board` running `workload`."""
    optimize = optimize or board.optimize
    if optimize not in OPTIMIZE_LEVELS:
        raise BuildError(f"optimisation level {optimize!r} is not one of {', '.join(OPTIMIZE_LEVELS)}")
    compiler = require_tool(COMPILER)
    if workload.input_wire.anomaly_score and not workload.input_staged:
        raise BuildError(f"workload {workload.label}: the anomaly score reads the input after the inference, "
                         "which needs a staging copy of the input")
    sources = render_harness(board, workload.input_capacity, workload.input_slot, workload.input_wire)
    clashes = sorted(set(sources) & set(workload.files))
    if clashes:
        raise BuildError(f"workload file names clash with the harness: {', '.join(clashes)}")
    sources.update(workload.files)
    flags = compile_flags(board, optimize, workload.include_dirs, workload.defines)
    cxx_sources = sorted(n for n in sources if n.endswith(CXX_SUFFIXES))
    cxx_flags = cxx_compile_flags(board, optimize, workload.include_dirs,
                                  (*(f"-D{d}" for d in workload.defines), *workload.cxx_flags)) if cxx_sources else []

    digest = _digest(sources, workload.library, workload.include_dirs,
                     flags + ([tool_version(CXX_COMPILER), *cxx_flags] if cxx_sources else []))
    cache_root = cache_dir or default_cache_dir()
    final_dir = cache_root / digest
    if (final_dir / "firmware.elf").is_file() and (final_dir / "size.json").is_file():
        size = ImageSize(**json.loads((final_dir / "size.json").read_text()))
        return _checked(Firmware(board, final_dir / "firmware.elf", size, digest, optimize, workload.label, True,
                                 workload.input_staged, workload.input_wire, workload.preloadable))

    cache_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"build-{digest[:12]}-", dir=cache_root))
    for name, text in sources.items():
        (work / name).write_text(text)
    objects = _compile_cxx(board, work, cxx_sources, cxx_flags)
    library = _library_objects(board, workload, optimize, cache_root / "objects")
    inputs = [n for n in sources if n.endswith((".c", ".S"))] + objects + library
    command = [compiler, *flags, *inputs, *(CXX_LINK_LIBRARIES if objects else ()), "-o", "firmware.elf"]
    result = _build_step(command, work, f"{COMPILER} took more than {BUILD_TIMEOUT_S} s for {board.name}")
    if result.returncode != 0:
        output = result.stderr + result.stdout
        overflow = REGION_OVERFLOW.search(output)
        if overflow:
            raise RegionOverflowError(_explain_failure(board, output, work), overflow.group(1), int(overflow.group(2)))
        raise BuildError(_explain_failure(board, output, work))
    size = measure_size(work / "firmware.elf")
    (work / "size.json").write_text(json.dumps(size.__dict__))
    try:
        work.rename(final_dir)
    except OSError:  # another process built the same firmware at the same time: keep theirs
        shutil.rmtree(work, ignore_errors=True)
    return _checked(Firmware(board, final_dir / "firmware.elf", size, digest, optimize, workload.label, False,
                             workload.input_staged, workload.input_wire, workload.preloadable))


def _build_step(command: list[str], work: Path, too_slow: str) -> subprocess.CompletedProcess[str]:
    """Run one compiler command in `work`, logging it to build-command.txt; BuildError on a timeout."""
    with open(work / "build-command.txt", "a") as log:
        log.write(" ".join(command) + "\n")
    try:
        return subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{too_slow}; sources in {work}") from None
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: an unfinished build is not kept in the cache
        shutil.rmtree(work, ignore_errors=True)
        raise


def _compile_cxx(board: BoardSpec, work: Path, names: list[str], flags: list[str]) -> list[str]:
    """Compile the C++ sources in `work` to objects with arm-none-eabi-g++; their file names."""
    if not names:
        return []
    compiler = require_tool(CXX_COMPILER)
    objects = []
    for name in names:
        target = name.rsplit(".", 1)[0] + ".o"
        result = _build_step([compiler, *flags, "-c", name, "-o", target], work,
                             f"{CXX_COMPILER} took more than {BUILD_TIMEOUT_S} s on {name}")
        if result.returncode != 0:
            raise BuildError(f"{CXX_COMPILER} failed on {name} for {board.name}; sources kept in {work}\n"
                             f"{(result.stderr + result.stdout).strip()}")
        objects.append(target)
    return objects


def _library_objects(board: BoardSpec, workload: WorkloadSources, optimize: str, cache: Path) -> list[str]:
    """The workload's library as the link takes it: each C file compiled once per compiler, flags
    and content (its headers included) into an object kept in `cache`; archives as they are. The
    image is the same as with the C files on the link's command line, which compiles each apart too."""
    flags = object_flags(board, optimize, workload.include_dirs, workload.defines)
    linked = []
    for path in workload.library:
        if Path(path).suffix != ".c":
            linked.append(str(path))
            continue
        digest = _digest({}, (Path(path),), workload.include_dirs, flags)
        target = cache / f"{Path(path).stem}-{digest}.o"
        if not target.is_file():
            write_atomically(target, lambda temporary: _compile_object(board, path, flags, temporary))
        linked.append(str(target))
    return linked


def _compile_object(board: BoardSpec, source: Path, flags: list[str], target: Path) -> None:
    try:
        result = subprocess.run([require_tool(COMPILER), *flags, "-c", str(source), "-o", str(target)],
                                cwd=target.parent, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{COMPILER} took more than {BUILD_TIMEOUT_S} s on {source}") from None
    if result.returncode != 0:
        raise BuildError(f"{COMPILER} failed on {source} for {board.name}\n{(result.stderr + result.stdout).strip()}")


def measure_size(elf: Path) -> ImageSize:
    size_tool = require_tool("arm-none-eabi-size")
    result = subprocess.run([size_tool, "-B", str(elf)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise BuildError(f"arm-none-eabi-size failed on {elf}: {result.stderr.strip()}")
    text, data, bss = (int(v) for v in result.stdout.splitlines()[1].split()[:3])
    return ImageSize(text=text, data=data, bss=bss)


def symbol_address(elf: Path, name: str) -> int:
    """The address of a global symbol in the ELF (for instance the input buffer)."""
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as handle:
        table = ELFFile(handle).get_section_by_name(".symtab")
        symbols = table.get_symbol_by_name(name) if table is not None else None
    if not symbols:
        raise BuildError(f"{elf}: no symbol {name!r}")
    return int(symbols[0]["st_value"])


def _checked(firmware: Firmware) -> Firmware:
    board, size = firmware.board, firmware.size
    if firmware.stack_bytes < board.min_stack_bytes:
        raise BuildError(
            f"firmware '{firmware.label}' does not fit {board.name}: static data {size.static_ram} B "
            f"leaves {firmware.stack_bytes} B of its {board.ram.length} B RAM for the stack, "
            f"less than the board's min_stack_bytes {board.min_stack_bytes}"
        )
    return firmware


def _digest(sources: Mapping[str, str], library: tuple[Path, ...], include_dirs: tuple[Path, ...], flags: list[str]) -> str:
    h = hashlib.sha256()
    h.update(tool_version(COMPILER).encode())
    h.update("\0".join(flags).encode())
    for name in sorted(sources):
        h.update(f"\0{name}\0".encode())
        h.update(sources[name].encode())
    for path in library:
        h.update(f"\0{path}\0".encode())
        h.update(Path(path).read_bytes())
    for folder in include_dirs:  # headers the sources include (a kernel library's)
        for header in sorted(Path(folder).glob("*.h")):
            h.update(f"\0{header}\0".encode())
            h.update(header.read_bytes())
    return h.hexdigest()[:32]


def _explain_failure(board: BoardSpec, output: str, work: Path) -> str:
    overflow = REGION_OVERFLOW.search(output)
    if overflow:
        region, excess = overflow.group(1), int(overflow.group(2))
        budget = board.ram.length if region == "RAM" else board.flash.length
        head = (
            f"firmware does not fit {board.name}: {region} overflowed by {excess} B "
            f"(the board has {budget} B of {region.lower()})"
        )
    else:
        head = f"{COMPILER} failed building firmware for {board.name}"
    return f"{head}; sources kept in {work}\n{output.strip()}"
