"""Latencies measured on real boards and published with the software's source, the validation
pairs of the cycle model: what was measured, where it is published, and how the lab rebuilds the
same software for the board's emulated twin."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol

from hil.firmware_build.firmware import Firmware


@dataclass(frozen=True)
class SourceFolder:
    """A folder of fetched sources a recipe needs, found through an environment variable."""

    env: str  # e.g. TINYLAB_TINYENGINE_DIR
    what: str  # "mit-han-lab/tinyengine at 0363956"
    obtain: str  # the commands that fetch it


@dataclass(frozen=True)
class PublishedLatency:
    """One (software, model, board) latency measured on a real board and published."""

    software: str  # the software and its version, e.g. "tinyengine@0363956"
    model: str  # the model as the source names it, e.g. "mcunet-in3"
    board: str  # the lab's board file for the real board, e.g. "nucleo-h743zi"
    twin: str  # the lab's emulated board that runs the same build, e.g. "qemu-h743"
    latency_ms: float
    clock_hz: int  # the core clock of the published measurement
    source: str  # where it is published: URL, file and line
    recipe: str  # the key in the recipe table: how the lab builds this software


class Recipe(Protocol):
    """How the lab builds one kind of published software, unchanged apart from the harness."""

    name: str
    sources: tuple[SourceFolder, ...]

    def build(self, pair: PublishedLatency, folders: Mapping[str, Path], cache: Path) -> Firmware:
        """The firmware for `pair.twin`: the lab's harness (startup, timer, UART, protocol) around
        the published software's own code for `pair.model`; `folders` maps each SourceFolder.env
        to its folder."""
        ...
