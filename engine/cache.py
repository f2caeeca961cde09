"""Where build caches live: $TINYLAB_CACHE, else $XDG_CACHE_HOME/tinylab, else ~/.cache/tinylab."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("TINYLAB_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "tinylab"


def write_text_atomically(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a temporary file of this process beside it, then a rename,
    so that a reader (another process of a parallel test run, say) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
