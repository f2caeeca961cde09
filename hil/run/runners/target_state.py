"""What a target holds across the opens of one runner: off, flashed with a digest, ready.

A physical board keeps its firmware in flash: once flashed with a digest, opening the same
firmware again only resets it (and writes a preloaded input), never reflashes. An emulator has
no flash: every open is a new, deterministic boot."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hil.firmware_build.firmware import Firmware


class TargetState(Enum):
    OFF = "off"  # holds nothing known (never flashed by us, or a flash that failed)
    FLASHED = "flashed"  # holds the firmware `digest`, not talking to us
    READY = "ready"  # runs the firmware `digest`, which has said m-ready


@dataclass
class TargetSession:
    """The lifecycle of one target: off, flashed with digest D, ready. It knows only what this
    process did: a board reflashed by another program is not noticed."""

    state: TargetState = TargetState.OFF
    digest: str | None = None
    flashes: int = 0  # how many times this session flashed the target

    def holds(self, firmware: Firmware) -> bool:
        """Whether the target already holds `firmware` (same digest), so that it need not be flashed."""
        return self.state is not TargetState.OFF and self.digest == firmware.digest

    def flashed(self, firmware: Firmware) -> None:
        self.state, self.digest = TargetState.FLASHED, firmware.digest
        self.flashes += 1

    def booted(self, firmware: Firmware) -> None:
        """The firmware runs and said m-ready (on an emulator: a fresh boot, nothing flashed)."""
        self.state, self.digest = TargetState.READY, firmware.digest

    def released(self, keeps_firmware: bool) -> None:
        """We stopped talking to it: a board keeps its flash; an emulator is gone."""
        if keeps_firmware and self.digest is not None:
            self.state = TargetState.FLASHED
        else:
            self.lost()

    def lost(self) -> None:
        """What the target holds is unknown (a flash or boot that failed)."""
        self.state, self.digest = TargetState.OFF, None
