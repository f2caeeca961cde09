"""Fetched source trees a recipe builds from, each at one commit: found through its SourceFolder's
environment variable and recognised at that commit by its git HEAD or, in a tree exported without
.git (git archive), by the git blob ids of marker files at that commit."""
from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from hil.cycles_validation.published import SourceFolder
from hil.cycles_validation.recipes.sourcetree import SourceFolderError, source_folder

VERSION = re.compile(r"([A-Za-z][\w.-]*?)@([0-9a-f]{7,40})")


def software_versions(software: str) -> dict[str, str]:
    """The commits a pair's `software` names: "tflm@713b6ed+cmsis-nn@011bf32" ->
    {"tflm": "713b6ed", "cmsis-nn": "011bf32"}."""
    return {name: commit for name, commit in VERSION.findall(software)}


def git_blob_id(path: Path) -> str:
    """The id git gives the file's content (git hash-object)."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class PinnedTree:
    """A SourceFolder that must hold a repository's files at `commit`; `markers` are files (path
    relative to the folder -> git blob id at that commit) whose content identifies the commit in
    a tree without .git."""

    source: SourceFolder
    commit: str  # the full commit id
    markers: Mapping[str, str] = field(default_factory=dict)

    def locate(self, folders: Mapping[str, Path] | None = None) -> Path:
        """The folder, from `folders` (SourceFolder.env -> folder) or the environment, checked to be
        the sources at `commit`."""
        root = source_folder(self.source, folders).resolve()
        self.check(root)
        return root

    def check(self, root: Path) -> None:
        head = git_head(root)
        if head is not None:
            if head != self.commit:
                raise SourceFolderError(
                    f"{self.source.env}={root} is at commit {head[:12]}, not {self.commit[:12]} "
                    f"({self.source.what}); check it out at that commit: {self.source.obtain}")
            return
        missing = [name for name in self.markers if not (root / name).is_file()]
        if missing:
            raise SourceFolderError(
                f"{self.source.env}={root} is not {self.source.what}: it has no {', '.join(missing[:3])} "
                f"(obtain it with: {self.source.obtain})")
        changed = [name for name, blob in self.markers.items() if git_blob_id(root / name) != blob]
        if changed:
            raise SourceFolderError(
                f"{self.source.env}={root} is not at commit {self.commit[:12]} ({self.source.what}): "
                f"{', '.join(changed[:3])} differ from that commit's (obtain it with: {self.source.obtain})")


def git_head(root: Path) -> str | None:
    """The commit a git checkout (or worktree) at `root` has checked out; None outside git."""
    if not (root / ".git").exists():
        return None
    result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=60)
    return result.stdout.strip() if result.returncode == 0 else None


def require_version(software: str, name: str, pinned: PinnedTree) -> None:
    """Refuse a pair whose software names another commit of `name` than the recipe builds."""
    commit = software_versions(software).get(name)
    if commit is None:
        raise SourceFolderError(f"software {software!r} names no {name}@COMMIT; this recipe builds "
                                f"{name}@{pinned.commit[:7]}")
    if not pinned.commit.startswith(commit):
        raise SourceFolderError(f"software {software!r} is {name}@{commit}; this recipe builds "
                                f"{name}@{pinned.commit[:7]} only")
