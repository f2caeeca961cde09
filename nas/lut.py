"""The latency lookup table: one measured latency per layer key, for one board and one engine
version, plus the per-network fixed overhead. A network's predicted latency is the overhead plus
the sum over its layers, in the board's unit."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.cache import cache_root
from engine.torch_models import TinyMobileNetConfig
from hil.errors import LabError
from nas.layers import network_layers

FORMAT = 1


class LutError(LabError):
    """A table that is missing, for another board or engine version, or lacks a key."""


@dataclass
class LatencyTable:
    board: str
    engine_version: str
    unit: str  # "instructions" (QEMU) or "cycles" (hardware)
    overhead: float | None = None  # per network, added once
    layers: dict[str, float] = field(default_factory=dict)  # key -> latency of the layer alone

    def to_json(self) -> dict:
        return {"format": FORMAT, "board": self.board, "engine_version": self.engine_version,
                "unit": self.unit, "overhead": self.overhead, "layers": dict(sorted(self.layers.items()))}


def default_table_path(board: str, engine_version: str) -> Path:
    return cache_root() / "lut" / board / f"engine-{engine_version}.json"


def save_table(table: LatencyTable, path: Path) -> None:
    """Write atomically, so that an interrupted build leaves the last complete table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(table.to_json(), indent=1) + "\n")
    os.replace(tmp, path)


def load_table(path: Path, board: str, engine_version: str) -> LatencyTable:
    """The table at `path`, refused with the reason when it was built for another board or engine
    version."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise LutError(f"no latency table at {path}: build it with 'tinylab lut build --board {board}'") from None
    except ValueError as error:
        raise LutError(f"latency table {path} is not valid JSON: {error}") from None
    if data.get("format") != FORMAT:
        raise LutError(f"latency table {path} has format {data.get('format')!r}, expected {FORMAT}")
    if data["board"] != board:
        raise LutError(f"latency table {path} was measured on board {data['board']!r}, not {board!r}: "
                       "a table is never used for another board")
    if data["engine_version"] != engine_version:
        raise LutError(f"latency table {path} was measured with engine version {data['engine_version']!r}, "
                       f"not {engine_version!r}: kernels changed, rebuild it")
    return LatencyTable(board=data["board"], engine_version=data["engine_version"], unit=data["unit"],
                        overhead=data["overhead"], layers={k: float(v) for k, v in data["layers"].items()})


def open_table(path: Path | None, board: str, engine_version: str) -> tuple[LatencyTable, Path]:
    """The table at `path` (default: the cache's for board and engine), or a new empty one."""
    path = Path(path) if path else default_table_path(board, engine_version)
    if not path.exists():
        return LatencyTable(board=board, engine_version=engine_version, unit=""), path
    return load_table(path, board, engine_version), path


def predict(table: LatencyTable, network: TinyMobileNetConfig) -> float:
    """The predicted latency of a network in the table's unit (`table.unit`)."""
    if table.overhead is None:
        raise LutError(f"latency table for {table.board} has no fixed overhead measured yet")
    total = table.overhead
    for layer in network_layers(network):
        try:
            total += table.layers[layer.key]
        except KeyError:
            raise LutError(f"latency table for {table.board} (engine {table.engine_version}) has no entry "
                           f"for layer {layer.key}: build the table for a space that holds it") from None
    return total
