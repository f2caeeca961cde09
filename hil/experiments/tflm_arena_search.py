"""The smallest arena TFLM starts with on the target, found with builds and boots. A first build
with a generous arena reads MicroInterpreter::arena_used_bytes(). That figure is often enough;
where it is not (AllocateTensors needs room for temporary allocations that the figure leaves out),
a binary search between it and the generous arena finds the smallest size that starts, in steps of
16 B. Each probe is one build and one boot, without an inference. The size found is remembered in
the lab's cache per library, model and workload template, so that a later run needs no probe."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from engine.cache import cache_root, write_text_atomically
from hil.errors import ProtocolError
from hil.experiments.models import ModelSource
from hil.firmware_build.firmware import TEMPLATES_DIR, Firmware
from hil.firmware_build.tflm_baseline_library import TflmBaselineError, TflmLibrary
from hil.firmware_build.tflm_baseline_workload import (ARENA_ALIGNMENT, ARENA_WORKLOAD, TEMPLATE, ArenaFigures,
                                                       TflmModelError, TfliteModelInfo, aligned_arena)
from hil.run.protocol import DeviceLink
from hil.run.runners import Runner
from hil.targets.boardspec import BoardSpec

ALLOCATION_FAILED = "AllocateTensors failed"  # the workload's e- line when the arena is too small
ALLOCATION_FAILED_STATUS = 3  # ArenaFigures.status then (kAllocateFailed in firmware_templates/tflm/workload.cc.j2)


class TflmDoesNotFitError(TflmBaselineError):
    """TFLM's arena for the model does not fit the board's SRAM."""


@dataclass(frozen=True)
class ArenaSize:
    """The smallest arena TFLM starts with, and how it was found."""

    smallest: int  # bytes, a multiple of 16: AllocateTensors succeeds with it and fails with 16 B less
    used: int  # arena_used_bytes() reported with the sizing arena
    sizing: int  # the sizing build's arena
    probes: int  # boots this search made (0: remembered from an earlier run)

    @property
    def remembered(self) -> bool:
        return self.probes == 0

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "remembered": self.remembered}


def read_arena_figures(link: DeviceLink, model_workload: str, *, started: bool = True) -> ArenaFigures:
    """Select the `tflm-arena` workload, read its figures (the output of one `infer`, which runs
    nothing: the harness reports the output an inference leaves), and select the model's workload
    again. `started`: refuse figures whose status says TFLM did not start."""
    link.select(ARENA_WORKLOAD)
    raw = link.infer(count=1, warmup=0).output
    link.select(model_workload)
    figures = ArenaFigures.from_output(raw)
    if started and figures.status != 0:
        raise TflmModelError(f"board {link.board}: TFLM did not start (status {figures.status})")
    return figures


class ArenaSearch:
    """The arena search for one model, library and board. `build(arena)` builds the firmware with
    an arena of that many bytes; `room` is the most the board has for one; `sizing` the first try."""

    def __init__(self, board: BoardSpec, source: ModelSource, info: TfliteModelInfo, library: TflmLibrary,
                 build: Callable[[int], Firmware], runner: Runner, *, room: int, sizing: int,
                 cache_dir: Path | None = None) -> None:
        self.board, self.source, self.info, self.library = board, source, info, library
        self.build, self.runner, self.room, self.sizing = build, runner, room, sizing
        self.memory = (cache_dir or cache_root() / "tflm-arena") / f"{self.key()}.json"
        self.probes = 0

    def key(self) -> str:
        """What the arena depends on: the library's archives, the model, the workload template."""
        h = hashlib.sha256(self.library.sha256.encode())
        for archive in self.library.extra_archives:
            h.update(archive.read_bytes())
        h.update(self.source.sha256.encode())
        h.update((TEMPLATES_DIR / TEMPLATE).read_bytes())
        return h.hexdigest()[:32]

    def smallest(self) -> ArenaSize:
        """The remembered size, or one found now (and remembered)."""
        remembered = self.recall()
        if remembered is not None:
            return remembered
        sizing, figures = self._sizing()
        low = aligned_arena(figures.used)  # AllocateTensors needs at least what it reports using
        if low >= sizing or self.starts(low):
            smallest = min(low, sizing)
        else:
            failing, starting = low, sizing
            while starting - failing > ARENA_ALIGNMENT:
                middle = failing + (starting - failing) // (2 * ARENA_ALIGNMENT) * ARENA_ALIGNMENT
                if self.starts(middle):
                    starting = middle
                else:
                    failing = middle
            smallest = starting
        found = ArenaSize(smallest=smallest, used=figures.used, sizing=sizing, probes=self.probes)
        self.remember(found)
        return found

    def _sizing(self) -> tuple[int, ArenaFigures]:
        """The sizing build's arena and figures: the generous first arena, else all the room."""
        for arena in dict.fromkeys((self.sizing, self.room)):
            figures = self.starts(arena)
            if figures is not None:
                return arena, figures
        raise TflmDoesNotFitError(
            f"model {self.source.name} does not fit {self.board.name} under TFLM: {ALLOCATION_FAILED} with an "
            f"arena of {self.room:,} B, all the room the board has for one"
        )

    def starts(self, arena: int) -> ArenaFigures | None:
        """One probe: TFLM's arena figures when it starts with `arena` bytes, None when
        AllocateTensors fails (as the boot's e- line says, or, where the host missed that line,
        the figures' status)."""
        firmware = self.build(arena)
        self.probes += 1
        try:
            with self.runner.open(firmware) as link:
                figures = read_arena_figures(link, self.info.name, started=False)
        except ProtocolError as error:
            if ALLOCATION_FAILED not in str(error):
                raise
            return None
        if figures.status == ALLOCATION_FAILED_STATUS:
            return None
        if figures.status != 0:
            raise TflmModelError(f"board {self.board.name}: TFLM did not start (status {figures.status})")
        return figures

    def recall(self) -> ArenaSize | None:
        try:
            fields = json.loads(self.memory.read_text())
            fields.pop("remembered", None)
            found = ArenaSize(**{**fields, "probes": 0})
        except (OSError, ValueError, TypeError):
            return None
        return found if 0 < found.smallest <= self.room else None

    def remember(self, found: ArenaSize) -> None:
        write_text_atomically(self.memory, json.dumps(found.to_json(), indent=2) + "\n")

    def forget(self) -> None:
        self.memory.unlink(missing_ok=True)
