"""Shared libraries that the lab builds from its own C with the host's compiler, into the build
cache (engine.cache), once per source, headers and flags: the QEMU profiling plugin of hil/cycles,
the supernet's depthwise gradient kernel of nas/."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from engine.cache import cache_root, write_atomically

COMPILE_TIMEOUT_S = 120


class HostLibraryError(Exception):
    """No host C compiler, or the source did not compile; the message says which, with its output."""


def host_library(folder: str, name: str, source: Path, flags: Sequence[str], headers: Sequence[Path] = (),
                 key_extra: bytes = b"") -> Path:
    """`source` compiled with `flags` into cache/<folder>/<name>-<hash>.so (built once: later calls,
    in any process, find it); `headers` and `key_extra` (what else the build depends on) enter the hash."""
    content = source.read_bytes() + b"".join(header.read_bytes() for header in headers)
    key = hashlib.sha256(content + " ".join(flags).encode() + key_extra).hexdigest()[:12]
    target = cache_root() / folder / f"{name}-{key}.so"
    if target.exists():
        return target
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise HostLibraryError("no host C compiler (gcc): run scripts/install.sh, or: apt-get install gcc")

    def compile_to(partial: Path) -> None:
        try:
            result = subprocess.run([compiler, *flags, "-o", str(partial), str(source)], capture_output=True,
                                    text=True, timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise HostLibraryError(f"compiling {source} took over {COMPILE_TIMEOUT_S} s") from None
        if result.returncode != 0:
            raise HostLibraryError(f"cannot compile {source}:\n{result.stderr.strip()}")

    write_atomically(target, compile_to)
    return target
