"""TFLite Micro as the oracle: run a .tflite model through the `tflite-micro` package's host
interpreter, and read TFLM's own arena figures from its allocation report.

`run_tflm`, `tflm_tensors` and `tflm_arena` run TFLM in one persistent child process
(engine.oracle_worker), started on first use and restarted after a crash: a model that makes
TFLM crash natively (SIGSEGV, SIGABRT) raises OracleCrashError instead of killing the caller.
`interpreter` still gives an in-process interpreter, for callers that need its full API."""
from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine import oracle_worker
from engine.errors import EngineError

DEFAULT_ARENA_BYTES = 16 << 20
REPO_ROOT = Path(__file__).resolve().parent.parent


class OracleCrashError(EngineError):
    """TFLite Micro died natively (a signal) while running a model."""


class OracleRefusedError(EngineError, RuntimeError):
    """TFLite Micro refused a model with an error of its own (failed allocation, a bad op)."""


@dataclass(frozen=True)
class TflmArena:
    """TFLM's arena for a model: total = head (the activation plan) + tail (bookkeeping)."""

    total: int
    head: int
    tail: int


def interpreter(model: bytes, *, preserve_all_tensors: bool = False, arena_bytes: int = DEFAULT_ARENA_BYTES) -> runtime.Interpreter:
    config = runtime.InterpreterConfig.kPreserveAllTensors if preserve_all_tensors else runtime.InterpreterConfig.kAllocationRecording
    return runtime.Interpreter(bytes(model), [], arena_bytes, config)


def run_tflm(model: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs for `inputs`, computed by TFLM (in the oracle's child process)."""
    return _WORKER.call("run_tflm", bytes(model), [np.ascontiguousarray(v) for v in inputs])


def _run_tflm_here(model: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    tflm = interpreter(model)
    for index, value in enumerate(inputs):
        tflm.set_input(np.ascontiguousarray(value), index)
    tflm.invoke()
    return [np.array(tflm.get_output(i)) for i in range(output_count(model))]


def output_count(model: bytes) -> int:
    return schema.Model.GetRootAs(bytearray(model), 0).Subgraphs(0).OutputsLength()


def tflm_tensors(model: bytes, inputs: Sequence[np.ndarray], tensor_indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Intermediate tensors of one TFLM run (kPreserveAllTensors), for layer-by-layer comparison."""
    return _WORKER.call("tflm_tensors", bytes(model), [np.ascontiguousarray(v) for v in inputs], list(tensor_indices))


def _tflm_tensors_here(model: bytes, inputs: Sequence[np.ndarray], tensor_indices: Sequence[int]) -> dict[int, np.ndarray]:
    tflm = interpreter(model, preserve_all_tensors=True)
    for index, value in enumerate(inputs):
        tflm.set_input(np.ascontiguousarray(value), index)
    tflm.invoke()
    return {i: np.array(tflm.GetTensor(i, 0)["tensor_data"]) for i in tensor_indices}


@contextmanager
def _captured_c_output() -> Iterator[list[str]]:
    """Capture what C code writes to file descriptors 1 and 2."""
    captured: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


def tflm_arena(model: bytes) -> TflmArena:
    """TFLM's arena for the model, as its RecordingMicroAllocator reports it (x86-64 host)."""
    return _WORKER.call("tflm_arena", bytes(model))


def _tflm_arena_here(model: bytes) -> TflmArena:
    tflm = interpreter(model)
    with _captured_c_output() as captured:
        tflm.print_allocations()
    text = "".join(captured)
    figures = {k: int(v) for k, v in re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", text)}
    if set(figures) != {"total", "head", "tail"}:
        raise RuntimeError(f"could not read TFLM's allocation report: {text[:300]!r}")
    return TflmArena(**figures)


# ---- the child process ----
class _Worker:
    """One persistent child running TFLM; requests go one at a time (a lock guards the pipe)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            code = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from engine.oracle_worker import serve; serve()"
            self._process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return self._process

    def call(self, name: str, model: bytes, *args: Any) -> Any:
        with self._lock:
            process = self._start()
            try:
                oracle_worker.send(process.stdin, (name, (model, *args)))
                status, value = oracle_worker.receive(process.stdout)
            except (EOFError, BrokenPipeError, OSError):
                raise self._crashed(process, model) from None
        if status == "error":
            if isinstance(value, RuntimeError) and not isinstance(value, EngineError):
                raise OracleRefusedError(f"TFLite Micro refused model {_model_label(model)}: {value}") from value
            raise value
        return value

    def _crashed(self, process: subprocess.Popen, model: bytes) -> OracleCrashError:
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        self._process = None
        if code < 0:
            try:
                how = signal.Signals(-code).name
            except ValueError:
                how = f"signal {-code}"
        else:
            how = f"exit status {code}"
        return OracleCrashError(f"TFLite Micro crashed ({how}) running model {_model_label(model)}")

    def close(self) -> None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.stdin.close()
                self._process.wait(timeout=10)
            self._process = None


def _model_label(model: bytes) -> str:
    """The model's subgraph name when readable, and a digest of its bytes."""
    digest = hashlib.sha256(model).hexdigest()[:12]
    try:
        name = schema.Model.GetRootAs(bytearray(model), 0).Subgraphs(0).Name()
        name = name.decode(errors="replace") if name else ""
    except Exception:  # noqa: BLE001 - a label only; the model may be corrupt
        name = ""
    return f"'{name}' (sha256 {digest})" if name else f"sha256 {digest}"


_WORKER = _Worker()
