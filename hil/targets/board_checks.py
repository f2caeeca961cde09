"""Checks across a board file's fields, once each field has the right type: memory budgets against
the linker regions, core against FPU and SoC, the UART against the SoC, what an emulated board's
QEMU machine fixes, and a real STM32's UART clock, pins and PLL."""
from __future__ import annotations

from hil.targets.board_parser import BoardProblems
from hil.targets.boardspec import BoardSpec, PllSpec
from hil.targets.chips import (CORE_FPUS, EMULATED_SOCS, HSE_BYPASS_HZ, PLL_LIMITS, QEMU_MACHINES, SOC_CORES,
                               SOC_UART_KINDS, STM32_APB_DIVIDERS, STM32_REAL_SOCS, STM32_USARTS, UART_MIN_DIVIDER)


def check_board(board: BoardSpec, data: dict, p: BoardProblems) -> None:
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
    uart_clock_hz = uart.clock_hz or board.clock_hz
    if board.soc not in STM32_REAL_SOCS and uart_clock_hz < UART_MIN_DIVIDER * uart.baud:  # real STM32s: below
        p.add("uart.baud", f"{uart.baud} is too fast for the UART's {uart_clock_hz} Hz clock (its divider "
              f"{uart_clock_hz} // {uart.baud} must be at least {UART_MIN_DIVIDER})")
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


def _check_emulated(board: BoardSpec, data: dict, p: BoardProblems) -> None:
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


def _check_real_stm32(board: BoardSpec, p: BoardProblems) -> None:
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
            p.add("uart.clock_hz", f"{uart.clock_hz} is not the clock of {usart.name}: "
                  f"soc {board.soc} runs {usart.bus.upper()} at clock_hz / {divider} = {expected}")
        elif uart.clock_hz < UART_MIN_DIVIDER * uart.baud:
            p.add("uart.baud", f"{uart.baud} is too fast for a {uart.clock_hz} Hz UART clock")
    if board.pll is None:
        p.add("pll", f"required on a real STM32 board (soc {board.soc}): the PLL settings that "
              f"give clock_hz")
    else:
        _check_pll(board, board.pll, p)


def _check_pll(board: BoardSpec, pll: PllSpec, p: BoardProblems) -> None:
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
