"""Errors a user can act on. The CLI prints them as one message (no traceback) and exits 2."""
from engine.errors import TinylabError


class LabError(TinylabError):
    """Base of every user-facing error in the lab."""


class BoardError(LabError):
    """A board file is malformed or inconsistent, or names an unknown board."""


class BuildError(LabError):
    """The firmware did not compile or link; the message carries the compiler's output."""


class RegionOverflowError(BuildError):
    """The image did not fit a memory region of the board; `excess` bytes too many."""

    def __init__(self, message: str, region: str, excess: int) -> None:
        super().__init__(message)
        self.region = region
        self.excess = excess


class RunnerError(LabError):
    """A backend (QEMU, a probe, Renode) could not start, crashed or timed out."""


class ProtocolError(LabError):
    """The device answered a command with nothing, an error, or something unexpected."""


class StoreError(LabError):
    """The results store could not be opened, read or written."""


class OutputError(LabError):
    """An output file or folder cannot be written."""
