"""Transcripts of the device link: kept beside the store when a run fails."""
from __future__ import annotations

import pytest
import serial

from hil.errors import ProtocolError
from hil.run.protocol import DeviceLink
from hil.run.transcript import Transcript, kept_on_failure


def test_a_failed_run_keeps_its_transcript_and_the_error_names_it(private_store):
    transcript = Transcript()
    link = DeviceLink(serial.serial_for_url("loop://", timeout=0.05), "test-board", timeout_s=0.2,
                      transcript=transcript)
    with pytest.raises(ProtocolError) as caught:
        with kept_on_failure(transcript):
            link.command("name")  # loop:// echoes it: no complete reply
    (note,) = caught.value.__notes__
    path = note.split(": ", 1)[1]
    assert path.startswith(str(private_store.parent / "transcripts" / "failed-"))
    said = open(path).read()
    assert "> name%" in said and "no complete reply within 0.2 s" in said


def test_a_run_that_succeeds_writes_nothing(private_store):
    with kept_on_failure(Transcript()) as transcript:
        transcript.note("fine")
    assert not (private_store.parent / "transcripts").exists()
