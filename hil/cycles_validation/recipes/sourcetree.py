"""Fetched source folders a recipe reads: found through their SourceFolder's environment variable,
checked for the files the recipe needs, with a LabError that says how to obtain them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from hil.cycles_validation.published import SourceFolder
from hil.errors import LabError


class SourceFolderError(LabError):
    """A recipe's source folder is not given, not there, or not the sources it names."""


def source_folder(source: SourceFolder, folders: Mapping[str, Path] | None = None) -> Path:
    """The folder for `source`: from `folders` (SourceFolder.env -> folder) or its environment
    variable; refused by name when neither gives an existing folder."""
    given = (folders or {}).get(source.env) or os.environ.get(source.env)
    if not given:
        raise SourceFolderError(f"{source.env} is not set: it names the folder of {source.what}; "
                                f"obtain it with: {source.obtain}")
    path = Path(given).expanduser()
    if not path.is_dir():
        raise SourceFolderError(f"{source.env}={given} is not a folder; it should hold {source.what} "
                                f"(obtain it with: {source.obtain})")
    return path.resolve()


def require_files(source: SourceFolder, root: Path, relative: tuple[str, ...]) -> None:
    """Refuse `root` when a file the recipe needs is missing: the folder is not `source.what`."""
    missing = [name for name in relative if not (root / name).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise SourceFolderError(f"{source.env}={root} is not {source.what}: it has no {shown} "
                                f"(obtain it with: {source.obtain})")
