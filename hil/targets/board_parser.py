"""A board file's YAML mapping read into a BoardSpec field by field: types, ranges, allowed values
and unknown or missing keys, every problem recorded with its field (a dotted path such as
`uart.base`) so that all of them are reported together."""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from hil.errors import BoardError
from hil.targets.boardspec import BoardSpec, MemoryRegion, PllSpec, QemuSpec, RenodeSpec, UartSpec
from hil.targets.chips import (CORES, FPUS, OPTIMIZE_LEVELS, PIN, PLL_SOURCES, QEMU_MACHINES, SOCS, TIMERS,
                               UART_KINDS)
from hil.targets.yamlfile import describe

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# What a 32-bit register or address holds: clocks, baud rates, sizes and addresses all go into one.
UINT32_MAX = 2**32 - 1
_BOARD_ID = re.compile(r"^[0-9A-Fa-f]{4}$")


class BoardProblems:
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


_TOP_REQUIRED = ("name", "description", "core", "fpu", "clock_hz", "sram_bytes", "flash_bytes",
                 "soc", "memory", "uart", "timer", "optimize", "min_stack_bytes")
_TOP_OPTIONAL = ("qemu", "pyocd_target", "pyocd_board_ids", "renode", "pll")


class BoardParser:
    """Turns the YAML mapping into a BoardSpec, recording every problem it meets."""

    def __init__(self, problems: BoardProblems, path: Path) -> None:
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
            self.problems.add(field, f"expected a mapping, not {describe(value)}")
            return None
        return value

    def integer(self, value: Any, field: str, minimum: int | None = 1,
                maximum: int = UINT32_MAX) -> int | None:
        """An integer from `minimum` to `maximum` (default: what 32 bits hold, as the firmware
        keeps every clock, rate, size and address of a board in 32 bits)."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.add(field, f"expected an integer, not {describe(value)}")
            return None
        if minimum is not None and value < minimum:
            reason = "must be positive" if minimum == 1 else f"must be at least {minimum}"
            self.problems.add(field, f"{reason}, not {value}")
            return None
        if value > maximum:
            limit = f"fit 32 bits (at most {maximum})" if maximum == UINT32_MAX else f"be at most {maximum}"
            self.problems.add(field, f"must {limit}, not {value}")
            return None
        return value

    def string(self, value: Any, field: str, choices: tuple[str, ...] | None = None) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problems.add(field, f"expected a non-empty string, not {describe(value)}")
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
                                  f"{describe(region)}")
                continue
            if not self.mapping(region, field, ("origin", "length")):
                continue
            origin = self.integer(region["origin"], f"{field}.origin", minimum=0)
            length = self.integer(region["length"], f"{field}.length", maximum=1 << 32)
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
            if not isinstance(value, str) or not PIN.match(value):
                self.problems.add(f"uart.{key}", f"expected a pin such as PD8 (port A to K, pin "
                                  f"0 to 15), not {describe(value)}")
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
                              f"[\"0816\"], not {describe(value)}")
            return ()
        ids = []
        for index, item in enumerate(value):
            field = f"pyocd_board_ids[{index}]"
            if not isinstance(item, str) or not _BOARD_ID.match(item):
                self.problems.add(field, f"expected 4 hex digits in quotes such as \"0816\", not "
                                  f"{describe(item)}")
            elif item.upper() in ids:
                self.problems.add(field, f"'{item}' is listed twice")
            else:
                ids.append(item.upper())
        return tuple(ids)


