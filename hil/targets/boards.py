"""Board files (`boards/<name>.yaml`): load them into `BoardSpec`s and refuse malformed ones.

A board file names a core, its memory budgets and linker regions, the UART the protocol runs on,
the timer, and how to reach the board: a QEMU machine (emulated) or a pyOCD target (real). Every
check names the file, the field (a dotted path such as `uart.base`) and the reason.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hil import resources
from hil.errors import BoardError

CORES = ("cortex-m4", "cortex-m7", "cortex-m33")
FPUS = ("none", "fpv4-sp-d16", "fpv5-sp-d16", "fpv5-d16")
# gcc -mfpu values each core can have (the Cortex-M4's FPv4 is single precision only).
CORE_FPUS = {
    "cortex-m4": ("none", "fpv4-sp-d16"),
    "cortex-m7": ("none", "fpv5-sp-d16", "fpv5-d16"),
    "cortex-m33": ("none", "fpv5-sp-d16"),
}
SOCS = ("mps2", "stm32f405-qemu", "stm32f4", "stm32f7", "stm32h7")
EMULATED_SOCS = ("mps2", "stm32f405-qemu")
STM32_REAL_SOCS = ("stm32f4", "stm32f7", "stm32h7")
SOC_CORES = {"stm32f405-qemu": "cortex-m4", "stm32f4": "cortex-m4", "stm32f7": "cortex-m7",
             "stm32h7": "cortex-m7"}
UART_KINDS = ("cmsdk", "stm32-usart-v1", "stm32-usart-v2")
SOC_UART_KINDS = {"mps2": "cmsdk", "stm32f405-qemu": "stm32-usart-v1", "stm32f4": "stm32-usart-v1",
                  "stm32f7": "stm32-usart-v2", "stm32h7": "stm32-usart-v2"}
TIMERS = ("systick", "dwt")
OPTIMIZE_LEVELS = ("O0", "O1", "O2", "O3", "Os", "Ofast")
PLL_SOURCES = ("hse-bypass", "hse-crystal", "hsi")


@dataclass(frozen=True)
class QemuMachine:
    """What QEMU fixes for a machine: its CPU, its soc template, RAM blocks, serial0's UART."""
    cpu: str
    soc: str
    code: tuple[int, int]  # (origin, size) of the block the flash region must fit in
    data: tuple[int, int]  # (origin, size) of the block the RAM region must fit in
    serial0: int


# From QEMU's hw/arm/mps2.c and hw/arm/stm32f405_soc.c (QEMU 7.2).
QEMU_MACHINES = {
    "mps2-an386": QemuMachine("cortex-m4", "mps2", (0x00000000, 4 << 20), (0x20000000, 4 << 20),
                              0x40004000),
    "mps2-an500": QemuMachine("cortex-m7", "mps2", (0x00000000, 4 << 20), (0x20000000, 4 << 20),
                              0x40004000),
    "netduinoplus2": QemuMachine("cortex-m4", "stm32f405-qemu", (0x08000000, 1 << 20),
                                 (0x20000000, 128 << 10), 0x40011000),
}


@dataclass(frozen=True)
class Stm32Usart:
    """One STM32 U(S)ART: its APB bus and its clock-enable bit in that bus's RCC register."""
    number: int
    bus: str  # "apb1" or "apb2"
    enable_bit: int


# The same addresses and enable bits on the F4, F7 and H7 (RCC_APB1ENR/APB1LENR, RCC_APB2ENR).
STM32_USARTS = {
    0x40011000: Stm32Usart(1, "apb2", 4),
    0x40004400: Stm32Usart(2, "apb1", 17),
    0x40004800: Stm32Usart(3, "apb1", 18),
    0x40004C00: Stm32Usart(4, "apb1", 19),
    0x40005000: Stm32Usart(5, "apb1", 20),
    0x40011400: Stm32Usart(6, "apb2", 5),
    0x40007800: Stm32Usart(7, "apb1", 30),
    0x40007C00: Stm32Usart(8, "apb1", 31),
}

# System clock / APB clock, as firmware_templates/soc/<soc>.c.j2 programs the prescalers
# (F4: APB1 /2; F7: APB1 /4, APB2 /2; H7: AHB /2 then every APB /2). The UART's kernel clock
# is its APB clock, so uart.clock_hz must be clock_hz divided by this.
STM32_APB_DIVIDERS = {
    "stm32f4": {"apb1": 2, "apb2": 1},
    "stm32f7": {"apb1": 4, "apb2": 2},
    "stm32h7": {"apb1": 4, "apb2": 4},
}


@dataclass(frozen=True)
class PllLimits:
    hsi_hz: int
    hse_crystal_hz: tuple[int, int]
    m: tuple[int, int]
    ref_hz: tuple[int, int]
    n: tuple[int, int]
    vco_hz: tuple[int, int]
    p: tuple[int, ...]
    q: tuple[int, int]
    max_sysclk_hz: int


MHZ = 1_000_000
# From RM0402 (F412), RM0385/RM0410 (F746/F767) and RM0433 (H743, VOS1, wide-range VCO).
PLL_LIMITS = {
    "stm32f4": PllLimits(16 * MHZ, (4 * MHZ, 26 * MHZ), (2, 63), (1 * MHZ, 2 * MHZ), (50, 432),
                         (100 * MHZ, 432 * MHZ), (2, 4, 6, 8), (2, 15), 100 * MHZ),
    "stm32f7": PllLimits(16 * MHZ, (4 * MHZ, 26 * MHZ), (2, 63), (1 * MHZ, 2 * MHZ), (50, 432),
                         (100 * MHZ, 432 * MHZ), (2, 4, 6, 8), (2, 15), 216 * MHZ),
    "stm32h7": PllLimits(64 * MHZ, (4 * MHZ, 48 * MHZ), (1, 63), (2 * MHZ, 16 * MHZ), (4, 512),
                         (192 * MHZ, 836 * MHZ), tuple(range(2, 129, 2)), (1, 128), 400 * MHZ),
}
HSE_BYPASS_HZ = (1 * MHZ, 50 * MHZ)

_PIN = re.compile(r"^P([A-K])([0-9]|1[0-5])$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_BOARD_ID = re.compile(r"^[0-9A-Fa-f]{4}$")


@dataclass(frozen=True)
class MemoryRegion:
    origin: int
    length: int

    @property
    def end(self) -> int:
        return self.origin + self.length


@dataclass(frozen=True)
class UartSpec:
    kind: str
    base: int
    baud: int
    clock_hz: int | None = None
    tx_pin: str | None = None
    rx_pin: str | None = None
    af: int | None = None

    @property
    def stm32(self) -> Stm32Usart | None:
        """The STM32 U(S)ART at `base` (bus and RCC enable bit), None for other kinds."""
        return STM32_USARTS.get(self.base) if self.kind.startswith("stm32") else None

    @property
    def pins(self) -> tuple[tuple[int, int, bool], ...]:
        """(GPIO port index with A = 0, pin number, is_rx) for tx_pin and rx_pin."""
        found = []
        for pin, is_rx in ((self.tx_pin, False), (self.rx_pin, True)):
            match = _PIN.match(pin or "")
            if match:
                found.append((ord(match.group(1)) - ord("A"), int(match.group(2)), is_rx))
        return tuple(found)

    @property
    def ports(self) -> tuple[int, ...]:
        """The GPIO ports (A = 0) of tx_pin and rx_pin, each once."""
        return tuple(sorted({port for port, _, _ in self.pins}))


@dataclass(frozen=True)
class PllSpec:
    """The STM32 main PLL: sysclk = input_hz / m * n / p (q feeds USB/RNG/SDMMC, unused here)."""
    source: str
    input_hz: int
    m: int
    n: int
    p: int
    q: int

    @property
    def ref_hz(self) -> float:
        return self.input_hz / self.m

    @property
    def vco_hz(self) -> float:
        return self.input_hz * self.n / self.m

    @property
    def output_hz(self) -> float:
        return self.vco_hz / self.p


@dataclass(frozen=True)
class QemuSpec:
    machine: str
    cpu: str


@dataclass(frozen=True)
class RenodeSpec:
    platform: str


@dataclass(frozen=True)
class BoardSpec:
    name: str
    description: str
    core: str
    fpu: str
    clock_hz: int
    sram_bytes: int
    flash_bytes: int
    soc: str
    memory: dict[str, MemoryRegion]
    uart: UartSpec
    timer: str
    optimize: str
    min_stack_bytes: int
    qemu: QemuSpec | None
    pyocd_target: str | None
    pyocd_board_ids: tuple[str, ...]
    renode: RenodeSpec | None
    path: Path
    pll: PllSpec | None = None

    @property
    def emulated(self) -> bool:
        return self.qemu is not None

    @property
    def flash(self) -> MemoryRegion:
        return self.memory["flash"]

    @property
    def ram(self) -> MemoryRegion:
        return self.memory["ram"]

    @property
    def backend(self) -> str:
        return "qemu" if self.emulated else "hardware"


def boards_dir() -> Path:
    """The board files: the repository's `boards/` folder, or the installed copy (hil.resources)."""
    return resources.boards_dir()


def board_names() -> list[str]:
    return sorted(path.stem for path in boards_dir().glob("*.yaml"))


def load_board(name_or_path: str | Path) -> BoardSpec:
    """A board by name (looked up in boards/) or by the path of a .yaml file."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(name_or_path)
        if not path.is_file():
            raise BoardError(f"{_shown(path)}: no such board file")
        return _load_file(path)
    path = boards_dir() / f"{text}.yaml"
    if not path.is_file():
        names = board_names()
        close = difflib.get_close_matches(text, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise BoardError(f"unknown board '{text}'{hint}; available boards: "
                         f"{', '.join(names) or '(none)'}")
    return _load_file(path)


def list_boards() -> list[BoardSpec]:
    """Every board file in boards/, sorted by name."""
    return [_load_file(boards_dir() / f"{name}.yaml") for name in board_names()]


# ---------------------------------------------------------------------------------------------
# Loading and validation


class _Problems:
    """The problems found in one board file, reported together."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.items: list[str] = []

    def add(self, field: str, reason: str) -> None:
        self.items.append(f"field '{field}': {reason}")

    def raise_if_any(self) -> None:
        if len(self.items) == 1:
            raise BoardError(f"{self.shown}: {self.items[0]}")
        if self.items:
            lines = "\n".join(f"  {item}" for item in self.items)
            raise BoardError(f"{self.shown}: {len(self.items)} problems:\n{lines}")


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"field '{key}' is given twice", key_node.start_mark)
            seen.add(key if isinstance(key, str) else repr(key))
        return super().construct_mapping(node, deep=deep)



def _shown(path: Path) -> str:
    """`boards/x.yaml` for the repository's own files, the path as given otherwise."""
    try:
        return f"boards/{path.resolve().relative_to(boards_dir().resolve())}"
    except ValueError:
        return str(path)


def _load_file(path: Path) -> BoardSpec:
    shown = _shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BoardError(f"{shown}: cannot read the board file: {error}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        context_mark = getattr(error, "context_mark", None)
        if context and context_mark is not None and mark is not None \
                and context_mark.line != mark.line:
            context = f"{context} from line {context_mark.line + 1}"
        reason = f"{context}: {problem}" if context else problem
        raise BoardError(f"{shown}: {where}invalid YAML: {reason}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise BoardError(f"{shown}: a board file must be a mapping of fields, but this one is "
                         f"{kind}")
    problems = _Problems(shown)
    board = _Parser(problems, path).board(data)
    problems.raise_if_any()
    assert board is not None
    return board


_TOP_REQUIRED = ("name", "description", "core", "fpu", "clock_hz", "sram_bytes", "flash_bytes",
                 "soc", "memory", "uart", "timer", "optimize", "min_stack_bytes")
_TOP_OPTIONAL = ("qemu", "pyocd_target", "pyocd_board_ids", "renode", "pll")


class _Parser:
    """Turns the YAML mapping into a BoardSpec, recording every problem it meets."""

    def __init__(self, problems: _Problems, path: Path) -> None:
        self.problems = problems
        self.path = path

    # -- generic field readers ----------------------------------------------------------------

    def mapping(self, data: dict, field: str, required: tuple[str, ...],
                optional: tuple[str, ...] = ()) -> bool:
        """Report missing and unknown keys of `data` (found at `field`); True when none missing."""
        prefix = f"{field}." if field else ""
        allowed = required + optional
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = (f"did you mean '{close[0]}'?" if close
                        else f"expected one of {', '.join(allowed)}")
                self.problems.add(f"{prefix}{key}", f"unknown field ({hint})")
        missing = [key for key in required if key not in data]
        for key in missing:
            self.problems.add(f"{prefix}{key}", "required field is missing")
        return not missing

    def section(self, data: dict, field: str) -> dict | None:
        value = data.get(field.rsplit(".", 1)[-1])
        if not isinstance(value, dict):
            self.problems.add(field, f"expected a mapping, not {_describe(value)}")
            return None
        return value

    def integer(self, value: Any, field: str, minimum: int | None = 1) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.add(field, f"expected an integer, not {_describe(value)}")
            return None
        if minimum is not None and value < minimum:
            reason = "must be positive" if minimum == 1 else f"must be at least {minimum}"
            self.problems.add(field, f"{reason}, not {value}")
            return None
        return value

    def string(self, value: Any, field: str, choices: tuple[str, ...] | None = None) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problems.add(field, f"expected a non-empty string, not {_describe(value)}")
            return None
        if choices is not None and value not in choices:
            self.problems.add(field, f"'{value}' is not one of {', '.join(choices)}")
            return None
        return value

    # -- sections -----------------------------------------------------------------------------

    def board(self, data: dict) -> BoardSpec | None:
        self.mapping(data, "", _TOP_REQUIRED, _TOP_OPTIONAL)
        p = self.problems
        name = self.string(data.get("name"), "name") if "name" in data else None
        if name is not None:
            if not _NAME.match(name):
                p.add("name", f"'{name}' must be lower case letters, digits and '-'")
            elif name != self.path.stem:
                p.add("name", f"'{name}' differs from the file name '{self.path.stem}' "
                      f"(a board is found by its file name)")
        description = self.string(data.get("description"), "description") \
            if "description" in data else None
        core = self.string(data.get("core"), "core", CORES) if "core" in data else None
        fpu = self.string(data.get("fpu"), "fpu", FPUS) if "fpu" in data else None
        clock_hz = self.integer(data.get("clock_hz"), "clock_hz") if "clock_hz" in data else None
        sram = self.integer(data.get("sram_bytes"), "sram_bytes") if "sram_bytes" in data else None
        flash = self.integer(data.get("flash_bytes"), "flash_bytes") \
            if "flash_bytes" in data else None
        soc = self.string(data.get("soc"), "soc", SOCS) if "soc" in data else None
        timer = self.string(data.get("timer"), "timer", TIMERS) if "timer" in data else None
        optimize = self.string(data.get("optimize"), "optimize", OPTIMIZE_LEVELS) \
            if "optimize" in data else None
        min_stack = self.integer(data.get("min_stack_bytes"), "min_stack_bytes") \
            if "min_stack_bytes" in data else None
        memory = self.memory(data) if "memory" in data else None
        uart = self.uart(data) if "uart" in data else None
        qemu = self.qemu(data) if data.get("qemu") is not None else None
        renode = self.renode(data) if data.get("renode") is not None else None
        pll = self.pll(data) if data.get("pll") is not None else None
        pyocd_target = None
        if data.get("pyocd_target") is not None:
            pyocd_target = self.string(data["pyocd_target"], "pyocd_target")
        board_ids = self.board_ids(data.get("pyocd_board_ids"))
        if len(p.items):
            return None
        board = BoardSpec(
            name=name, description=description, core=core, fpu=fpu, clock_hz=clock_hz,
            sram_bytes=sram, flash_bytes=flash, soc=soc, memory=memory, uart=uart, timer=timer,
            optimize=optimize, min_stack_bytes=min_stack, qemu=qemu, pyocd_target=pyocd_target,
            pyocd_board_ids=board_ids, renode=renode, path=self.path.resolve(), pll=pll)
        _check_consistency(board, data, p)
        return board

    def memory(self, data: dict) -> dict[str, MemoryRegion] | None:
        section = self.section(data, "memory")
        if section is None:
            return None
        if not self.mapping(section, "memory", ("flash", "ram")):
            return None
        regions = {}
        for key in ("flash", "ram"):
            field = f"memory.{key}"
            region = section[key]
            if not isinstance(region, dict):
                self.problems.add(field, f"expected a mapping with origin and length, not "
                                  f"{_describe(region)}")
                continue
            if not self.mapping(region, field, ("origin", "length")):
                continue
            origin = self.integer(region["origin"], f"{field}.origin", minimum=0)
            length = self.integer(region["length"], f"{field}.length")
            if origin is not None and length is not None:
                if origin + length > 1 << 32:
                    self.problems.add(field, f"0x{origin:08X} + 0x{length:X} runs past the 4 GiB "
                                      "address space")
                    continue
                regions[key] = MemoryRegion(origin, length)
        return regions if len(regions) == 2 else None

    def uart(self, data: dict) -> UartSpec | None:
        section = self.section(data, "uart")
        if section is None:
            return None
        if not self.mapping(section, "uart", ("kind", "base", "baud"),
                            ("clock_hz", "tx_pin", "rx_pin", "af")):
            return None
        kind = self.string(section["kind"], "uart.kind", UART_KINDS)
        base = self.integer(section["base"], "uart.base", minimum=0)
        baud = self.integer(section["baud"], "uart.baud")
        clock_hz = af = tx_pin = rx_pin = None
        if section.get("clock_hz") is not None:
            clock_hz = self.integer(section["clock_hz"], "uart.clock_hz")
        if section.get("af") is not None:
            af = self.integer(section["af"], "uart.af", minimum=0)
            if af is not None and af > 15:
                self.problems.add("uart.af", f"an alternate function is 0 to 15, not {af}")
        for key in ("tx_pin", "rx_pin"):
            value = section.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not _PIN.match(value):
                self.problems.add(f"uart.{key}", f"expected a pin such as PD8 (port A to K, pin "
                                  f"0 to 15), not {_describe(value)}")
            elif key == "tx_pin":
                tx_pin = value
            else:
                rx_pin = value
        if kind is None or base is None or baud is None:
            return None
        return UartSpec(kind, base, baud, clock_hz, tx_pin, rx_pin, af)

    def qemu(self, data: dict) -> QemuSpec | None:
        section = self.section(data, "qemu")
        if section is None or not self.mapping(section, "qemu", ("machine", "cpu")):
            return None
        machine = self.string(section["machine"], "qemu.machine", tuple(QEMU_MACHINES))
        cpu = self.string(section["cpu"], "qemu.cpu", CORES)
        return QemuSpec(machine, cpu) if machine and cpu else None

    def renode(self, data: dict) -> RenodeSpec | None:
        section = self.section(data, "renode")
        if section is None or not self.mapping(section, "renode", ("platform",)):
            return None
        platform = self.string(section["platform"], "renode.platform")
        if platform is not None and not platform.endswith(".repl"):
            self.problems.add("renode.platform", f"'{platform}' is not a Renode .repl file")
            return None
        return RenodeSpec(platform) if platform else None

    def pll(self, data: dict) -> PllSpec | None:
        section = self.section(data, "pll")
        if section is None or not self.mapping(section, "pll",
                                               ("source", "input_hz", "m", "n", "p", "q")):
            return None
        source = self.string(section["source"], "pll.source", PLL_SOURCES)
        values = [self.integer(section[key], f"pll.{key}")
                  for key in ("input_hz", "m", "n", "p", "q")]
        if source is None or None in values:
            return None
        return PllSpec(source, *values)

    def board_ids(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problems.add("pyocd_board_ids", f"expected a list of 4-hex-digit strings such as "
                              f"[\"0816\"], not {_describe(value)}")
            return ()
        ids = []
        for index, item in enumerate(value):
            field = f"pyocd_board_ids[{index}]"
            if not isinstance(item, str) or not _BOARD_ID.match(item):
                self.problems.add(field, f"expected 4 hex digits in quotes such as \"0816\", not "
                                  f"{_describe(item)}")
            elif item.upper() in ids:
                self.problems.add(field, f"'{item}' is listed twice")
            else:
                ids.append(item.upper())
        return tuple(ids)


def _check_consistency(board: BoardSpec, data: dict, p: _Problems) -> None:
    """Checks across fields, on a board whose every field has the right type."""
    flash, ram = board.flash, board.ram
    if ram.length != board.sram_bytes:
        p.add("memory.ram.length", f"{ram.length} differs from sram_bytes {board.sram_bytes}")
    if flash.length != board.flash_bytes:
        p.add("memory.flash.length", f"{flash.length} differs from flash_bytes "
              f"{board.flash_bytes}")
    if flash.origin < ram.end and ram.origin < flash.end:
        p.add("memory", f"flash 0x{flash.origin:08X}-0x{flash.end - 1:08X} and ram "
              f"0x{ram.origin:08X}-0x{ram.end - 1:08X} overlap")
    if board.min_stack_bytes >= board.sram_bytes:
        p.add("min_stack_bytes", f"{board.min_stack_bytes} leaves nothing of sram_bytes "
              f"{board.sram_bytes}")
    if board.fpu not in CORE_FPUS[board.core]:
        p.add("fpu", f"a {board.core} cannot have {board.fpu}; expected one of "
              f"{', '.join(CORE_FPUS[board.core])}")
    if board.soc in SOC_CORES and board.core != SOC_CORES[board.soc]:
        p.add("core", f"soc {board.soc} is a {SOC_CORES[board.soc]}, not a {board.core}")

    uart = board.uart
    expected_kind = SOC_UART_KINDS[board.soc]
    if uart.kind != expected_kind:
        if uart.kind == "cmsdk":
            p.add("uart.kind", f"the CMSDK UART exists only on soc mps2 (this is {board.soc}); "
                  f"expected {expected_kind}")
        else:
            p.add("uart.kind", f"soc {board.soc} has {expected_kind}, not {uart.kind}")
    stm32_pin_fields = [key for key in ("tx_pin", "rx_pin", "af") if key in data["uart"]]
    if board.soc in STM32_REAL_SOCS:
        _check_real_stm32(board, p)
    elif stm32_pin_fields:
        p.add(f"uart.{stm32_pin_fields[0]}", "pins are set up only on real STM32 boards "
              "(QEMU needs none)")

    if board.emulated:
        _check_emulated(board, data, p)
    else:
        if board.soc in EMULATED_SOCS:
            p.add("qemu", f"soc {board.soc} exists only in QEMU: the board needs a qemu section")
        if board.pyocd_target is None:
            p.add("pyocd_target", "a real board needs its pyOCD target "
                  "(see `pyocd list --targets`)")
        if not board.pyocd_board_ids:
            p.add("pyocd_board_ids", "a real board needs at least one pyOCD/Mbed board id "
                  "(the first 4 hex digits of a DAPLink or ST-LINK board id)")


def _check_emulated(board: BoardSpec, data: dict, p: _Problems) -> None:
    qemu = board.qemu
    assert qemu is not None
    machine = QEMU_MACHINES[qemu.machine]
    if board.soc in STM32_REAL_SOCS:
        p.add("qemu", f"soc {board.soc} is a real chip; an emulated board uses soc "
              f"{machine.soc} on {qemu.machine}")
    elif board.soc != machine.soc:
        p.add("soc", f"QEMU machine {qemu.machine} needs soc {machine.soc}, not {board.soc}")
    if qemu.cpu != machine.cpu:
        p.add("qemu.cpu", f"QEMU machine {qemu.machine} has a {machine.cpu}, not a {qemu.cpu}")
    if board.core != qemu.cpu:
        p.add("core", f"{board.core} differs from qemu.cpu {qemu.cpu}")
    if board.timer != "systick":
        p.add("timer", f"'{board.timer}' does not count under QEMU (the DWT cycle counter reads "
              "0 there); use systick")
    for key, block in (("flash", machine.code), ("ram", machine.data)):
        region = board.memory[key]
        if not (block[0] <= region.origin and region.end <= block[0] + block[1]):
            p.add(f"memory.{key}", f"0x{region.origin:08X}-0x{region.end - 1:08X} is outside "
                  f"{qemu.machine}'s memory at 0x{block[0]:08X}-0x{block[0] + block[1] - 1:08X}")
    if board.uart.base != machine.serial0:
        p.add("uart.base", f"QEMU {qemu.machine} connects serial0 to the UART at "
              f"0x{machine.serial0:08X}, not 0x{board.uart.base:08X}")
    for key in ("pyocd_target", "pyocd_board_ids", "pll"):
        if data.get(key) is not None:
            p.add(key, "only for real boards (this one has a qemu section)")


def _check_real_stm32(board: BoardSpec, p: _Problems) -> None:
    uart = board.uart
    for key in ("clock_hz", "tx_pin", "rx_pin", "af"):
        if getattr(uart, key) is None:
            p.add(f"uart.{key}", f"required on a real STM32 board (soc {board.soc})")
    usart = STM32_USARTS.get(uart.base)
    if usart is None:
        known = ", ".join(f"0x{base:08X}" for base in STM32_USARTS)
        p.add("uart.base", f"0x{uart.base:08X} is not an STM32 U(S)ART; expected one of {known}")
    elif uart.clock_hz is not None:
        divider = STM32_APB_DIVIDERS[board.soc][usart.bus]
        expected = board.clock_hz // divider
        if uart.clock_hz != expected:
            p.add("uart.clock_hz", f"{uart.clock_hz} is not the clock of USART{usart.number}: "
                  f"soc {board.soc} runs {usart.bus.upper()} at clock_hz / {divider} = {expected}")
        elif uart.clock_hz < 16 * uart.baud:
            p.add("uart.baud", f"{uart.baud} is too fast for a {uart.clock_hz} Hz UART clock")
    if board.pll is None:
        p.add("pll", f"required on a real STM32 board (soc {board.soc}): the PLL settings that "
              f"give clock_hz")
    else:
        _check_pll(board, board.pll, p)


def _check_pll(board: BoardSpec, pll: PllSpec, p: _Problems) -> None:
    limits = PLL_LIMITS[board.soc]
    if pll.source == "hsi" and pll.input_hz != limits.hsi_hz:
        p.add("pll.input_hz", f"the {board.soc} HSI runs at {limits.hsi_hz} Hz, not {pll.input_hz}")
    low, high = limits.hse_crystal_hz if pll.source == "hse-crystal" else HSE_BYPASS_HZ
    if pll.source != "hsi" and not low <= pll.input_hz <= high:
        p.add("pll.input_hz", f"{pll.input_hz} Hz is outside {low}-{high} Hz for {pll.source}")
    for key, (low, high) in (("m", limits.m), ("n", limits.n), ("q", limits.q)):
        value = getattr(pll, key)
        if not low <= value <= high:
            p.add(f"pll.{key}", f"{value} is outside {low}-{high} on {board.soc}")
    if pll.p not in limits.p:
        allowed = ", ".join(map(str, limits.p)) if len(limits.p) < 8 else "an even number 2-128"
        p.add("pll.p", f"{pll.p} is not {allowed} on {board.soc}")
    if not limits.ref_hz[0] <= pll.ref_hz <= limits.ref_hz[1]:
        p.add("pll.m", f"input_hz / m = {pll.ref_hz:.0f} Hz is outside the PLL's input range "
              f"{limits.ref_hz[0]}-{limits.ref_hz[1]} Hz")
    if not limits.vco_hz[0] <= pll.vco_hz <= limits.vco_hz[1]:
        p.add("pll.n", f"input_hz / m * n = {pll.vco_hz:.0f} Hz is outside the VCO range "
              f"{limits.vco_hz[0]}-{limits.vco_hz[1]} Hz")
    if pll.input_hz * pll.n != board.clock_hz * pll.m * pll.p:
        p.add("pll", f"input_hz / m * n / p = {pll.output_hz:.0f} Hz, not clock_hz "
              f"{board.clock_hz}")
    if board.clock_hz > limits.max_sysclk_hz:
        p.add("clock_hz", f"{board.clock_hz} is above the {limits.max_sysclk_hz} Hz that the "
              f"{board.soc} template sets up")


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return f"{type(value).__name__} {value!r}"
