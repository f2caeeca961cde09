"""The instructions of a firmware as the timing model sees them: arm-none-eabi-objdump's
disassembly of the ELF, each instruction reduced to its timing class, the registers it writes and
reads, and, for loads and stores, the bytes and registers it moves."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hil.errors import LabError
from hil.firmware_build.toolchain import require_tool

CONDITIONS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al"}
REGISTER = re.compile(r"\b(r1[0-5]|r[0-9]|sl|fp|ip|sp|lr|pc)\b")
ALIASES = {"sl": "r10", "fp": "r11", "ip": "r12", "sp": "r13", "lr": "r14", "pc": "r15"}
LINE = re.compile(r"^\s*([0-9a-f]+):\s+([a-z][a-z0-9.]*)\s*(.*)$")

# base mnemonic -> timing class (the rest, data processing, is "alu")
LOADS = {"ldr": 4, "ldrb": 1, "ldrh": 2, "ldrsb": 1, "ldrsh": 2, "ldrex": 4, "ldrt": 4}
STORES = {"str": 4, "strb": 1, "strh": 2, "strex": 4, "strt": 4}
CLASSES: dict[str, str] = {
    **{m: "load" for m in LOADS},
    **{m: "store" for m in STORES},
    "ldrd": "load_dual", "strd": "store_dual",
    **{m: "load_multiple" for m in ("ldm", "ldmia", "ldmfd", "ldmdb", "pop")},
    **{m: "store_multiple" for m in ("stm", "stmia", "stmea", "stmdb", "stmfd", "push")},
    **{m: "branch" for m in ("b", "bl", "bx", "blx", "cbz", "cbnz", "tbb", "tbh")},
    **{m: "mul" for m in ("mul",)},
    **{m: "mac" for m in ("mla", "mls")},
    **{m: "mul_long" for m in ("umull", "smull", "umlal", "smlal", "umaal")},
    **{m: "dsp_mul" for m in ("smulbb", "smulbt", "smultb", "smultt", "smulwb", "smulwt", "smmul", "smmulr",
                              "smuad", "smuadx", "smusd", "smusdx")},
    **{m: "dsp_mac" for m in ("smlabb", "smlabt", "smlatb", "smlatt", "smlawb", "smlawt", "smlad", "smladx",
                              "smlsd", "smlsdx", "smmla", "smmlar", "smmls", "smmlsr", "usada8")},
    **{m: "dsp_mac_long" for m in ("smlalbb", "smlalbt", "smlaltb", "smlaltt", "smlald", "smlaldx", "smlsld",
                                   "smlsldx")},
    **{m: "div" for m in ("sdiv", "udiv")},
    **{m: "simd" for m in ("sadd16", "ssub16", "sadd8", "ssub8", "uadd16", "usub16", "uadd8", "usub8", "qadd",
                           "qsub", "qadd16", "qsub16", "qadd8", "qsub8", "qdadd", "qdsub", "shadd16", "uhadd16",
                           "sxtab16", "sxtb16", "uxtab16", "uxtb16", "ssat", "usat", "ssat16", "usat16", "sel",
                           "pkhbt", "pkhtb", "usad8", "sxtab", "sxtah", "uxtab", "uxtah")},
    **{m: "system" for m in ("dmb", "dsb", "isb", "wfi", "wfe", "sev", "cpsid", "cpsie", "mrs", "msr", "svc",
                             "bkpt")},
    "nop": "nop",
    "it": "it",
    # FPv4/FPv5 (the mnemonic without its .f32/.f64 suffix)
    **{m: "fp_arith" for m in ("vadd", "vsub", "vmul", "vnmul", "vabs", "vneg", "vmaxnm", "vminnm", "vsel")},
    **{m: "fp_mac" for m in ("vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms")},
    "vdiv": "fp_div", "vsqrt": "fp_sqrt",
    **{m: "fp_move" for m in ("vmov", "vmrs", "vmsr")},
    **{m: "fp_convert" for m in ("vcvt", "vcvtr", "vcvta", "vcvtn", "vcvtp", "vcvtm", "vrint", "vrintr", "vrintz",
                                 "vrinta", "vrintn", "vrintp", "vrintm", "vrintx")},
    **{m: "fp_compare" for m in ("vcmp", "vcmpe")},
    **{m: "fp_load" for m in ("vldr",)},
    **{m: "fp_store" for m in ("vstr",)},
    **{m: "fp_load_multiple" for m in ("vldm", "vldmia", "vldmdb", "vpop")},
    **{m: "fp_store_multiple" for m in ("vstm", "vstmia", "vstmdb", "vpush")},
}
NO_DESTINATION = {"cmp", "cmn", "tst", "teq", "it"}
DATA_PROCESSING = {"mov", "mvn", "movw", "movt", "add", "addw", "adc", "sub", "subw", "sbc", "rsb", "neg", "and",
                   "orr", "orn", "eor", "bic", "lsl", "lsr", "asr", "ror", "rrx", "ubfx", "sbfx", "bfi", "bfc",
                   "clz", "rbit", "rev", "rev16", "revsh", "uxtb", "uxth", "sxtb", "sxth", "adr"}
KNOWN = set(CLASSES) | NO_DESTINATION | DATA_PROCESSING
MEMORY_CLASSES = {"load", "store", "load_dual", "store_dual", "load_multiple", "store_multiple", "fp_load",
                  "fp_store", "fp_load_multiple", "fp_store_multiple"}


class DisassemblyError(LabError):
    """objdump could not disassemble the firmware, or an executed address is not an instruction."""


@dataclass(frozen=True)
class Instruction:
    pc: int
    mnemonic: str  # as objdump prints it (with condition, .w/.n)
    base: str  # without condition, flags and width: what CLASSES is keyed by
    kind: str  # the timing class
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    registers_moved: int = 0  # LDM/STM/PUSH/POP/VLDM/VSTM: registers in the list
    bytes_moved: int = 0  # loads and stores: bytes per execution
    conditional: bool = False  # a branch with a condition (B<cc>, CBZ, CBNZ)
    writeback: bool = False  # a load or store that updates its base register (pre- or post-indexed)
    register_offset: bool = False  # a load or store addressed by base plus a register

    @property
    def writes_pc(self) -> bool:
        return "r15" in self.writes


def base_mnemonic(mnemonic: str) -> tuple[str, bool]:
    """The mnemonic the tables know (without condition code, S flag and .w/.n), and whether it
    carried a condition code. A condition is tried before the S flag, so that BLS is B with LS."""
    name = mnemonic.split(".")[0]
    if name.startswith("v"):
        return name, False
    if re.fullmatch(r"it[te]{0,3}", name):
        return "it", False
    if name in KNOWN:
        return name, False
    if name[-2:] in CONDITIONS and name[:-2] in KNOWN:
        return name[:-2], True
    if name.endswith("s") and name[:-1] in KNOWN:
        return name[:-1], False
    if name[-2:] in CONDITIONS and name[-3:-2] == "s" and name[:-3] in KNOWN:
        return name[:-3], True
    return name, False


def decode(pc: int, mnemonic: str, operands: str) -> Instruction:
    base, conditional = base_mnemonic(mnemonic)
    kind = CLASSES.get(base, "alu")
    operands = operands.split(";")[0].split("<")[0]
    registers = tuple(ALIASES.get(r, r) for r in REGISTER.findall(operands))
    listed = re.search(r"\{([^}]*)\}", operands)
    moved = 0
    if listed:
        moved = len([r for r in listed.group(1).split(",") if r.strip()])
        if "-" in listed.group(1):  # a range such as {r4-r7} or {d8-d15}
            moved = sum(_range_length(item) for item in listed.group(1).split(","))
    if kind in ("store", "store_dual", "store_multiple", "fp_store", "fp_store_multiple", "branch") or base in NO_DESTINATION:
        writes: tuple[str, ...] = ()
        if kind == "store_multiple" and "!" in operands:
            writes = registers[:1]
        if base in ("bl", "blx"):
            writes = ("r14",)
        reads = registers
    elif kind in ("load_multiple",):
        in_list = tuple(ALIASES.get(r, r) for r in REGISTER.findall(listed.group(1))) if listed else ()
        writes = in_list + (registers[:1] if "!" in operands else ())
        reads = registers[:1] if base != "pop" else ("r13",)
    elif kind == "load_dual" or base in ("umull", "smull", "umlal", "smlal", "umaal") or kind == "dsp_mac_long":
        writes, reads = registers[:2], registers[2:] + (registers[:2] if kind != "load_dual" and base not in ("umull", "smull") else ())
    else:
        writes, reads = registers[:1], registers[1:]
    if base == "pop" or (kind == "load_multiple"):
        reads = reads or ("r13",)
    if base in ("push", "pop"):
        writes = writes + ("r13",) if base == "push" else writes
    size = LOADS.get(base) or STORES.get(base) or (8 if kind in ("load_dual", "store_dual") else 0)
    if kind in ("load_multiple", "store_multiple"):
        size = 4 * moved
    elif kind in ("fp_load", "fp_store"):
        size = 8 if re.match(r"\s*d\d", operands) else 4
    elif kind in ("fp_load_multiple", "fp_store_multiple"):
        size = 4 * moved * (2 if listed and "d" in listed.group(1) else 1)
    if kind.startswith("fp_") and kind not in ("fp_move",):
        # FP registers are not tracked: an FP instruction writes no core register, and reads its
        # address registers (loads, stores) or none
        writes = ()
        reads = registers
    elif kind == "fp_move":
        first = operands.split(",")[0].strip()
        writes = (ALIASES.get(first, first),) if REGISTER.fullmatch(first) else ()
        reads = tuple(r for r in registers if r not in writes)
    address = re.search(r"\[([^\]]*)\](!?)(,\s*#?-?\w+)?", operands)
    writeback = bool(address and (address.group(2) or address.group(3)))
    register_offset = bool(address and len(REGISTER.findall(address.group(1))) > 1)
    if writeback and kind in ("load", "store", "load_dual", "store_dual", "fp_load", "fp_store"):
        base_register = REGISTER.findall(address.group(1))[0]
        writes = tuple(dict.fromkeys(writes + (ALIASES.get(base_register, base_register),)))
    is_conditional_branch = kind == "branch" and (conditional or base in ("cbz", "cbnz"))
    return Instruction(pc, mnemonic, base, kind, writes, reads, moved, size, is_conditional_branch,
                       writeback and kind in MEMORY_CLASSES, register_offset and kind in MEMORY_CLASSES)


def _range_length(item: str) -> int:
    item = item.strip()
    if "-" not in item:
        return 1 if item else 0
    first, last = (int(re.sub(r"\D", "", part)) for part in item.split("-"))
    return last - first + 1


def disassemble(elf: Path) -> dict[int, Instruction]:
    """Every instruction objdump finds in the ELF's code, by address."""
    objdump = require_tool("arm-none-eabi-objdump", DisassemblyError)
    result = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(elf)], capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        raise DisassemblyError(f"arm-none-eabi-objdump failed on {elf}: {result.stderr.strip()}")
    instructions = {}
    for line in result.stdout.splitlines():
        match = LINE.match(line)
        if match is None:
            continue
        pc, mnemonic, operands = int(match.group(1), 16), match.group(2), match.group(3)
        if mnemonic.startswith("."):  # .word, .short: data in the code
            continue
        instructions[pc] = decode(pc, mnemonic, operands.replace("\t", " "))
    return instructions
