"""Where build caches live: $TINYLAB_CACHE, else $XDG_CACHE_HOME/tinylab, else ~/.cache/tinylab."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def cache_root() -> Path:
    root = os.environ.get("TINYLAB_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "tinylab"


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Make `path` whole or not at all: `write` fills a temporary file of this process beside it,
    which is then renamed, so that a reader (another process running beside this one) never sees
    half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_text_atomically(path: Path, text: str) -> None:
    """write_atomically for UTF-8 text."""
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
