"""TFLM's static library built for a board by TFLM's own Makefile (`tinylab tflm build`): the make
line for the board's core, FPU and float ABI, a run of it with progress, and the library with its
headers put in the lab's cache, one folder per TFLM commit, kernels, core, FPU and build type, to
pass as --tflm-dir. Nothing is downloaded when the third-party folders are there already."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from engine.cache import cache_root
from hil.errors import LabError
from hil.firmware_build.toolchain import require_tool, tool_version
from hil.targets.boardspec import BoardSpec

MAKEFILE = "tensorflow/lite/micro/tools/make/Makefile"
CHECKOUT_DOWNLOADS = "tensorflow/lite/micro/tools/make/downloads"
ARCHIVE_NAME = "libtensorflow-microlite.a"
MANIFEST_NAME = "tinylab-tflm.json"  # what a folder of this cache was built for (read by the library check)
LOG_NAME = "make.log"
# Our names for the kernels -> TFLM's OPTIMIZED_KERNEL_DIR ("" for its reference kernels).
KERNELS = {"reference": "", "cmsis-nn": "cmsis_nn"}
BUILD_TYPES = ("release", "release_with_logs", "default", "debug")  # TFLM's BUILD_TYPE values
# TFLM's TARGET_ARCH for its cortex_m_generic target, per (core, hard float). "+fp" is the
# hard-float ABI; the FPU itself is named by FPU= (without it a Cortex-M7 gets a double-precision one).
TARGET_ARCHES = {
    ("cortex-m4", False): "cortex-m4",
    ("cortex-m4", True): "cortex-m4+fp",
    ("cortex-m7", False): "cortex-m7",
    ("cortex-m7", True): "cortex-m7+fp",
    ("cortex-m33", True): "cortex-m33",
}
# The folders the Makefile fetches for a cortex_m_generic build (its scripts skip a folder that
# exists), and the one a CMSIS-NN build needs besides.
THIRD_PARTY_FOLDERS = ("flatbuffers", "gemmlowp", "ruy", "kissfft", "pigweed", "cmsis")
CMSIS_NN_FOLDER = "cmsis_nn"
# The Makefile runs generate_cc_arrays.py with `python3` while it reads itself; it imports these.
MAKEFILE_PYTHON_MODULES = {"numpy": "numpy", "PIL": "pillow"}
LIST_GOALS = ("list_library_sources", "list_third_party_sources", "list_library_headers", "list_third_party_headers")
MAKE_TIMEOUT_S = 3 * 3600
LOG_TAIL_LINES = 30
PROGRESS_POLL_S = 2.0


class TflmBuildError(LabError):
    """TFLM's library cannot be built here: a bad checkout or board, a missing tool or folder, or
    a failed make (with the log's tail)."""


@dataclass(frozen=True)
class TflmBuildSpec:
    """One library to build: the TFLM checkout, the board it is for, the kernels and build type,
    and where the third-party folders and CMSIS-NN are when not in the checkout's downloads/."""

    checkout: Path
    board: BoardSpec
    kernels: str = "reference"
    build_type: str = "release"
    downloads: Path | None = None
    cmsis_nn: Path | None = None
    # Variables the Makefile sets that the make line overrides, e.g. its optimisation levels
    # (("KERNEL_OPTIMIZATION_LEVEL", "-Ofast"),): part of the cache key.
    overrides: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.kernels not in KERNELS:
            raise TflmBuildError(f"kernels {self.kernels!r}: choose one of {', '.join(KERNELS)}")
        if self.build_type not in BUILD_TYPES:
            raise TflmBuildError(f"build type {self.build_type!r}: choose one of {', '.join(BUILD_TYPES)}")
        if self.cmsis_nn is not None and self.kernels != "cmsis-nn":
            raise TflmBuildError("--cmsis-nn is the CMSIS-NN source of a cmsis-nn build; the reference kernels do not use it")
        self.target_arch  # a core or float ABI that TFLM's Makefile cannot build is refused here

    @property
    def hard_float(self) -> bool:
        return self.board.fpu != "none"

    @property
    def target_arch(self) -> str:
        arch = TARGET_ARCHES.get((self.board.core, self.hard_float))
        if arch is None:
            abi = "hard-float" if self.hard_float else "soft-float"
            known = ", ".join(f"{core} ({'hard' if hard else 'soft'} float)" for core, hard in TARGET_ARCHES)
            raise TflmBuildError(f"board {self.board.name}: TFLM's cortex_m_generic target has no {abi} "
                                 f"{self.board.core} build; it builds for {known}")
        return arch

    @property
    def downloads_dir(self) -> Path:
        return (self.downloads or self.checkout / CHECKOUT_DOWNLOADS).resolve()

    @property
    def target_name(self) -> str:
        """The core, FPU, kernels and build type, as a folder name."""
        fpu = self.board.fpu if self.hard_float else "soft-float"
        return f"{self.board.core}-{fpu}-{self.kernels}-{self.build_type}"

    def make_variables(self, toolchain_root: str, gendir: Path) -> dict[str, str]:
        """The variables of the make line, in order."""
        variables = {
            "TARGET": "cortex_m_generic",
            "TARGET_ARCH": self.target_arch,
            **({"FPU": self.board.fpu} if self.hard_float else {}),
            "BUILD_TYPE": self.build_type,
            "TARGET_TOOLCHAIN_ROOT": toolchain_root,
            **({"OPTIMIZED_KERNEL_DIR": KERNELS[self.kernels]} if KERNELS[self.kernels] else {}),
            **({"CMSIS_NN_PATH": str(self.cmsis_nn.resolve())} if self.cmsis_nn is not None else {}),
            **({"DOWNLOADS_DIR": str(self.downloads.resolve())} if self.downloads is not None else {}),
            **dict(self.overrides),
            **self.gendir_variable(gendir),
        }
        return variables

    def gendir_variable(self, gendir: Path) -> dict[str, str]:
        """Where make puts its objects and library: BASE_GENDIR, or for an older Makefile that has
        none (tflite-micro before late 2022 fixes GENDIR under its own tools/make/gen/) GENDIR itself,
        one folder under `gendir` as BASE_GENDIR would make."""
        makefile = self.checkout / MAKEFILE
        if makefile.is_file() and "BASE_GENDIR" not in makefile.read_text(errors="replace"):
            return {"GENDIR": f"{gendir}/{self.target_name}/"}
        return {"BASE_GENDIR": str(gendir)}


def make_command(variables: dict[str, str], goals: Iterable[str], jobs: int = 1) -> list[str]:
    """`make -f MAKEFILE VAR=VALUE... GOALS -jN`, run in the TFLM checkout."""
    return ["make", "-f", MAKEFILE, *(f"{k}={v}" for k, v in variables.items()), *goals,
            *([f"-j{jobs}"] if jobs > 1 else [])]


def toolchain_root() -> str:
    """The folder of arm-none-eabi-gcc, with the trailing slash TFLM's Makefile expects (without
    TARGET_TOOLCHAIN_ROOT it downloads a GCC of its own)."""
    return str(Path(require_tool("arm-none-eabi-gcc", TflmBuildError)).parent) + "/"


@dataclass(frozen=True)
class TflmBuild:
    """A library in the cache: its folder (pass it as --tflm-dir) and what it was built for."""

    directory: Path
    manifest: dict
    from_cache: bool = False
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def archive(self) -> Path:
        return self.directory / "lib" / ARCHIVE_NAME

    def describe(self) -> str:
        m = self.manifest
        fpu = m["fpu"] if m["fpu"] != "none" else "no FPU"
        return (f"TFLM {m['kernels']} kernels, {m['build_type']}, for {m['core']} ({fpu}, {m['float_abi']} float), "
                f"TFLM {m['tflm_commit'][:12]}")


def default_cache_dir() -> Path:
    return cache_root() / "tflm"


def check_checkout(checkout: Path) -> Path:
    checkout = Path(checkout).expanduser()
    if not (checkout / MAKEFILE).is_file():
        raise TflmBuildError(f"{checkout} is not a TFLM checkout: no {MAKEFILE} in it "
                             "(clone https://github.com/tensorflow/tflite-micro and give its folder as --src)")
    return checkout.resolve()


def missing_downloads(spec: TflmBuildSpec) -> list[str]:
    """The third-party folders the Makefile would try to download (absent from the downloads folder)."""
    wanted = list(THIRD_PARTY_FOLDERS) + ([CMSIS_NN_FOLDER] if spec.kernels == "cmsis-nn" and spec.cmsis_nn is None else [])
    return [name for name in wanted if not (spec.downloads_dir / name).is_dir()]


def check_makefile_python() -> None:
    """The modules generate_cc_arrays.py imports must be importable by this Python, which the
    Makefile's `python3` runs as."""
    absent = [package for module, package in MAKEFILE_PYTHON_MODULES.items() if importlib.util.find_spec(module) is None]
    if absent:
        raise TflmBuildError(f"TFLM's Makefile runs tensorflow/lite/micro/tools/generate_cc_arrays.py while it reads "
                             f"itself, which needs {', '.join(absent)} in the lab's Python ({sys.executable}): "
                             f"install the lab with its dependencies (scripts/install.sh)")


def python_shim(folder: Path) -> Path:
    """A folder holding `python3`, which runs this Python (its virtual environment included)."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "python3"
    if shim.is_symlink():
        shim.unlink()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    return folder


def checkout_commit(checkout: Path) -> tuple[str, bool]:
    """The checkout's commit and whether its tracked files differ from it ("unversioned" outside git)."""
    git = shutil.which("git")
    if git is None or not (checkout / ".git").exists():
        return "unversioned", False
    head = subprocess.run([git, "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=60)
    if head.returncode != 0:
        return "unversioned", False
    status = subprocess.run([git, "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=120)
    return head.stdout.strip(), bool(status.stdout.strip())


def build_key(spec: TflmBuildSpec, commit: str, dirty: bool) -> str:
    """The cache folder's name: TFLM's commit, core, FPU, kernels and build type, and a short hash
    of the rest that changes the library (compiler, CMSIS-NN source, a modified checkout)."""
    identity = {"gcc": tool_version("arm-none-eabi-gcc"), "cmsis_nn": str(spec.cmsis_nn or ""),
                "downloads": str(spec.downloads_dir), "dirty": _diff_digest(spec.checkout) if dirty else "",
                **({"overrides": list(spec.overrides)} if spec.overrides else {})}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{commit[:12]}{'-dirty' if dirty else ''}-{spec.target_name}-{digest}"


def _diff_digest(checkout: Path) -> str:
    diff = subprocess.run(["git", "-C", str(checkout), "diff", "HEAD"], capture_output=True, timeout=120)
    return hashlib.sha256(diff.stdout).hexdigest()


def cached_builds(cache_dir: Path | None = None) -> list[TflmBuild]:
    """Every library of the cache, by folder name."""
    root = cache_dir or default_cache_dir()
    found = []
    for manifest in sorted(root.glob(f"*/{MANIFEST_NAME}")):
        try:
            found.append(TflmBuild(manifest.parent, json.loads(manifest.read_text()), from_cache=True))
        except ValueError:
            continue
    return found


def build_tflm_library(spec: TflmBuildSpec, *, jobs: int = 1, cache_dir: Path | None = None, force: bool = False,
                       progress: Callable[[int, int, str], None] | None = None) -> TflmBuild:
    """The library for `spec` from the cache, or built now with TFLM's Makefile and put there.
    `progress(done, total, object)` after each object compiled."""
    spec = replace(spec, checkout=check_checkout(spec.checkout))
    if spec.downloads is not None and not spec.downloads.is_dir():
        raise TflmBuildError(f"--downloads {spec.downloads}: no such folder")
    if spec.cmsis_nn is not None and not (spec.cmsis_nn / "Source").is_dir():
        raise TflmBuildError(f"--cmsis-nn {spec.cmsis_nn}: not a CMSIS-NN checkout (no Source/ folder)")
    missing = missing_downloads(spec)
    if missing and spec.downloads is not None:
        raise TflmBuildError(f"--downloads {spec.downloads} lacks {', '.join(missing)}: TFLM's Makefile would try to "
                             "download them; fetch them first (a TFLM checkout's tensorflow/lite/micro/tools/make/downloads/ "
                             "after one online build holds them all)")
    notes = (f"TFLM's Makefile will download {', '.join(missing)} into {spec.downloads_dir} (needs the network)",) if missing else ()
    root = toolchain_root()
    require_tool("make", TflmBuildError)
    check_makefile_python()
    commit, dirty = checkout_commit(spec.checkout)
    cache = cache_dir or default_cache_dir()
    key = build_key(spec, commit, dirty)
    final = cache / key
    if (final / MANIFEST_NAME).is_file() and (final / "lib" / ARCHIVE_NAME).is_file() and not force:
        return TflmBuild(final, json.loads((final / MANIFEST_NAME).read_text()), from_cache=True, notes=notes)

    work = cache / ".work" / key
    variables = spec.make_variables(root, work / "gen")
    environment = {**os.environ, "PATH": f"{python_shim(work / 'bin')}{os.pathsep}{os.environ.get('PATH', '')}"}
    lists = _make_lists(spec, variables, environment)
    started = time.monotonic()
    command = make_command(variables, ["microlite"], jobs)
    log = work / LOG_NAME
    _run_make(spec, command, environment, log, work / "gen", len(lists[0]) + len(lists[1]), progress)
    archives = sorted((work / "gen").glob(f"*/lib/{ARCHIVE_NAME}"))
    if len(archives) != 1:
        raise TflmBuildError(f"make finished but left {len(archives)} {ARCHIVE_NAME} under {work / 'gen'}; log: {log}")
    manifest = {
        "tflm_commit": commit, "checkout_modified": dirty, "checkout": str(spec.checkout),
        "board": spec.board.name, "core": spec.board.core, "fpu": spec.board.fpu,
        "float_abi": "hard" if spec.hard_float else "soft", "kernels": spec.kernels, "build_type": spec.build_type,
        "make_command": " ".join(make_command({k: v for k, v in variables.items() if k not in ("BASE_GENDIR", "GENDIR")},
                                              ["microlite"], jobs)),
        "compiler": tool_version("arm-none-eabi-gcc"), "built_seconds": round(time.monotonic() - started, 1),
        "archive_sha256": hashlib.sha256(archives[0].read_bytes()).hexdigest(),
    }
    _install(spec, archives[0], lists[2] + lists[3], manifest, log, cache, final)
    shutil.rmtree(work, ignore_errors=True)
    return TflmBuild(final, manifest, from_cache=False, seconds=manifest["built_seconds"], notes=notes)


def _make_lists(spec: TflmBuildSpec, variables: dict[str, str],
                environment: dict[str, str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """The library's sources, third-party sources, headers and third-party headers, as the
    Makefile lists them for this build."""
    command = make_command(variables, LIST_GOALS)
    try:
        result = subprocess.run(command, cwd=spec.checkout, env=environment, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise TflmBuildError(f"TFLM's Makefile took more than 600 s to list its files: {' '.join(command)}") from None
    lines = result.stdout.splitlines()
    if result.returncode != 0 or len(lines) < len(LIST_GOALS):
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-LOG_TAIL_LINES:])
        raise TflmBuildError(f"TFLM's Makefile failed while reading itself (in {spec.checkout}):\n"
                             f"  {' '.join(command)}\n{tail}")
    sources, third_sources, headers, third_headers = (line.split() for line in lines[-len(LIST_GOALS):])
    if not sources or not headers:
        raise TflmBuildError(f"TFLM's Makefile listed no library sources or headers: {' '.join(command)}")
    return sources, third_sources, headers, third_headers


def _run_make(spec: TflmBuildSpec, command: list[str], environment: dict[str, str], log: Path, gendir: Path,
              total: int, progress: Callable[[int, int, str], None] | None) -> None:
    """Run make, its output to `log`, calling `progress` as objects appear under `gendir` (TFLM's
    Makefile does not echo its compile commands); a failure raises with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    seen = 0
    with open(log, "w") as out:
        out.write(f"# in {spec.checkout}\n# {' '.join(command)}\n")
        out.flush()
        process = subprocess.Popen(command, cwd=spec.checkout, env=environment, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + MAKE_TIMEOUT_S
        while process.poll() is None:
            time.sleep(PROGRESS_POLL_S)
            if progress is not None:
                built = sorted(gendir.glob("*/obj/**/*.o"), key=lambda p: p.stat().st_mtime)
                if len(built) != seen:
                    seen = len(built)
                    progress(min(seen, total), max(total, seen), built[-1].name)
            if time.monotonic() > deadline:
                process.kill()
                out.write(f"\n# tinylab: stopped after {MAKE_TIMEOUT_S} s\n")
        code = process.wait()
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
        raise TflmBuildError(f"TFLM's make failed (exit {code}) building {spec.target_name}; the whole log: {log}\n"
                             f"  {' '.join(command)}\n--- last lines of the log ---\n{tail}")


def header_destination(header: str, spec: TflmBuildSpec) -> Path | None:
    """Where a header the Makefile lists goes in the library folder: TFLM's own at their path,
    third-party ones under third_party/ (as create_tflm_tree.py lays them out)."""
    path = Path(header)
    absolute = (path if path.is_absolute() else spec.checkout / path).resolve()
    for base, prefix in ((spec.downloads_dir, Path("third_party")),
                         *(((spec.cmsis_nn.resolve(), Path("third_party") / CMSIS_NN_FOLDER),) if spec.cmsis_nn else ()),
                         (spec.checkout, Path("."))):
        try:
            return prefix / absolute.relative_to(base)
        except ValueError:
            continue
    return None


def _install(spec: TflmBuildSpec, archive: Path, headers: list[str], manifest: dict, log: Path, cache: Path,
             final: Path) -> None:
    """Assemble the library folder (lib/, headers, third_party/, the manifest and make's log)
    beside `final`, then move it into place."""
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=cache))
    (staging / "lib").mkdir()
    shutil.copy2(archive, staging / "lib" / ARCHIVE_NAME)
    for header in headers:
        destination = header_destination(header, spec)
        source = Path(header) if Path(header).is_absolute() else spec.checkout / header
        if destination is None or not source.is_file():
            continue
        (staging / destination).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, staging / destination)
    for licence in ("LICENSE",):
        if (spec.checkout / licence).is_file():
            shutil.copy2(spec.checkout / licence, staging / licence)
    shutil.copy2(log, staging / LOG_NAME)
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
