"""A published submission's own sources compiled with its own flags into a static library, cached
in the lab's cache by the hash of every source, header, flag and compiler that goes in."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hil.errors import BuildError
from hil.firmware_build.toolchain import require_tool, tool_version

ARCHIVER = "arm-none-eabi-ar"
COMPILE_WORKERS = 2
COMPILE_TIMEOUT_S = 1200  # a generated model of several MB in one C file


@dataclass(frozen=True)
class CompileUnit:
    """One source file, its compiler (arm-none-eabi-gcc or -g++) and every flag it is built with."""

    source: Path
    compiler: str
    flags: tuple[str, ...]


def static_library(label: str, units: list[CompileUnit], headers: list[Path], cache: Path) -> Path:
    """`units` compiled and archived as `cache/cycles-recipes/<label>-<hash>/libsubmission.a`;
    `headers` are hashed too, so that a changed header rebuilds."""
    digest = hashlib.sha256()
    for compiler in sorted({unit.compiler for unit in units}):
        digest.update(tool_version(compiler).encode())
    for unit in units:
        digest.update(f"\0{unit.source.name}\0{unit.compiler}\0{' '.join(unit.flags)}\0".encode())
        digest.update(unit.source.read_bytes())
    for header in sorted(headers):
        digest.update(f"\0{header.name}\0".encode())
        digest.update(header.read_bytes())
    final = cache / "cycles-recipes" / f"{label}-{digest.hexdigest()[:24]}"
    archive = final / "libsubmission.a"
    if archive.is_file():
        return archive
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=final.parent))
    try:
        objects = _compile_all(units, work)
        result = subprocess.run([require_tool(ARCHIVER), "rcs", str(work / archive.name), *objects],
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise BuildError(f"{ARCHIVER} failed for {label}: {result.stderr.strip()}")
        (work / "build-commands.txt").write_text(
            "".join(f"{unit.compiler} {' '.join(unit.flags)} -c {unit.source}\n" for unit in units))
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if archive.is_file():  # built by another process meanwhile
            return archive
        raise
    return archive


def _compile_all(units: list[CompileUnit], work: Path) -> list[str]:
    def compile_one(index_unit: tuple[int, CompileUnit]) -> str:
        index, unit = index_unit
        target = str(work / f"{index:04d}-{unit.source.stem}.o")
        command = [require_tool(unit.compiler), *unit.flags, "-c", str(unit.source), "-o", target]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BuildError(f"{unit.compiler} took more than {COMPILE_TIMEOUT_S} s on {unit.source}") from None
        if result.returncode != 0:
            raise BuildError(f"{unit.compiler} failed on {unit.source} with the submission's flags:\n"
                             f"{(result.stderr + result.stdout).strip()[-4000:]}")
        return target

    with ThreadPoolExecutor(COMPILE_WORKERS) as pool:
        return list(pool.map(compile_one, enumerate(units)))
