"""A cycle-approximate timing model: a core's timing (boards/cores/<core>.yaml) and a board's
memory system (boards/timing/<board>.yaml), both data with the source of every number, applied to
an execution profile. The core model schedules each executed block in order (one or two
instructions a cycle, each waiting for the registers it reads), adds each branch's cost from its
taken and not-taken counts, and each cache miss or uncached wait-stated access its penalty."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import AbstractSet as Set, Any, Mapping

from hil.cycles.disassembly import Instruction
from hil.cycles.profile import REGIONS, ExecutionProfile, WindowProfile
from hil.errors import LabError
from hil.resources import boards_dir
from hil.targets.yamlfile import read_yaml

SINGLE_MEMORY = {"load", "store", "fp_load", "fp_store"}
MAC_CLASSES = {"mac", "dsp_mac", "dsp_mac_long", "mul_long"}
MULTIPLY_CLASSES = {"mul", "dsp_mul"} | MAC_CLASSES
MULTIPLE = {"load_multiple", "store_multiple", "fp_load_multiple", "fp_store_multiple"}


class CycleModelError(LabError):
    """A core or memory-system file is missing or malformed, or a profile cannot be estimated."""


def _number(data: Mapping[str, Any], key: str, shown: str) -> float:
    entry = data.get(key)
    value = entry.get("cycles") if isinstance(entry, Mapping) else entry
    if not isinstance(value, (int, float)):
        raise CycleModelError(f"{shown}: '{key}' needs a number of cycles (with its source)")
    return float(value)


@dataclass(frozen=True)
class CoreTiming:
    """One core's instruction timing: what an instruction of each class occupies, when its result
    is ready, which classes issue together, and what branches cost."""

    name: str
    issue_width: int
    occupancy: dict[str, float]  # class -> cycles the instruction holds the issue stage
    result_latency: dict[str, float]  # class -> cycles from issue until a reader can issue
    pipelined_memory: float  # a single load/store right after another: its occupancy
    multiple_base: float  # LDM/STM/PUSH/POP: base + per_register * N
    multiple_per_register: float
    branch_taken: float  # total cycles of a taken branch
    branch_not_taken: float
    mispredict_penalty: float  # added per mispredicted branch (0: no predictor, taken costs branch_taken)
    predicted: bool  # whether the core predicts branches (then a taken branch costs branch_taken when predicted)
    pairs: frozenset[tuple[str, str]]  # (older, younger) classes that issue in the same cycle
    sources: dict[str, str] = field(default_factory=dict)
    rules: dict[str, float] = field(default_factory=dict)  # the scheduler's named stalls and folds (see schedule)
    unaligned_wide_target_extra: float = 0.0  # a taken branch to a 32-bit instruction at an odd halfword
    error_bar: str = "not validated"  # the validation's measured error, as `tinylab cycles validate` printed it

    def cost(self, instruction: Instruction, after_memory: bool) -> float:
        kind = instruction.kind
        if kind in MULTIPLE:
            return self.multiple_base + math.ceil(self.multiple_per_register * max(instruction.registers_moved, 1))
        if kind in SINGLE_MEMORY and after_memory:
            return self.pipelined_memory
        return self.occupancy.get(kind, self.occupancy["alu"])

    def latency(self, instruction: Instruction, cost: float) -> float:
        return self.result_latency.get(instruction.kind, cost)


@dataclass(frozen=True)
class CacheSpec:
    size: int
    ways: int
    line: int
    regions: tuple[str, ...]
    miss_cycles: dict[str, float]  # region -> cycles a miss adds

    def plugin_argument(self) -> str:
        mask = sum(1 << REGIONS.index(region) for region in self.regions)
        return f"{self.size}:{self.ways}:{self.line}:{mask:x}"


@dataclass(frozen=True)
class MemorySystem:
    """A board's memory as its software used it: caches, and what an uncached access adds."""

    name: str  # the timing file's name
    board: str  # the real board's board file
    core: str
    clock_hz: int
    emulated_by: tuple[str, ...]
    dcache: CacheSpec | None
    icache: CacheSpec | None
    uncached_access_cycles: dict[str, float]  # region -> cycles an uncached data access adds
    notes: str = ""

    def plugin_caches(self) -> dict[str, str]:
        """The profiler's cache arguments (hil.cycles.profile.Profiler.caches) for this memory system."""
        return {name: spec.plugin_argument() for name, spec in (("dcache", self.dcache), ("icache", self.icache))
                if spec is not None}


def _read(folder: str, name: str) -> tuple[Mapping[str, Any], str]:
    path = boards_dir() / folder / f"{name}.yaml"
    shown = f"{folder}/{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (boards_dir() / folder).glob("*.yaml"))
        raise CycleModelError(f"no timing data {shown} (known: {', '.join(known) or 'none'})")
    data = read_yaml(path, shown, CycleModelError)
    if not isinstance(data, Mapping):
        raise CycleModelError(f"{shown}: expected a mapping")
    return data, shown


@functools.cache
def load_core(name: str) -> CoreTiming:
    data, shown = _read("cores", name)
    classes = data.get("classes", {})
    occupancy = {kind: _number(classes, kind, shown) for kind in classes}
    if "alu" not in occupancy:
        raise CycleModelError(f"{shown}: classes must give 'alu'")
    latency = {kind: _number(data.get("result_latency", {}), kind, shown) for kind in data.get("result_latency", {})}
    multiple = data.get("multiple", {})
    branch = data.get("branch", {})
    return CoreTiming(
        name=name,
        issue_width=int(data.get("issue_width", 1)),
        occupancy=occupancy,
        result_latency=latency,
        pipelined_memory=_number(data, "pipelined_memory", shown),
        multiple_base=_number(multiple, "base", shown),
        multiple_per_register=_number(multiple, "per_register", shown),
        branch_taken=_number(branch, "taken", shown),
        branch_not_taken=_number(branch, "not_taken", shown),
        mispredict_penalty=_number(branch, "mispredict_penalty", shown) if "mispredict_penalty" in branch else 0.0,
        predicted=bool(branch.get("predicted", False)),
        pairs=frozenset(tuple(pair) for pair in data.get("dual_issue", {}).get("pairs", [])),
        sources={str(k): str(v) for k, v in data.get("sources", {}).items()},
        rules={kind: _number(data.get("rules", {}), kind, shown) for kind in data.get("rules", {})},
        unaligned_wide_target_extra=(_number(branch, "unaligned_wide_target_extra", shown)
                                     if "unaligned_wide_target_extra" in branch else 0.0),
        error_bar=str(data.get("validation", {}).get("error_bar", "not validated")),
    )


def _cache(data: Mapping[str, Any] | None, shown: str) -> CacheSpec | None:
    if not data:
        return None
    try:
        return CacheSpec(int(data["size"]), int(data["ways"]), int(data["line"]), tuple(data["regions"]),
                         {region: float(cycles) for region, cycles in data["miss_cycles"].items()})
    except (KeyError, TypeError, ValueError) as problem:
        raise CycleModelError(f"{shown}: a cache needs size, ways, line, regions and miss_cycles ({problem})") from None


@functools.cache
def load_memory_system(name: str) -> MemorySystem:
    """boards/timing/<name>.yaml: a board's memory system at one clock."""
    data, shown = _read("timing", name)
    return MemorySystem(
        name=name,
        board=str(data["board"]),
        core=str(data["core"]),
        clock_hz=int(data["clock_hz"]),
        emulated_by=tuple(data.get("emulated_by", ())),
        dcache=_cache(data.get("dcache"), shown),
        icache=_cache(data.get("icache"), shown),
        uncached_access_cycles={k: float(v) for k, v in data.get("uncached_access_cycles", {}).items()},
        notes=str(data.get("notes", "")),
    )


def memory_systems() -> list[MemorySystem]:
    return [load_memory_system(path.stem) for path in sorted((boards_dir() / "timing").glob("*.yaml"))]


@dataclass(frozen=True)
class CycleEstimate:
    """Estimated cycles of one timed window, with its parts."""

    model: str  # "<core> on <board>"
    clock_hz: int  # the board's clock: estimated milliseconds are cycles at this clock
    error_bar: str  # the model's measured error against published latencies
    instructions: int
    issue_cycles: float  # the in-order schedule of every executed block
    branch_cycles: float  # taken branches' refill and mispredictions, beyond the schedule
    memory_cycles: float  # cache misses and uncached wait-stated accesses
    branches_taken: int
    branches_not_taken: int

    @property
    def cycles(self) -> float:
        return self.issue_cycles + self.branch_cycles + self.memory_cycles

    @property
    def cpi(self) -> float:
        return self.cycles / self.instructions if self.instructions else 0.0

    @property
    def milliseconds(self) -> float:
        return self.cycles / self.clock_hz * 1e3

    def to_json(self) -> dict[str, object]:
        return {"cycle_model": self.model, "estimated_cycles": round(self.cycles), "instructions": self.instructions,
                "cpi": round(self.cpi, 4), "clock_hz": self.clock_hz, "estimated_ms": round(self.milliseconds, 3),
                "error_bar": self.error_bar, "issue_cycles": round(self.issue_cycles),
                "branch_cycles": round(self.branch_cycles), "memory_cycles": round(self.memory_cycles),
                "branches_taken": self.branches_taken, "branches_not_taken": self.branches_not_taken}


def address_registers(instruction: Instruction) -> set[str]:
    """The registers a load or store computes its address from."""
    kind = instruction.kind
    if kind in ("store", "fp_store"):
        return set(instruction.reads[1:])
    if kind == "store_dual":
        return set(instruction.reads[2:])
    if kind in MULTIPLE:
        return set(instruction.reads[:1])
    return set(instruction.reads)


def schedule(block: list[tuple[Instruction, int]], core: CoreTiming, regions: Mapping[int, int] | None = None,
             other_bank: Set[int] = frozenset()) -> float:
    """Cycles of one pass through `block` (instructions with their sizes in bytes): in order, up
    to `issue_width` a cycle where the pair is allowed, each instruction waiting for the registers
    it reads; a branch ending the block counts as not taken here. `regions`: the memory region
    (an index of REGIONS) most accesses of each load or store went to, by address; `other_bank`:
    the loads and stores that mostly went to the other 32-bit bank than the access before."""
    regions = regions or {}
    rules = core.rules
    ready: dict[str, float] = {}
    writer: dict[str, Instruction] = {}
    issued = 0.0  # when the previous instruction issued
    free = 0.0  # when the issue stage is next free for an instruction that does not pair
    previous: Instruction | None = None
    previous_size = 4
    paired_last = False
    end = 0.0
    for instruction, size in block:
        kind = instruction.kind
        memory = kind in SINGLE_MEMORY or kind in MULTIPLE or kind in ("load_dual", "store_dual")
        addresses = address_registers(instruction) if memory else set()
        pipelined = (rules.get("load_pipelining", 0) and previous is not None and previous.kind in ("load", "fp_load")
                     and kind in SINGLE_MEMORY and not addresses & set(previous.writes)
                     and not _pipelining_broken(rules, previous, instruction, size, regions))
        cost = core.cost(instruction, bool(pipelined))
        if kind in ("store", "fp_store") and instruction.register_offset:
            cost = max(cost, rules.get("register_offset_store", 0))
        if (kind in ("load", "load_dual", "load_multiple", "fp_load") and previous is not None
                and previous.kind in ("store", "store_dual", "fp_store")):
            cost += rules.get("store_then_load_extra", 0)
        if kind == "branch":
            cost = core.branch_not_taken
        if kind == "it" and rules.get("it_folds_after_16bit", 0) and previous_size == 2:
            cost = 0.0
        earliest = free
        if (core.issue_width > 1 and previous is not None and not paired_last
                and not set(instruction.reads) & set(previous.writes)
                and ((previous.kind, kind) in core.pairs
                     or (previous.kind, kind) == ("load", "load") and rules.get("loads_pair_across_banks")
                     and instruction.pc in other_bank)):
            earliest = issued
        waits = [earliest]
        for register in instruction.reads:
            if register not in ready:
                continue
            when = ready[register]
            source = writer[register]
            if source.kind in ("load", "load_dual", "load_multiple", "fp_load"):
                if register in addresses or kind in MULTIPLY_CLASSES:
                    when += rules.get("load_to_address_or_multiply_extra", 0)
                if 0 < source.bytes_moved < 4:
                    when += rules.get("narrow_load_extra", 0)
            if (kind in MAC_CLASSES and source.kind in MAC_CLASSES and register in instruction.writes
                    and "mac_accumulator_latency" in rules):
                when = ready[register] - core.latency(source, 1.0) + rules["mac_accumulator_latency"]
            waits.append(when)
        if memory and previous is not None and previous.kind not in ("load", "load_dual", "load_multiple", "fp_load") \
                and addresses & set(previous.writes):
            waits.append(issued + core.cost(previous, False) + rules.get("address_dependency_stall", 0))
        start = max(waits)
        paired_last = previous is not None and start == issued and earliest == issued
        free = max(free, start + cost)
        latency = core.latency(instruction, cost)
        for register in instruction.writes:
            ready[register] = start + latency
            writer[register] = instruction
        issued = start
        previous, previous_size = instruction, size
        end = max(end, start + cost)
    return end


def _pipelining_broken(rules: Mapping[str, float], previous: Instruction, instruction: Instruction, size: int,
                       regions: Mapping[int, int]) -> bool:
    """The Cortex-M4's measured exceptions to load pipelining (rules named in its core file)."""
    if rules.get("pipelining_needs_same_region") and previous.pc in regions and instruction.pc in regions \
            and regions[previous.pc] != regions[instruction.pc]:
        return True
    if rules.get("unaligned_wide_load_not_pipelined") and size == 4 and instruction.pc % 4 == 2:
        return True
    if rules.get("indexed_chain_not_pipelined") and previous.writeback and instruction.writeback:
        base = set(previous.reads[:1])  # a load's first read is its base register
        return bool(base) and base <= address_registers(instruction)
    return False


def estimate(profile: ExecutionProfile, window: WindowProfile, instructions: Mapping[int, Instruction],
             core: CoreTiming, memory: MemorySystem) -> CycleEstimate:
    """Estimated cycles of `window` of `profile` with `core` and `memory`; `instructions` is the
    firmware's disassembly. Every executed address must be in it."""
    issue = 0.0
    taken_total = not_taken_total = 0
    branch_extra = 0.0
    successors: dict[int, list[tuple[int, int]]] = {}
    for (source, target), count in window.edges.items():
        successors.setdefault(source, []).append((target, count))
    regions = {pc: max(range(len(REGIONS)), key=counts.__getitem__) for pc, counts in window.accesses.items()}
    other_bank = {pc for pc, counts in window.accesses.items() if 2 * counts[len(REGIONS)] > sum(counts[:len(REGIONS)])}
    for block_id, count in window.block_counts.items():
        block = profile.blocks[block_id]
        try:
            decoded = [(instructions[pc], size) for pc, size in block.instructions]
        except KeyError as missing:
            raise CycleModelError(f"address {missing.args[0]:#x} ran but is not an instruction of the firmware") from None
        issue += count * schedule(decoded, core, regions, other_bank)
        last = decoded[-1][0]
        if last.kind != "branch" and not last.writes_pc:
            continue
        fall_through = block.instructions[-1][0] + block.instructions[-1][1]
        after = successors.get(block_id, [])
        targets: dict[int, int] = {}
        for target, n in after:
            targets[profile.blocks[target].pc] = targets.get(profile.blocks[target].pc, 0) + n
        not_taken = targets.pop(fall_through, 0) if last.conditional else 0
        taken = sum(targets.values())
        taken_total += taken
        not_taken_total += not_taken
        branch_extra += _branch_cycles(core, last, targets, not_taken, profile)
    memory_cycles = _memory_cycles(window, instructions, memory)
    return CycleEstimate(model_name(core, memory), memory.clock_hz, core.error_bar, window.instructions, issue,
                         branch_extra, memory_cycles, taken_total, not_taken_total)


def _branch_cycles(core: CoreTiming, last: Instruction, targets: dict[int, int], not_taken: int,
                   profile: ExecutionProfile) -> float:
    """What the block's last instruction adds beyond its not-taken cost in the schedule, from its
    taken count to each target (`targets`: target address -> count) and its not-taken count."""
    taken = sum(targets.values())
    extra = taken * (core.branch_taken - core.branch_not_taken)
    if core.unaligned_wide_target_extra:
        sizes = profile.first_instruction_sizes
        extra += core.unaligned_wide_target_extra * sum(
            n for pc, n in targets.items() if pc % 4 == 2 and sizes.get(pc) == 4)
    if not core.predicted:
        return extra
    if last.conditional:
        mispredicted = min(taken, not_taken)  # a loop branch mispredicts about once per exit
    elif len(targets) > 1:
        mispredicted = taken - max(targets.values())  # an indirect branch: the target cache holds one target
    else:
        mispredicted = 0
    return extra + mispredicted * core.mispredict_penalty


def _memory_cycles(window: WindowProfile, instructions: Mapping[int, Instruction], memory: MemorySystem) -> float:
    total = 0.0
    for name, spec in (("d", memory.dcache), ("i", memory.icache)):
        if spec is None or name not in window.caches:
            continue
        _hits, misses = window.caches[name]
        total += sum(misses[REGIONS.index(region)] * cycles for region, cycles in spec.miss_cycles.items())
    cached = set(memory.dcache.regions) if memory.dcache else set()
    for pc, counts in window.accesses.items():
        for region, cycles in memory.uncached_access_cycles.items():
            if region not in cached:
                total += counts[REGIONS.index(region)] * cycles
    return total


def model_name(core: CoreTiming, memory: MemorySystem) -> str:
    """The name an estimate carries: the core, the real board whose memory system it uses, its clock."""
    return f"{core.name} on {memory.board} at {memory.clock_hz / 1e6:g} MHz"


def model_for(board_name: str, core_choice: str = "auto") -> tuple[CoreTiming, MemorySystem]:
    """The core and memory system that `--cycle-model` names for a run on `board_name`: the
    memory system of the real board the emulated board stands for (or the board itself), with its
    core (auto) or the core named (m4, m7)."""
    systems = [m for m in memory_systems() if board_name == m.name or board_name in m.emulated_by]
    if not systems:
        known = ", ".join(f"{m.board} ({', '.join(m.emulated_by)})" for m in memory_systems())
        raise CycleModelError(f"board {board_name} has no timing data in boards/timing/ (boards with one: {known})")
    memory = systems[0]
    core = {"auto": memory.core, "m4": "cortex-m4", "m7": "cortex-m7"}.get(core_choice)
    if core is None:
        raise CycleModelError(f"unknown cycle model '{core_choice}' (choose m4, m7 or auto)")
    return load_core(core), memory
