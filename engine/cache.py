"""Where build caches live: $TINYLAB_CACHE, else $XDG_CACHE_HOME/tinylab, else ~/.cache/tinylab."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("TINYLAB_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "tinylab"
