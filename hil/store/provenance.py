"""Where, how and when a run's rows were measured: `Provenance` (engine, board, backend, toolchain,
git commit, host, run id) and the helpers that collect it."""
from __future__ import annotations

import hashlib
import json
import secrets
import socket
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hil.resources import SOURCE_ROOT
from hil.store.measurement import Measurement

REPO_ROOT = SOURCE_ROOT  # the checkout (site-packages when installed): provenance's git commit


def utc_now() -> str:
    """The current time as the store writes timestamps (ISO-8601, UTC, microseconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def new_run_id() -> str:
    """A fresh run id that sorts by time: `20250102T030405Z-1a2b3c4d`."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(4)


def file_sha256(path: Path) -> str:
    """The sha256 of a file (a .tflite model, say), as lower-case hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def collect_git_commit(repo: Path) -> str:
    """HEAD's commit in `repo`, with "+dirty" when tracked files have uncommitted changes;
    "unknown" when `repo` is not a git checkout (or git is missing)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=30, check=False)

    try:
        head = git("rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return "unknown"
        commit = head.stdout.strip()
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if status.returncode != 0 or status.stdout.strip():
        commit += "+dirty"
    return commit


@dataclass
class Provenance:
    """What the rows of one run share: engine, board, backend, toolchain, commit, host, run."""

    engine: str
    engine_version: str
    board: str
    backend: str
    toolchain: str
    git_commit: str
    host: str
    run_id: str
    test_id: str = ""

    @classmethod
    def collect(cls, *, engine: str, engine_version: str, board: str, backend: str,
                toolchain: str, repo: Path = REPO_ROOT, test_id: str = "",
                run_id: str | None = None) -> Provenance:
        """Provenance for a run starting now on this host: git commit of `repo`, host name,
        and a new run id unless one is given."""
        return cls(engine=engine, engine_version=engine_version, board=board, backend=backend,
                   toolchain=toolchain, git_commit=collect_git_commit(repo),
                   host=socket.gethostname(), run_id=run_id or new_run_id(), test_id=test_id)

    def measurement(self, model: str, model_sha256: str, metric: str, value: float, unit: str,
                    extra: dict[str, Any] | str | None = None) -> Measurement:
        """A measurement taken now with this provenance. `extra` is a dict or JSON text."""
        if extra is None:
            extra_text = "{}"
        elif isinstance(extra, str):
            extra_text = extra
        else:
            extra_text = json.dumps(extra, sort_keys=True)
        return Measurement(
            model=model, model_sha256=model_sha256, engine=self.engine,
            engine_version=self.engine_version, board=self.board, backend=self.backend,
            metric=metric, value=value, unit=unit, toolchain=self.toolchain,
            git_commit=self.git_commit, host=self.host, timestamp=utc_now(),
            run_id=self.run_id, test_id=self.test_id, extra=extra_text)
