"""A child process that runs TFLite Micro for engine.oracle, so that a crash inside TFLM (a
SIGSEGV on a malformed model, an abort) ends the child, not the caller.

Protocol: on a private pipe, the parent sends pickled (function name, args) requests, each
prefixed by its length (8 bytes, little-endian); the child answers ("ok", value) or
("error", exception). The child's fd 1 goes to stderr, so that TFLM's prints never mix with it."""
from __future__ import annotations

import os
import pickle
import struct
import sys
from typing import Any, BinaryIO

_LENGTH = struct.Struct("<Q")


def send(stream: BinaryIO, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    """The next message; EOFError when the other end has gone."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError("the oracle pipe closed")
    (length,) = _LENGTH.unpack(header)
    payload = stream.read(length)
    if len(payload) < length:
        raise EOFError("the oracle pipe closed mid-message")
    return pickle.loads(payload)


def serve() -> None:
    """Answer requests on the original stdin/stdout until stdin closes."""
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # TFLM's printf now goes to stderr
    from engine import oracle  # imported after the redirection: TFLM's library loads here

    while True:
        try:
            name, args = receive(requests)
        except EOFError:
            return
        try:
            answer = ("ok", getattr(oracle, f"_{name}_here")(*args))
        except Exception as error:  # noqa: BLE001 - every failure goes back to the caller
            try:
                pickle.dumps(error)
                answer = ("error", error)
            except Exception:  # noqa: BLE001
                answer = ("error", RuntimeError(f"{type(error).__name__}: {error}"))
        send(answers, answer)


if __name__ == "__main__":
    sys.exit(serve())
