"""What a latency table's figures count: the board's own unit (instructions under QEMU, cycles on
hardware), or `estimated_cycles`: the cycles that a named core model and memory system
(hil.cycles, boards/cores/*.yaml and boards/timing/*.yaml) estimate from the execution profile of
the same QEMU runs. The model is part of an estimated table's identity, like the `LatencyKey`: a
table estimated with one model (or with timing data or an estimator since changed) is never used
for another, and tables of different units are never mixed."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from hil.cycles import coremodel
from hil.cycles.coremodel import model_for, model_name
from hil.cycles.estimated import ESTIMATED_METRIC, ESTIMATED_UNIT
from hil.resources import boards_dir
from hil.targets.boardspec import BoardSpec

# The estimator's sources: a change in any of them can change an estimate (as the code generator's
# modules are part of the LatencyKey).
ESTIMATOR_SOURCES = ("coremodel.py", "disassembly.py", "profile.py", "estimated.py", "plugin/tl_profile.c")
ESTIMATED_PREFIX = ESTIMATED_METRIC.removesuffix("latency")  # "estimated_": the store's metrics of such a table


@dataclass(frozen=True)
class CycleModel:
    """The model that estimated a table's cycles: its name as each estimate carries it, the core
    and memory-system files, and a digest of those files and of the estimator."""

    name: str  # "cortex-m7 on nucleo-f746zg at 216 MHz"
    core: str  # boards/cores/<core>.yaml
    memory: str  # boards/timing/<memory>.yaml
    digest: str
    choice: str = "auto"  # the --cycle-model the table was built with (auto, m4, m7); not part of its identity

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "CycleModel":
        missing = [f.name for f in fields(cls) if f.name != "choice" and f.name not in data]
        if missing:
            raise ValueError(f"cycle model lacks {', '.join(missing)}")
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    @property
    def slug(self) -> str:
        """The model in a file name: core and memory system."""
        return f"{self.core}-{self.memory}"

    def differences(self, now: "CycleModel") -> list[str]:
        """One sentence per part in which `now` differs from this (a table's) model."""
        said = []
        if self.name != now.name:
            said.append(f"the cycle model changed: table {self.name!r}, now {now.name!r}")
        if self.digest != now.digest:
            said.append(f"the timing data or the estimator changed (boards/cores/{self.core}.yaml, "
                        f"boards/timing/{self.memory}.yaml, hil/cycles): table {self.digest}, now {now.digest}")
        return said


def cycle_model(board: BoardSpec, choice: str) -> CycleModel:
    """The model `--cycle-model choice` names for a table of `board` (hil.cycles.coremodel.model_for)."""
    core, memory = model_for(board.name, choice)
    digest = hashlib.sha256()
    cycles = Path(coremodel.__file__).resolve().parent
    for path in (boards_dir() / "cores" / f"{core.name}.yaml", boards_dir() / "timing" / f"{memory.name}.yaml",
                 *(cycles / name for name in ESTIMATOR_SOURCES)):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return CycleModel(model_name(core, memory), core.name, memory.name, digest.hexdigest()[:16], choice)


def unit_of(model: CycleModel | None, board_unit: str) -> str:
    """The unit of a table estimated with `model`, or measured in the board's unit."""
    return ESTIMATED_UNIT if model is not None else board_unit


def table_metric(metric: str, model: CycleModel | None) -> str:
    """The store's metric of a table's figure: `layer_latency`, or `estimated_layer_latency` for an
    estimated table, so that the two never share a series or a report row."""
    return f"{ESTIMATED_PREFIX}{metric}" if model is not None else metric


def board_unit(board: BoardSpec) -> str:
    """The unit `board`'s runner measures in: instructions (QEMU, Renode) or cycles (hardware)."""
    from hil.run.runners import RUNNERS

    runner = RUNNERS.get(board.backend)
    return runner.unit if runner is not None else "cycles"


def requested_model(board: BoardSpec, unit: str | None, choice: str | None) -> CycleModel | None:
    """The cycle model that `--unit` and `--cycle-model` ask for (None: the board's own unit). A
    --cycle-model alone asks for estimated cycles; the board's own unit is the only other one."""
    from hil.errors import LabError

    own = board_unit(board)
    if unit is None:
        unit = ESTIMATED_UNIT if choice else own
    if unit != ESTIMATED_UNIT:
        if choice:
            raise LabError(f"--cycle-model {choice} goes with --unit {ESTIMATED_UNIT}, not --unit {unit}")
        if unit != own:
            raise LabError(f"--unit {unit}: board {board.name} measures {own} (or, emulated, --unit {ESTIMATED_UNIT})")
        return None
    from hil.run.runners import RUNNERS

    if not hasattr(RUNNERS.get(board.backend), "profiler"):
        raise LabError(f"--unit {ESTIMATED_UNIT} needs an emulated run to profile: board {board.name} "
                       f"({board.backend}) measures {own} itself")
    return cycle_model(board, choice or "auto")


def add_unit_arguments(parser) -> None:
    """`--unit` and `--cycle-model` of the commands that build or use a latency table."""
    from hil.cycles.estimated import CYCLE_MODELS

    parser.add_argument("--unit", choices=("instructions", "cycles", ESTIMATED_UNIT), default=None,
                        help="the latency table's unit: the board's own (the default: instructions under QEMU, "
                             f"cycles on hardware), or {ESTIMATED_UNIT}: the same QEMU runs profiled and each "
                             "figure replaced by the cycles the --cycle-model estimates for the same timed window "
                             "(an estimate, not a measurement: `tinylab cycles validate` gives its error); a table "
                             "of one unit is never used as, or mixed with, another")
    parser.add_argument("--cycle-model", choices=CYCLE_MODELS, default=None, metavar="{auto,m4,m7}",
                        help=f"with --unit {ESTIMATED_UNIT}: the Cortex-M4 or M7 timing model, with the memory "
                             "system of the real board the emulated board stands for (default auto: that board's core)")
