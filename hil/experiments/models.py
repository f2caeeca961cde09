"""Models the lab runs: a .tflite file, or one of the project's own built-in models."""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from engine.ir import DTYPES, Graph
from engine.tflite import parse_tflite
from hil.errors import LabError
from hil.experiments.npyfile import read_npy, user_file

# Built-in models: name -> "module:function" returning a Graph (imported only when asked for,
# since they need torch).
BUILTIN_MODELS = {
    "mcunet-tiny": "engine.zoo:default_model",
    "mcunet-tiny-176": "engine.zoo:large_model",  # fits qemu-f746 only with --patches
}
DEFAULT_MODEL = "mcunet-tiny"
# The built-in models a nightly run measures on every board: those whose whole tensors fit them all.
NIGHTLY_BUILTINS = ("mcunet-tiny",)


@dataclass
class ModelSource:
    """A model and its identity: the bytes of its .tflite form and their sha256."""

    name: str
    tflite: bytes
    path: Path | None = None
    _graph: Graph | None = field(default=None, repr=False)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.tflite).hexdigest()

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            self._graph = parse_tflite(self.tflite, name=self.name)
        return self._graph


# A TFLite flatbuffer addresses its bytes with 32-bit offsets: no model file is larger.
MAX_MODEL_BYTES = 2**31


def read_model_file(path: Path) -> bytes:
    """The bytes of a model file, refused (LabError naming it) unless it is a readable regular
    file of at most MAX_MODEL_BYTES."""
    user_file(path, "model file")
    try:
        if path.stat().st_size > MAX_MODEL_BYTES:  # (files of /proc say 0: the read below bounds them)
            raise LabError(f"model file {path} is larger than a TFLite flatbuffer can be (2 GiB)")
        with open(path, "rb") as stream:
            data = stream.read(MAX_MODEL_BYTES + 1)
    except OSError as error:
        raise LabError(f"cannot read model file {path}: {error.strerror or error}") from None
    if len(data) > MAX_MODEL_BYTES:
        raise LabError(f"model file {path} is larger than a TFLite flatbuffer can be (2 GiB)")
    return data


def resolve_model(spec: str) -> ModelSource:
    """A path to a .tflite file, or the name of a built-in model."""
    path = Path(spec)
    if spec in BUILTIN_MODELS and not path.is_file():
        from engine.export import export_tflite

        module, function = BUILTIN_MODELS[spec].split(":")
        graph = getattr(importlib.import_module(module), function)()
        graph.name = spec
        return ModelSource(name=spec, tflite=export_tflite(graph), _graph=graph)
    if path.exists() or path.is_symlink() or spec.endswith(".tflite") or "/" in spec:
        return ModelSource(name=path.stem, tflite=read_model_file(path), path=path)
    raise LabError(
        f"unknown model {spec!r}: give a path to a .tflite file or a built-in model "
        f"({', '.join(BUILTIN_MODELS)})"
    )


def default_input(graph: Graph, seed: int = 0) -> np.ndarray:
    """Deterministic pseudo-random data for the model's input tensor."""
    tensor = graph.tensors[graph.inputs[0]]
    rng = np.random.default_rng(seed)
    if tensor.dtype == "float32":
        return rng.standard_normal(tensor.shape).astype(np.float32)
    info = np.iinfo(DTYPES[tensor.dtype])
    return rng.integers(info.min, info.max + 1, size=tensor.shape, dtype=DTYPES[tensor.dtype])


def load_input(path: Path, graph: Graph) -> np.ndarray:
    """An input from a .npy file, checked against the model's input tensor."""
    tensor = graph.tensors[graph.inputs[0]]
    wanted = np.dtype(DTYPES[tensor.dtype])
    value = read_npy(path, tensor.elements, f"model {graph.name} takes {tensor.shape} ({tensor.elements:,} values)")
    if value.dtype != wanted:
        raise LabError(f"input {path} is {value.dtype}; model {graph.name} takes {wanted}")
    return value.reshape(tensor.shape)
