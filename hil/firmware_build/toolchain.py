"""The external tools the lab drives, found on the PATH, with their versions for provenance."""
from __future__ import annotations

import functools
import shutil
import subprocess

from hil.errors import BuildError, RunnerError

INSTALL_HINT = "run scripts/setup.sh, or: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"


def require_tool(name: str, error: type[Exception] = BuildError) -> str:
    """The tool's full path, or an error saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise error(f"{name} not found on the PATH ({INSTALL_HINT})")
    return path


@functools.cache
def tool_version(name: str) -> str:
    """The first line of `NAME --version`, or 'absent'."""
    path = shutil.which(name)
    if path is None:
        return "absent"
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def toolchain_summary(*names: str) -> str:
    """One string naming each tool's version, stored with every measurement."""
    return "; ".join(f"{name}: {tool_version(name)}" for name in names)


def require_qemu() -> str:
    return require_tool("qemu-system-arm", RunnerError)
