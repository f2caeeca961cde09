"""The latency lookup table: one measured latency per layer key, plus the per-network fixed
overhead, under one `LatencyKey` (board, kernel set, kernel library, code generator, toolchain,
compile flags). A network's predicted latency is the overhead plus the sum over its layers, in the
board's unit.

The same measurements give each layer's code: the flash of its firmware less its int8 constants
and the overhead network's code and harness. A layer's code includes the int16 copies of its
weights that the optimised kernels keep, as the latencies were measured with them. A network's
predicted flash is its constants, the overhead's code and harness, and the sum of its layers' code
(`predict_flash`): the generated code grows with each layer's shape and kernel, which a count of
layers does not see. A network predicted within a flash budget is built with every int16 copy,
so it runs as fast as the table predicts."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.cache import cache_root, write_text_atomically
from engine.torch_models import TinyMobileNetConfig
from hil.errors import LabError
from nas.layers import network_layers
from nas.lutkey import LatencyKey
from nas.lutunit import CycleModel, unit_of

FORMAT = 4  # 1: keyed by board and a hand-bumped engine version; 2: no code sizes;
# 3: layer weights drawn from the random state of the process that measured them


class LutError(LabError):
    """A table that is missing, measured under another key, or lacks a layer."""


@dataclass
class LatencyTable:
    key: LatencyKey
    unit: str  # "instructions" (QEMU), "cycles" (hardware) or "estimated_cycles" (with `cycle_model`)
    overhead: float | None = None  # per network, added once
    layers: dict[str, float] = field(default_factory=dict)  # key -> latency of the layer alone
    overhead_code: int | None = None  # bytes of code and harness of the overhead network (no int8 weights)
    code: dict[str, int] = field(default_factory=dict)  # key -> bytes of code (and int16 weight copies) the layer adds
    # Space name -> what patches (engine.patches) cost beyond the MACs they compute again, as
    # (base, per patch op), measured on networks of that space (nas.measure.measure_patch_cost):
    # it grows with the layers' channels, so it is used for the space it was measured on only.
    patch_cost: dict[str, tuple[float, float]] = field(default_factory=dict)
    # With unit estimated_cycles: the model that estimated every figure from the profile of its QEMU run.
    cycle_model: CycleModel | None = None

    @property
    def board(self) -> str:
        return self.key.board

    def to_json(self) -> dict:
        return {"format": FORMAT, "key": self.key.to_json(), "unit": self.unit, "overhead": self.overhead,
                "layers": dict(sorted(self.layers.items())), "overhead_code": self.overhead_code,
                "code": dict(sorted(self.code.items())),
                "patch_cost": {k: list(v) for k, v in sorted(self.patch_cost.items())},
                **({"cycle_model": self.cycle_model.to_json()} if self.cycle_model else {})}

    def describe_unit(self) -> str:
        """The unit, with the model that estimated it."""
        return f"{self.unit} ({self.cycle_model.name})" if self.cycle_model else self.unit


def default_table_path(key: LatencyKey, model: CycleModel | None = None) -> Path:
    """`lut/BOARD/KERNELS-SHORTKEY-vFORMAT.json` in the cache: one file per key and format (a
    table of an older format in the cache is left alone, not refused); a table in estimated cycles
    `KERNELS-SHORTKEY-estimated_cycles-CORE-MEMORY-vFORMAT.json`, beside it."""
    unit = f"-{unit_of(model, '')}-{model.slug}" if model else ""
    return cache_root() / "lut" / key.board / f"{key.kernels}-{key.short}{unit}-v{FORMAT}.json"


def save_table(table: LatencyTable, path: Path) -> None:
    """Write atomically, so that an interrupted build leaves the last complete table."""
    write_text_atomically(path, json.dumps(table.to_json(), indent=1) + "\n")


def load_table(path: Path, key: LatencyKey, model: CycleModel | None = None) -> LatencyTable:
    """The table at `path`, refused, naming each part that differs, when it was measured under
    another key, or in another unit than `model`'s estimated cycles (None: the board's own unit)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise LutError(f"no latency table at {path}: build it with 'tinylab lut build --board {key.board}'") from None
    except ValueError as error:
        raise LutError(f"latency table {path} is not valid JSON: {error}") from None
    if data.get("format") != FORMAT:
        raise LutError(f"latency table {path} has format {data.get('format')!r}, expected {FORMAT} "
                       "(a table keyed by what determines a latency, with each layer's code size): rebuild it")
    try:
        stored = LatencyKey.from_json(data["key"])
    except (KeyError, TypeError, ValueError) as error:
        raise LutError(f"latency table {path} has no valid key ({error}): rebuild it") from None
    if stored.board != key.board:
        raise LutError(f"latency table {path} was measured on board {stored.board!r}, not {key.board!r}: "
                       "a table is never used for another board")
    differences = stored.differences(key)
    if differences:
        raise LutError(f"latency table {path} no longer holds: {'; '.join(differences)}. Rebuild it "
                       f"(the default table for today's key is {default_table_path(key)})")
    try:
        estimated_by = CycleModel.from_json(data["cycle_model"]) if "cycle_model" in data else None
    except (TypeError, ValueError) as error:
        raise LutError(f"latency table {path} has no valid cycle model ({error}): rebuild it") from None
    check_unit(path, data["unit"], estimated_by, model)
    return LatencyTable(key=stored, unit=data["unit"], overhead=data["overhead"],
                        layers={k: float(v) for k, v in data["layers"].items()},
                        overhead_code=data.get("overhead_code"), code={k: int(v) for k, v in data.get("code", {}).items()},
                        patch_cost={k: (float(v[0]), float(v[1])) for k, v in data.get("patch_cost", {}).items()},
                        cycle_model=estimated_by)


def check_unit(path: Path, unit: str, stored: CycleModel | None, wanted: CycleModel | None) -> None:
    """Refuse a table whose unit is not the one wanted: tables of different units never mix."""
    if stored is None and wanted is None:
        return
    if stored is None or wanted is None:
        held = f"{unit} ({stored.name})" if stored else (unit or "the board's unit")
        asked = f"{unit_of(wanted, '')} ({wanted.name})" if wanted else "the board's own unit (--unit instructions)"
        raise LutError(f"latency table {path} holds {held}, not {asked}: tables of different units are never mixed "
                       "(an estimated table is built and used with --unit estimated_cycles --cycle-model MODEL)")
    if stored.name != wanted.name:
        raise LutError(f"latency table {path} holds the estimated cycles of {stored.name}, not of {wanted.name}: "
                       "the estimates of two models are never mixed (without --table, each model has its own table)")
    differences = stored.differences(wanted)
    if differences:
        raise LutError(f"latency table {path} no longer holds: {'; '.join(differences)}. Rebuild it")


def open_table(path: Path | None, key: LatencyKey, model: CycleModel | None = None) -> tuple[LatencyTable, Path]:
    """The table at `path` (default: the cache's for `key` and `model`), or a new empty one; with
    `model`, in estimated cycles of that model."""
    path = Path(path) if path else default_table_path(key, model)
    if not path.exists():
        return LatencyTable(key=key, unit=unit_of(model, ""), cycle_model=model), path
    return load_table(path, key, model), path


def predict(table: LatencyTable, network: TinyMobileNetConfig) -> float:
    """The predicted latency of a network in the table's unit (`table.unit`)."""
    if table.overhead is None:
        raise LutError(f"latency table for {table.board} has no fixed overhead measured yet: run "
                       f"'tinylab lut build --board {table.board} --space SPACE' first")
    return table.overhead + _layers_sum(table, network, table.layers, "entry")


def predict_flash(table: LatencyTable, network: TinyMobileNetConfig, constant_bytes: int) -> int:
    """The predicted flash of a network whose int8 constants take `constant_bytes`, the int16
    weight copies of the optimised kernels included."""
    if table.overhead_code is None:
        raise LutError(f"latency table for {table.board} has no overhead code size measured yet: run "
                       f"'tinylab lut build --board {table.board} --space SPACE' first")
    return constant_bytes + table.overhead_code + _layers_sum(table, network, table.code, "code size")


def _layers_sum(table: LatencyTable, network: TinyMobileNetConfig, per_layer: dict, what: str):
    total = 0
    for layer in network_layers(network):
        try:
            total += per_layer[layer.key]
        except KeyError:
            raise LutError(f"latency table for {table.board} (key {table.key.short}) has no {what} "
                           f"for layer {layer.key}: build the table for a space that holds it") from None
    return total
