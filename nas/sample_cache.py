"""The footprints of a grid point's sampled networks, kept in the cache: `nas space`, `nas train`,
`nas search` and `nas run` choose (W, R) from the same sampling, and a stopped run that starts
again, so each of them reuses what one of them computed.

A file is named by everything its figures depend on: the space's data, the grid point, the number
of networks, the seed, the patch limit, and the source of the `engine` and `nas` packages (the
planner, the shape graph, the footprint and the patch plans are in them). Any change of code makes
new files, so a figure is never stale; an unreadable file is computed again."""
from __future__ import annotations

import hashlib
import json
import zipfile
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import numpy as np

from engine.cache import cache_root, write_atomically
from nas.lutkey import python_sources
from nas.space import SearchSpace, space_to_dict

ARRAYS = ("arena", "constants", "ops", "macs", "patched_arena", "patch_ops")


@lru_cache(maxsize=1)
def sampling_code_digest() -> str:
    """A short hash of the source of the packages whose code makes a sample's figures."""
    digest = hashlib.sha256()
    for package in ("engine", "nas"):
        for path, source in python_sources(files(package), package):
            digest.update(path.encode() + b"\0" + source + b"\0")
    return digest.hexdigest()[:16]


def sample_path(space: SearchSpace, width: float, resolution: int, samples: int, seed: int,
                patch_limit: int | None) -> Path:
    """Where the sample of these arguments (`nas.space_opt.sample_point`'s) is kept."""
    key = json.dumps({"space": space_to_dict(space), "width": width, "resolution": resolution, "samples": samples,
                      "seed": seed, "patch_limit": patch_limit, "code": sampling_code_digest()}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in space.name)
    return cache_root() / "nas" / "samples" / f"{safe}-w{width:g}-r{resolution}-{digest}.npz"


def load_sample(path: Path):
    """The GridSample kept at `path`, or None where there is none or it cannot be read."""
    from nas.space_opt import GridSample

    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {name: data[name] if name in data.files else None for name in ARRAYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None
    return GridSample(meta["width"], meta["resolution"], **arrays, from_cache=True)


def save_sample(path: Path, sample) -> None:
    arrays = {name: getattr(sample, name) for name in ARRAYS if getattr(sample, name) is not None}
    meta = json.dumps({"width": sample.width, "resolution": sample.resolution})

    def write(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            np.savez(handle, meta=np.array(meta), **arrays)

    write_atomically(path, write)
