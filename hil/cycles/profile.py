"""The execution profile of an emulated run: QEMU with tinylab's TCG plugin (plugin/tl_profile.c,
compiled with the host's gcc on first use) counts, inside each timed window, how often each
translated block ran, which block followed which, and where each load and store went (flash,
RAM, stack, other). The window is the harness's: it opens and closes at entries to timer_now."""
from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hil.errors import LabError
from hil.firmware_build.firmware import symbol_address
from engine.hostlib import HostLibraryError, host_library
from hil.targets.boardspec import BoardSpec

PLUGIN_SOURCE = Path(__file__).with_name("plugin") / "tl_profile.c"
PLUGIN_HEADER = Path(__file__).with_name("plugin") / "tl_qemu_plugin_api.h"
WINDOW_MARKER_SYMBOL = "timer_now"  # the harness reads its timer at each end of a timed window
REGIONS = ("flash", "ram", "stack", "other")


class ProfileError(LabError):
    """The profiler could not be built, or its output is not what a whole run writes."""


@dataclass(frozen=True)
class Block:
    """A block QEMU translated: its instructions' addresses and sizes, in order."""

    pc: int
    instructions: tuple[tuple[int, int], ...]


@dataclass
class WindowProfile:
    """What ran inside one timed window."""

    instructions: int
    block_counts: dict[int, int] = field(default_factory=dict)  # block id -> executions
    edges: dict[tuple[int, int], int] = field(default_factory=dict)  # (block id, next block id) -> count
    # pc -> accesses to each of REGIONS, then how many went to the other 32-bit bank than the access before
    accesses: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0, 0]))
    caches: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)  # "d"/"i" -> hits, misses by region


@dataclass
class ExecutionProfile:
    """The blocks QEMU translated and the profile of every timed window of one run."""

    blocks: dict[int, Block]
    windows: list[WindowProfile]

    @functools.cached_property
    def first_instruction_sizes(self) -> dict[int, int]:
        """Each block's start address -> the size of its first instruction."""
        return {block.pc: block.instructions[0][1] for block in self.blocks.values() if block.instructions}

    def instruction_counts(self, window: WindowProfile) -> dict[int, int]:
        """How many times each instruction (by address) ran in `window`."""
        counts: dict[int, int] = defaultdict(int)
        for block_id, count in window.block_counts.items():
            for pc, _size in self.blocks[block_id].instructions:
                counts[pc] += count
        return counts


def parse_profile(path: Path) -> ExecutionProfile:
    """Read the plugin's output (its format is described in plugin/tl_profile.c)."""
    blocks: dict[int, tuple[int, int]] = {}
    instructions: dict[int, tuple[tuple[int, int], ...]] = {}
    windows: list[WindowProfile] = []
    current = WindowProfile(0)
    ended = False
    with open(path) as stream:
        for number, line in enumerate(stream, 1):
            try:
                kind, *fields = line.split()
                ended = _read_record(kind, fields, blocks, instructions, windows, current) or ended
            except (ValueError, IndexError) as problem:
                raise ProfileError(f"{path}: line {number}: not a profile record ({problem}): {line[:80]!r}") from None
            if kind == "w":
                current = windows[-1]
    if not ended:
        raise ProfileError(f"{path}: the profile has no end record (QEMU did not exit cleanly)")
    return ExecutionProfile(
        blocks={block_id: Block(pc, instructions.get(block_id, ())) for block_id, (pc, _n) in blocks.items()},
        windows=windows)


def _read_record(kind: str, fields: list[str], blocks: dict[int, tuple[int, int]],
                 instructions: dict[int, tuple[tuple[int, int], ...]], windows: list[WindowProfile],
                 current: WindowProfile) -> bool:
    """Add one record to what is read so far; True for the end record."""
    if kind == "t":
        blocks[int(fields[0])] = (int(fields[1], 16), int(fields[2]))
    elif kind == "i":
        instructions[int(fields[0])] = tuple(
            (int(pc, 16), int(size)) for pc, size in (item.split(":") for item in fields[1:]))
    elif kind == "b":
        current.block_counts[int(fields[0])] = int(fields[1])
    elif kind == "e":
        current.edges[(int(fields[0]), int(fields[1]))] = int(fields[2])
    elif kind == "m":
        values = [int(v) for v in fields[1:]]
        counts = current.accesses[int(fields[0], 16)]
        if len(values) != len(counts):
            raise ValueError(f"{len(values)} counts where {len(counts)} are expected")
        for index, value in enumerate(values):
            counts[index] += value
    elif kind == "c":
        values = [int(v) for v in fields[1:]]
        current.caches[fields[0]] = (values[0::2], values[1::2])
    elif kind == "w":
        # a window's records follow its `w` line: the caller collects them into it
        windows.append(WindowProfile(int(fields[1])))
    elif kind == "end":
        return True
    else:
        raise ValueError(f"unknown record '{kind}'")
    return False


def plugin_library() -> Path:
    """The plugin, compiled with the host's C compiler into the cache on first use."""
    try:
        return host_library("cycles", "tl_profile", PLUGIN_SOURCE, ("-O2", "-shared", "-fPIC"), (PLUGIN_HEADER,))
    except HostLibraryError as error:
        raise ProfileError(f"the execution profiler: {error}") from None


@dataclass
class Profiler:
    """Attach to a QemuRunner (`runner.profiler = Profiler(board, folder)`): each QEMU it starts
    writes its profile into `folder`, and `collect()` reads the last one."""

    board: BoardSpec
    folder: Path
    caches: dict[str, str] = field(default_factory=dict)  # "dcache"/"icache" -> SIZE:WAYS:LINE:MASK
    runs: int = 0

    def qemu_arguments(self, elf: Path) -> list[str]:
        self.runs += 1
        marker = symbol_address(elf, WINDOW_MARKER_SYMBOL) & ~1  # a Thumb function's address has bit 0 set
        stack = (symbol_address(elf, "_stack_limit"), symbol_address(elf, "_stack_top"))
        flash, ram = self.board.flash, self.board.ram
        options = [
            f"out={self.output}",
            f"marker={marker:x}",
            f"flash={flash.origin:x}:{flash.end:x}",
            f"ram={ram.origin:x}:{ram.end:x}",
            f"stack={stack[0]:x}:{stack[1]:x}",
            *(f"{name}={spec}" for name, spec in sorted(self.caches.items())),
        ]
        return ["-plugin", ",".join([str(plugin_library()), *options])]

    @property
    def output(self) -> Path:
        return self.folder / f"profile-{self.runs}.txt"

    def collect(self) -> ExecutionProfile:
        if self.runs == 0 or not self.output.exists():
            raise ProfileError("no profiled QEMU run has written a profile")
        return parse_profile(self.output)
