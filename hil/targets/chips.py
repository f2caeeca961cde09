"""What a board file may name: cores, FPUs, SoCs, UART kinds, timers and optimisation levels, and
what the lab knows of each chip: QEMU's machines, the STM32 U(S)ARTs, their bus clocks, and the
limits of the STM32 PLLs. Adding a SoC, UART or timer kind starts here."""
from __future__ import annotations

import re
from dataclasses import dataclass

CORES = ("cortex-m4", "cortex-m7", "cortex-m33")
FPUS = ("none", "fpv4-sp-d16", "fpv5-sp-d16", "fpv5-d16")
# gcc -mfpu values each core can have (the Cortex-M4's FPv4 is single precision only).
CORE_FPUS = {
    "cortex-m4": ("none", "fpv4-sp-d16"),
    "cortex-m7": ("none", "fpv5-sp-d16", "fpv5-d16"),
    "cortex-m33": ("none", "fpv5-sp-d16"),
}
SOCS = ("mps2", "stm32f405-qemu", "stm32f4", "stm32f7", "stm32h7", "stm32l4")
EMULATED_SOCS = ("mps2", "stm32f405-qemu")
STM32_REAL_SOCS = ("stm32f4", "stm32f7", "stm32h7", "stm32l4")
SOC_CORES = {"stm32f405-qemu": "cortex-m4", "stm32f4": "cortex-m4", "stm32f7": "cortex-m7",
             "stm32h7": "cortex-m7", "stm32l4": "cortex-m4"}
# stm32-lpuart: the L4's LPUART1 (the NUCLEO-144 L4R5ZI's ST-LINK port): the usart-v2 register
# layout with BRR = 256 * clock / baud.
UART_KINDS = ("cmsdk", "stm32-usart-v1", "stm32-usart-v2", "stm32-lpuart")
SOC_UART_KINDS = {"mps2": "cmsdk", "stm32f405-qemu": "stm32-usart-v1", "stm32f4": "stm32-usart-v1",
                  "stm32f7": "stm32-usart-v2", "stm32h7": "stm32-usart-v2", "stm32l4": "stm32-lpuart"}
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
    kind: str = "USART"  # "LPUART": the L4's, enabled in RCC_APB1ENR2

    @property
    def name(self) -> str:
        return f"{self.kind}{self.number}"


# The least baud divider of the UARTs: the CMSDK UART's BAUDDIV, and an STM32 U(S)ART's BRR at
# 16x oversampling, are at least 16.
UART_MIN_DIVIDER = 16

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
    0x40008000: Stm32Usart(1, "apb1", 0, "LPUART"),  # STM32L4 (RM0432): RCC_APB1ENR2 bit 0
}

# System clock / APB clock, as firmware_templates/soc/<soc>.c.j2 programs the prescalers
# (F4: APB1 /2; F7: APB1 /4, APB2 /2; H7: AHB /2 then every APB /2). The UART's kernel clock
# is its APB clock, so uart.clock_hz must be clock_hz divided by this.
STM32_APB_DIVIDERS = {
    "stm32f4": {"apb1": 2, "apb2": 1},
    "stm32f7": {"apb1": 4, "apb2": 2},
    "stm32h7": {"apb1": 4, "apb2": 4},
    "stm32l4": {"apb1": 1, "apb2": 1},
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
# From RM0402 (F412), RM0385/RM0410 (F746/F767), RM0433 (H743, VOS1, wide-range VCO) and RM0432
# (L4R5, range 1 boost; `p` is the L4's PLLR, the system clock's divider; Q is 2, 4, 6 or 8 there).
PLL_LIMITS = {
    "stm32f4": PllLimits(16 * MHZ, (4 * MHZ, 26 * MHZ), (2, 63), (1 * MHZ, 2 * MHZ), (50, 432),
                         (100 * MHZ, 432 * MHZ), (2, 4, 6, 8), (2, 15), 100 * MHZ),
    "stm32f7": PllLimits(16 * MHZ, (4 * MHZ, 26 * MHZ), (2, 63), (1 * MHZ, 2 * MHZ), (50, 432),
                         (100 * MHZ, 432 * MHZ), (2, 4, 6, 8), (2, 15), 216 * MHZ),
    "stm32h7": PllLimits(64 * MHZ, (4 * MHZ, 48 * MHZ), (1, 63), (2 * MHZ, 16 * MHZ), (4, 512),
                         (192 * MHZ, 836 * MHZ), tuple(range(2, 129, 2)), (1, 128), 400 * MHZ),
    "stm32l4": PllLimits(16 * MHZ, (4 * MHZ, 48 * MHZ), (1, 16), (2_660_000, 8 * MHZ), (8, 127),
                         (64 * MHZ, 344 * MHZ), (2, 4, 6, 8), (2, 8), 120 * MHZ),
}
HSE_BYPASS_HZ = (1 * MHZ, 50 * MHZ)

PIN = re.compile(r"^P([A-K])([0-9]|1[0-5])$")  # a GPIO pin such as PD8: port A to K, pin 0 to 15
