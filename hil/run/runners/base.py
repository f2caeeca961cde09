"""The one small interface every backend implements: boot or flash a firmware, hand back a
connected DeviceLink, and say what the board's timer ticks mean."""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass

from hil.firmware_build.firmware import Firmware
from hil.run.protocol import DeviceLink
from hil.run.runners.target_state import TargetSession
from hil.run.transcript import Transcript
from hil.targets.boardspec import BoardSpec


@dataclass(frozen=True)
class Latency:
    """A latency with its unit: 'cycles' (hardware DWT) or 'instructions' (QEMU -icount)."""

    value: float
    unit: str
    resolution: float  # one timer tick, in the same unit

    def __str__(self) -> str:
        return f"{self.value:,.0f} {self.unit}"


class Runner(ABC):
    """A backend that runs firmware for one board."""

    backend: str  # "qemu" | "hardware" | "renode": the results store's backend column
    unit: str  # "instructions" | "cycles"
    can_preload = False  # whether open() can place the input in memory before the firmware starts

    def __init__(self, board: BoardSpec, *, timeout_s: float = 30.0) -> None:
        self.board = board
        self.timeout_s = timeout_s
        self.transcript = Transcript()  # every link this runner opens records here
        self.target = TargetSession()  # what the target holds across this runner's opens

    def fresh_transcript(self) -> Transcript:
        """Start a new transcript for the links opened from now on (one per run), and return it."""
        self.transcript = Transcript()
        return self.transcript

    @abstractmethod
    def open(self, firmware: Firmware, preload: bytes | None = None) -> AbstractContextManager[DeviceLink]:
        """Boot or flash `firmware`, wait for the device's `m-ready`, and yield the link.
        With `preload` (where `can_preload`), those bytes are at the firmware's `lab_input_target`
        (its staging copy of the input, or the input slot in the model's arena)
        before it starts: much faster than `db` lines for large inputs. Leaving the context
        always releases the backend (no process or probe left behind)."""

    @abstractmethod
    def ticks_per_unit(self) -> float:
        """How many timer ticks make one unit of `self.unit`."""

    def latency(self, ticks: float) -> Latency:
        per_unit = self.ticks_per_unit()
        return Latency(value=ticks / per_unit, unit=self.unit, resolution=1.0 / per_unit)
