"""TFLite Micro as the oracle: run a .tflite model through the `tflite-micro` package's host
interpreter, and read TFLM's own arena figures from its allocation report."""
from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

DEFAULT_ARENA_BYTES = 16 << 20


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
    """The model's outputs for `inputs`, computed by TFLM."""
    tflm = interpreter(model)
    for index, value in enumerate(inputs):
        tflm.set_input(np.ascontiguousarray(value), index)
    tflm.invoke()
    return [np.array(tflm.get_output(i)) for i in range(output_count(model))]


def output_count(model: bytes) -> int:
    return schema.Model.GetRootAs(bytearray(model), 0).Subgraphs(0).OutputsLength()


def tflm_tensors(model: bytes, inputs: Sequence[np.ndarray], tensor_indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Intermediate tensors of one TFLM run (kPreserveAllTensors), for layer-by-layer comparison."""
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
    tflm = interpreter(model)
    with _captured_c_output() as captured:
        tflm.print_allocations()
    text = "".join(captured)
    figures = {k: int(v) for k, v in re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", text)}
    if set(figures) != {"total", "head", "tail"}:
        raise RuntimeError(f"could not read TFLM's allocation report: {text[:300]!r}")
    return TflmArena(**figures)
