"""Backends that run firmware, in one explicit table."""
from __future__ import annotations

from hil.errors import RunnerError
from hil.run.runners.base import Latency, Runner
from hil.run.runners.board import BoardRunner
from hil.run.runners.qemu import QemuRunner
from hil.run.runners.renode import RenodeRunner
from hil.targets.boardspec import BoardSpec
from hil.targets.hardware_map import HardwareMapEntry

RUNNERS: dict[str, type[Runner]] = {
    "qemu": QemuRunner,
    "renode": RenodeRunner,
    "hardware": BoardRunner,
}


def runner_for(target: BoardSpec | HardwareMapEntry, *, backend: str | None = None,
               timeout_s: float = 30.0, probe: str | None = None, port: str | None = None) -> Runner:
    """The runner for a board, or a hardware-map entry (a board with its probe and port): QEMU
    for emulated boards unless another backend is named. A probe or port needs a physical
    board's runner."""
    if isinstance(target, HardwareMapEntry):
        board, probe, port = target.board, probe or target.probe, port or target.port
    else:
        board = target
    name = backend or board.backend
    if name not in RUNNERS:
        raise RunnerError(
            f"board {board.name}: no '{name}' runner in this version of the lab "
            f"(available: {', '.join(RUNNERS)})"
        )
    runner = RUNNERS[name]
    if issubclass(runner, BoardRunner):
        return runner(board, timeout_s=timeout_s, probe=probe, port=port)
    if probe or port:
        raise RunnerError(f"board {board.name}: its '{name}' runner takes no probe or serial port "
                          f"(those are for physical boards)")
    return runner(board, timeout_s=timeout_s)


__all__ = ["Latency", "Runner", "RUNNERS", "runner_for", "BoardRunner", "QemuRunner"]
