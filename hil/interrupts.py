"""SIGTERM stops the lab as Ctrl-C does: it raises `Terminated`, a KeyboardInterrupt, so that the
same clean-up runs (QEMU stopped, temporary folders removed, the store's transaction rolled back)
and the command line ends with one line and the status of a process the signal stopped."""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

INTERRUPTED_STATUS = 128 + signal.SIGINT  # 130, as a shell reports a command stopped by Ctrl-C
TERMINATED_STATUS = 128 + signal.SIGTERM  # 143


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` in the main thread (elsewhere: no change); the
    previous handler comes back on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_status(interruption: KeyboardInterrupt) -> tuple[str, int]:
    """How the command line reports an interruption: its one word and the exit status."""
    if isinstance(interruption, Terminated):
        return "terminated (SIGTERM)", TERMINATED_STATUS
    return "interrupted", INTERRUPTED_STATUS
