"""The engine's own files (C kernels, jinja2 templates), found through importlib.resources so that
they load the same from a checkout and from an installed wheel (pyproject's package-data)."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

_extracted: dict[str, Path] = {}


def real_dir(folder: Traversable, key: str) -> Path:
    """`folder` as a directory on disk: itself when it is one (any ordinary install), else a copy
    extracted once per process (a zipped install), since gcc and jinja2 need real paths."""
    if isinstance(folder, Path):
        return folder.resolve()
    if key not in _extracted:
        target = Path(tempfile.mkdtemp(prefix=f"tinylab-{key.replace('/', '-')}-"))
        atexit.register(shutil.rmtree, target, ignore_errors=True)
        _copy_tree(folder, target)
        _extracted[key] = target
    return _extracted[key]


def _copy_tree(folder: Traversable, target: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir():
            (target / entry.name).mkdir()
            _copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())


def package_dir(package: str, name: str) -> Path:
    """The folder `name` shipped inside `package`, as a real directory; a clear error if missing."""
    folder = files(package).joinpath(name)
    if not folder.is_dir():
        raise FileNotFoundError(f"{package} has no '{name}' folder: the installation is incomplete "
                                "(reinstall tinylab; its wheel ships it as package data)")
    return real_dir(folder, f"{package}/{name}")


def kernels_dir() -> Path:
    """engine/kernels: the C kernels (tl_*.c) and their headers, an include path for gcc."""
    return package_dir("engine", "kernels")


def templates_dir() -> Path:
    """engine/templates: the jinja2 templates of a compiled model's model.c / model.h."""
    return package_dir("engine", "templates")
