"""Where supernet training keeps its checkpoints, and writing them so that a stopped run never
leaves half a file: the cache folder (`engine.cache.cache_root`, `nas/supernet/`), one file per
run, named by space, W, R, data set and seed, and keyed by a hash of everything that changes the
weights (the space's fields, the data set, every hyper-parameter)."""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from engine.cache import cache_root, write_atomically
from hil.errors import LabError

CHECKPOINT_VERSION = 1  # bump when what a checkpoint holds, or how training runs, changes


class CheckpointError(LabError):
    """A checkpoint file that cannot be read."""


def checkpoint_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / "nas" / "supernet"


def run_key(fields: dict[str, Any]) -> str:
    """A short hash of `fields` (JSON-ready) and the checkpoint version."""
    text = json.dumps({"version": CHECKPOINT_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def checkpoint_path(space: str, width: float, resolution: int, dataset: str, seed: int, key: str,
                    root: Path | None = None) -> Path:
    """The readable name of a run's checkpoint file; `key` tells runs with other settings apart."""
    data = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(dataset).stem if os.sep in dataset else dataset)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(space).stem if os.sep in space else space)
    return checkpoint_dir(root) / f"{name}-w{width:g}-r{resolution}-{data}-s{seed}-{key}.pt"


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` atomically (a temporary file beside it, then a rename)."""
    write_atomically(path, lambda temporary: torch.save(state, temporary))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The state saved at `path`, or None when there is none."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated or foreign file: pickle, zip and torch errors alike
        raise CheckpointError(f"checkpoint {path} cannot be read ({error}); delete it to start the run again") from None
