"""A firmware's static RAM split between the model and the lab, read from its ELF: the RAM objects
of the symbol table (their sizes), each attributed to the source file that defines it (DWARF)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from hil.firmware_build.firmware import Firmware
from hil.errors import BuildError

DW_OP_ADDR = 0x03


@dataclass(frozen=True)
class RamObject:
    """A variable in static RAM: its symbol, address and size, and the file that defines it
    ("" where the ELF does not say: a library built without debug information)."""

    name: str
    address: int
    size: int
    source: str


@dataclass(frozen=True)
class StaticRamSplit:
    """The ELF's static RAM (.data + .bss + .noinit, as `size` counts it): the model's objects
    (its arena, with the input and output inside, and its own statics), and the rest, which is
    the lab's: the harness's buffers (a staging copy of the input, the command buffer), the C
    library's statics, alignment padding."""

    total: int
    model: tuple[RamObject, ...]
    lab: tuple[RamObject, ...]  # the lab's named objects (lab_bytes also counts padding)

    @property
    def model_bytes(self) -> int:
        return sum(o.size for o in self.model)

    @property
    def lab_bytes(self) -> int:
        return self.total - self.model_bytes


def ram_objects(elf: Path, origin: int, length: int) -> list[RamObject]:
    """The data objects of the ELF's symbol table that lie in RAM [origin, origin + length)."""
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as handle:
        image = ELFFile(handle)
        table = image.get_section_by_name(".symtab")
        if table is None:
            raise BuildError(f"{elf}: no symbol table, so its static RAM cannot be attributed")
        sources = _sources_by_address(image)
        objects = [
            RamObject(symbol.name, symbol["st_value"], symbol["st_size"], sources.get(symbol["st_value"], ""))
            for symbol in table.iter_symbols()
            if symbol["st_info"]["type"] == "STT_OBJECT" and symbol["st_size"] > 0
            and origin <= symbol["st_value"] < origin + length
        ]
    return sorted(objects, key=lambda o: o.address)


def _sources_by_address(image) -> dict[int, str]:  # image: elftools ELFFile
    """Static variables' addresses -> the source file that defines them, from DWARF."""
    if not image.has_dwarf_info():
        return {}
    sources: dict[int, str] = {}
    for unit in image.get_dwarf_info().iter_CUs():
        name_attribute = unit.get_top_DIE().attributes.get("DW_AT_name")
        name = name_attribute.value.decode(errors="replace") if name_attribute else ""
        for die in unit.iter_DIEs():
            if die.tag != "DW_TAG_variable":
                continue
            location = die.attributes.get("DW_AT_location")
            value = location.value if location is not None else None
            if isinstance(value, list) and len(value) == 5 and value[0] == DW_OP_ADDR:
                sources[int.from_bytes(bytes(value[1:]), "little")] = name
    return sources


def split_static_ram(firmware: Firmware, model_sources: Iterable[str], arena_symbol: str,
                     *, model_is_rest: bool = False) -> StaticRamSplit:
    """The firmware's static RAM split: the objects defined by `model_sources` (file names, matched
    by their last component: the generated model and its kernel library) are the model's. With
    `model_is_rest`, `model_sources` are the lab's and every other object is the model's (a
    library built without debug information, such as TFLM's). Its arena `arena_symbol` must be
    among the model's objects."""
    named = {Path(s).name for s in model_sources}
    ram = firmware.board.ram
    objects = ram_objects(firmware.elf, ram.origin, ram.length)
    if model_is_rest:
        model = tuple(o for o in objects if not (o.source and Path(o.source).name in named))
    else:
        model = tuple(o for o in objects if o.source and Path(o.source).name in named)
    if not any(o.name == arena_symbol for o in model):
        owner = f"objects other than those {', '.join(sorted(named))} define" if model_is_rest else \
            f"objects that {', '.join(sorted(named))} define"
        raise BuildError(f"{firmware.elf}: the model's arena {arena_symbol} is not among the static RAM {owner} "
                         "(is the debug information missing?)")
    lab = tuple(o for o in objects if o not in model)
    return StaticRamSplit(total=firmware.size.static_ram, model=model, lab=lab)
