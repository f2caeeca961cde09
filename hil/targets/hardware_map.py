"""Hardware maps: a YAML file that lists the boards attached to a host, each with its debug probe
and serial port, so that tests run once per board.

```yaml
boards:
  - board: nucleo-f746zg                  # a board file name (or a path to a .yaml board file)
    probe: 066DFF535155878281122138       # the probe's unique id (`tinylab boards` lists them)
    port: /dev/ttyACM0                    # optional: found from the probe's USB serial number
  - board: qemu-f746                      # an emulated board takes neither probe nor port
```
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hil.errors import BoardError, LabError
from hil.targets.boards import load_board
from hil.targets.boardspec import BoardSpec
from hil.targets.probes import AttachedProbe
from hil.targets.yamlfile import describe, read_yaml

ENTRY_FIELDS = ("board", "probe", "port")
HEADER = """\
# tinylab hardware map: the boards attached to this host, each with its debug probe's unique id
# and (optionally) its serial port. Use it with `pytest --hardware-map FILE`.
"""


class HardwareMapError(LabError):
    """A hardware map is malformed or names something that does not exist."""


@dataclass(frozen=True)
class HardwareMapEntry:
    """One board and how to reach it: for a physical board its probe and (optionally) port."""

    board: BoardSpec
    probe: str | None = None
    port: str | None = None

    def as_yaml(self) -> dict[str, str]:
        data = {"board": self.board.name}
        if self.probe:
            data["probe"] = self.probe
        if self.port:
            data["port"] = self.port
        return data


@dataclass(frozen=True)
class HardwareMap:
    path: Path | None
    entries: tuple[HardwareMapEntry, ...]

    def text(self) -> str:
        body = yaml.safe_dump({"boards": [entry.as_yaml() for entry in self.entries]},
                              sort_keys=False, default_flow_style=False)
        return HEADER + body


def load_hardware_map(path: str | Path) -> HardwareMap:
    """Read and check a hardware map; every problem names the file and the field."""
    path = Path(path)
    data = read_yaml(path, f"hardware map {path}", HardwareMapError)
    return HardwareMap(path, tuple(_entries(data, f"hardware map {path}", path.parent)))


def _entries(data: Any, shown: str, folder: Path) -> list[HardwareMapEntry]:
    def fail(field: str, reason: str) -> HardwareMapError:
        return HardwareMapError(f"{shown}: field '{field}': {reason}")

    if not isinstance(data, dict) or "boards" not in data:
        raise HardwareMapError(f"{shown}: expected a mapping with a 'boards' list, not "
                               f"{describe(data)}")
    unknown = [key for key in data if key != "boards"]
    if unknown:
        raise fail(str(unknown[0]), "unknown field (a hardware map has only 'boards')")
    items = data["boards"]
    if items is None:
        items = []
    if not isinstance(items, list):
        raise fail("boards", f"expected a list of boards, not {describe(items)}")
    entries: list[HardwareMapEntry] = []
    seen: dict[tuple[str, str], str] = {}
    for index, item in enumerate(items):
        where = f"boards[{index}]"
        if not isinstance(item, dict):
            raise fail(where, f"expected a mapping with {', '.join(ENTRY_FIELDS)}, not "
                       f"{describe(item)}")
        for key in item:
            if key not in ENTRY_FIELDS:
                close = difflib.get_close_matches(str(key), ENTRY_FIELDS, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"expected {', '.join(ENTRY_FIELDS)}"
                raise fail(f"{where}.{key}", f"unknown field ({hint})")
        for key in ENTRY_FIELDS:
            value = item.get(key)
            if key in item and (not isinstance(value, str) or not value.strip()):
                hint = (" (write it in quotes, so that YAML keeps it as text)"
                        if isinstance(value, (int, float)) and not isinstance(value, bool) else "")
                raise fail(f"{where}.{key}", f"expected a non-empty string, not "
                           f"{describe(value)}{hint}")
        if "board" not in item:
            raise fail(f"{where}.board", "required field is missing")
        try:
            name = item["board"]
            if name.endswith((".yaml", ".yml")) or "/" in name:  # a board file beside the map
                name = str(folder / Path(name).expanduser())
            board = load_board(name)
        except BoardError as error:
            raise fail(f"{where}.board", str(error)) from None
        probe = item["probe"].strip() if "probe" in item else None
        port = item["port"].strip() if "port" in item else None
        if board.emulated:
            for key, value in (("probe", probe), ("port", port)):
                if value is not None:
                    raise fail(f"{where}.{key}", f"board {board.name} is emulated (QEMU): it takes "
                               f"no {key}")
            identity = ("board", board.name)
            if identity in seen:
                raise fail(f"{where}.board", f"emulated board {board.name} is already listed at "
                           f"{seen[identity]}")
            seen[identity] = where
        elif probe is None:
            raise fail(f"{where}.probe", f"required for the physical board {board.name}: its debug "
                       f"probe's unique id (`tinylab boards` lists the attached probes)")
        for key, value in (("probe", probe), ("port", port)):
            if value is None:
                continue
            identity = (key, value.lower())
            if identity in seen:
                raise fail(f"{where}.{key}", f"{key} {value} is already given to {seen[identity]}")
            seen[identity] = where
        entries.append(HardwareMapEntry(board, probe, port))
    return entries


def map_from_probes(probes: Iterable[AttachedProbe], boards: Iterable[BoardSpec],
                    port_of: Callable[[str], str | None] | None = None
                    ) -> tuple[HardwareMap, list[AttachedProbe]]:
    """A map of the attached probes whose board id matches a board file, and the probes that
    match none. `port_of(unique_id)` finds a probe's serial port (None where it cannot)."""
    by_name = {board.name: board for board in boards}
    entries, unmatched = [], []
    for probe in probes:
        board = by_name.get(probe.board or "")
        if board is None:
            unmatched.append(probe)
            continue
        entries.append(HardwareMapEntry(board, probe.unique_id, port_of(probe.unique_id) if port_of else None))
    return HardwareMap(None, tuple(entries)), unmatched


def write_hardware_map(path: str | Path, hardware_map: HardwareMap) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(hardware_map.text(), encoding="utf-8")
    except OSError as error:
        raise HardwareMapError(f"cannot write the hardware map {path}: {error}") from None
    return path
