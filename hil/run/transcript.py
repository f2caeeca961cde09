"""A record of everything a DeviceLink sent and received, each line with its time since the
transcript started, so that a failed run leaves behind what was said on the wire."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SENT = ">"
RECEIVED = "<"
NOTE = "#"  # the lab's own remarks: a boot, a flash, a firmware digest
TRANSCRIPTS_FOLDER = "transcripts"  # beside the results store

log = logging.getLogger("hil.run.transcript")


@dataclass(frozen=True)
class TranscriptLine:
    """One line of the exchange: seconds since the transcript started, direction, text."""

    offset_s: float
    direction: str  # SENT, RECEIVED or NOTE
    text: str

    def __str__(self) -> str:
        return f"{self.offset_s:10.4f} {self.direction} {self.text}"


@dataclass
class Transcript:
    """The lines of one run, in order, timed with the monotonic clock."""

    started: float = field(default_factory=time.monotonic)
    lines: list[TranscriptLine] = field(default_factory=list)

    def record(self, direction: str, text: str) -> None:
        self.lines.append(TranscriptLine(time.monotonic() - self.started, direction, text))

    def sent(self, text: str) -> None:
        self.record(SENT, text)

    def received(self, text: str) -> None:
        self.record(RECEIVED, text)

    def note(self, text: str) -> None:
        self.record(NOTE, text)

    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)

    def tail(self, count: int = 40) -> str:
        """The last `count` lines, as text."""
        return "".join(f"{line}\n" for line in self.lines[-count:])

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text(), encoding="utf-8")
        log.info("transcript written to %s (%d lines)", path, len(self.lines))
        return path


def transcripts_dir() -> Path:
    """`transcripts/` beside the results store ($TINYLAB_STORE's folder, else results/)."""
    from hil.store.location import resolve_store_path

    return resolve_store_path().parent / TRANSCRIPTS_FOLDER


def transcript_path(run_id: str) -> Path:
    return transcripts_dir() / f"{run_id}.txt"


def save_for_run(transcript: Transcript | None, run_id: str) -> dict[str, str]:
    """Write `transcript` as the run's transcript file; the extra a stored row names it with
    ({} when there is none)."""
    if transcript is None or not transcript.lines:
        return {}
    return {"transcript": str(transcript.save(transcript_path(run_id)))}


@contextmanager
def kept_on_failure(transcript: Transcript) -> Iterator[Transcript]:
    """On a lab error inside: write `transcript` as transcripts/failed-<run id>.txt and add its
    path to the error as a note (the CLI prints it)."""
    from hil.errors import LabError
    from hil.store.provenance import new_run_id

    try:
        yield transcript
    except LabError as error:
        if transcript.lines:
            path = transcript.save(transcript_path(f"failed-{new_run_id()}"))
            error.add_note(f"transcript of the device link: {path}")
            log.warning("the run failed; its transcript is %s", path)
        raise
