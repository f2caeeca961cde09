"""Backends that run firmware, in one explicit table."""
from __future__ import annotations

from hil.boards import BoardSpec
from hil.errors import RunnerError
from hil.runners.base import Latency, Runner
from hil.runners.board import BoardRunner
from hil.runners.qemu import QemuRunner
from hil.runners.renode import RenodeRunner

RUNNERS: dict[str, type[Runner]] = {
    "qemu": QemuRunner,
    "renode": RenodeRunner,
    "hardware": BoardRunner,
}


def runner_for(board: BoardSpec, *, backend: str | None = None, timeout_s: float = 30.0) -> Runner:
    """The runner for a board: QEMU for emulated boards unless another backend is named."""
    name = backend or board.backend
    if name not in RUNNERS:
        raise RunnerError(
            f"board {board.name}: no '{name}' runner in this version of the lab "
            f"(available: {', '.join(RUNNERS)})"
        )
    return RUNNERS[name](board, timeout_s=timeout_s)


__all__ = ["Latency", "Runner", "RUNNERS", "runner_for", "BoardRunner", "QemuRunner"]
