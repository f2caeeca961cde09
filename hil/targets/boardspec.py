"""A board as the lab uses it (`BoardSpec`): core, clock, memory budgets and linker regions, UART,
timer, clock tree, and how to reach it (QEMU, Renode or a pyOCD target)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hil.targets.chips import PIN, STM32_USARTS, Stm32Usart


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
            match = PIN.match(pin or "")
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
