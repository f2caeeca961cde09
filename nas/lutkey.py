"""What a measured latency depends on, as the key of a latency table: the board, the kernel set,
the kernel library, the code generator, the compiler and the flags it is given. A table measured
under one key is never used under another."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from importlib.resources import files
from importlib.resources.abc import Traversable

from engine.codegen.generator import kernel_library_digest
from engine.resources import templates_dir
from hil.firmware_build.firmware import COMPILER, compile_flags
from hil.firmware_build.toolchain import tool_version
from hil.targets.boardspec import BoardSpec

# The kernel set a table's layers are measured with (engine.codegen.variants.KERNEL_SETS).
LUT_KERNELS = "optimized"

# The engine modules between a graph and its C: the rewrites, the memory plan (where each tensor
# lives), the requantisation constants, the generator itself (a package) and the op families that
# emit each layer (a package). A change in any of them can change the code a layer runs, so it
# changes the key (a refactor costs a rebuild, never a stale figure).
CODE_GENERATOR_MODULES = ("compiler.py", "fold.py", "planner.py", "memory_plan.py", "overlap.py", "quant.py",
                          "codegen", "ops")

# Each part, in the words of a refusal: "the kernel library changed: ...".
PART_NAMES = {
    "board": "the board",
    "kernels": "the kernel set",
    "kernel_library": "the kernel library",
    "code_generator": "the code generator",
    "toolchain": "the toolchain",
    "compile_flags": "the compile flags",
}


@dataclass(frozen=True)
class LatencyKey:
    """The parts that determine a layer's measured latency."""

    board: str
    kernels: str  # "optimized" or "portable"
    kernel_library: str  # engine.codegen.generator.kernel_library_digest()
    code_generator: str  # code_generator_digest()
    toolchain: str  # the first line of `arm-none-eabi-gcc --version`
    compile_flags: tuple[str, ...]  # the board's flags, without a workload's include paths and defines

    def to_json(self) -> dict:
        data = asdict(self)
        data["compile_flags"] = list(self.compile_flags)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "LatencyKey":
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"key lacks {', '.join(missing)}")
        return cls(**{f.name: data[f.name] for f in fields(cls)} | {"compile_flags": tuple(data["compile_flags"])})

    @property
    def short(self) -> str:
        """12 hex digits naming the whole key: the table's file name."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def differences(self, now: "LatencyKey") -> list[str]:
        """One sentence per part in which `now` differs from this (a table's) key."""
        return [_difference(name, getattr(self, name), getattr(now, name))
                for name in PART_NAMES if getattr(self, name) != getattr(now, name)]


def _difference(name: str, table: object, now: object) -> str:
    if name == "compile_flags":
        only_table = [f for f in table if f not in now] or ["(order)"]
        only_now = [f for f in now if f not in table] or ["(order)"]
        return f"{PART_NAMES[name]} changed: table {' '.join(only_table)}, now {' '.join(only_now)}"
    return f"{PART_NAMES[name]} changed: table {table!r}, now {now!r}"


def code_generator_digest() -> str:
    """A short hash of the engine's code generation: CODE_GENERATOR_MODULES and the templates."""
    digest = hashlib.sha256()
    engine = files("engine")
    for name in CODE_GENERATOR_MODULES:
        for path, source in python_sources(engine.joinpath(name), name):
            digest.update(path.encode() + b"\0" + source + b"\0")
    for path in sorted(templates_dir().iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def python_sources(entry: Traversable, name: str) -> list[tuple[str, bytes]]:
    """(path, bytes) of a module, or of every module of a package and its sub-packages, by path."""
    if entry.is_file():
        return [(name, entry.read_bytes())]
    found = []
    for child in entry.iterdir():
        if (child.is_dir() and child.name != "__pycache__") or child.name.endswith(".py"):
            found += python_sources(child, f"{name}/{child.name}")
    return sorted(found)


def board_compile_flags(board: BoardSpec) -> tuple[str, ...]:
    """The flags a model's firmware is compiled with on `board` (hil.firmware_build.firmware.compile_flags at the
    board's optimisation level), less the include paths and defines that vary with the workload."""
    return tuple(compile_flags(board, board.optimize, (), ()))


def current_key(board: BoardSpec, kernels: str = LUT_KERNELS) -> LatencyKey:
    """The key a latency measured now on `board` would have."""
    return LatencyKey(board=board.name, kernels=kernels, kernel_library=kernel_library_digest(),
                      code_generator=code_generator_digest(), toolchain=tool_version(COMPILER),
                      compile_flags=board_compile_flags(board))
