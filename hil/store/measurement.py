"""One stored measurement (`Measurement`: a number, its unit, and where, how and when it was
measured) and the rules a row must keep to be stored: `validate`."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timezone

from hil.errors import StoreError

BACKENDS = ("qemu", "hardware", "renode", "host")  # host: figures taken on this machine (TFLM's arena)
LATENCY_UNITS = ("cycles", "instructions", "estimated_cycles")  # the last: hil.cycles, from an emulated run
# Units of time are never stored: milliseconds are derived from cycles and the board's clock.
TIME_UNITS = frozenset({"s", "sec", "seconds", "ms", "msec", "milliseconds", "us", "µs", "usec",
                        "microseconds", "ns", "nanoseconds"})
BYTE_METRICS = frozenset({"peak_sram", "lab_overhead", "stack_high_water", "flash", "arena_touched"})


@dataclass(frozen=True)
class Measurement:
    """One measured number, with its unit and everything needed to reproduce it."""

    model: str
    model_sha256: str
    engine: str
    engine_version: str
    board: str
    backend: str  # qemu | hardware | renode
    metric: str  # latency, peak_sram, stack_high_water, flash, arena_touched, ...
    value: float
    unit: str  # cycles, instructions, bytes, ...
    toolchain: str
    git_commit: str
    host: str
    timestamp: str  # ISO-8601, UTC
    run_id: str  # groups the rows of one run
    test_id: str = ""  # the pytest node id when a test wrote the row
    extra: str = "{}"  # JSON object as text


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Measurement))


# --- validation -------------------------------------------------------------------------------


def is_latency_metric(metric: str) -> bool:
    """`latency` and its per-layer forms (`latency.conv_3`, `layer_latency`)."""
    name = metric.lower()
    return name.startswith("latency") or name.endswith("latency")


def normalize_timestamp(text: str | datetime | date, *, naive_is_utc: bool = False) -> str:
    """An ISO-8601 time as the store writes it: UTC, `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`.

    A time without a zone is refused unless `naive_is_utc` (it is likely local time)."""
    if isinstance(text, datetime):
        moment = text
    elif isinstance(text, date):
        moment = datetime(text.year, text.month, text.day)
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except (ValueError, AttributeError):
            raise StoreError(f"{text!r} is not an ISO-8601 date or time "
                             "(e.g. 2025-01-31 or 2025-01-31T12:00:00+00:00)") from None
    if moment.tzinfo is None:
        if not naive_is_utc:
            raise StoreError(f"timestamp {str(text)!r} has no time zone; "
                             "store UTC times such as 2025-01-31T12:00:00+00:00")
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def validate(row: Measurement) -> Measurement:
    """Check a measurement before it is written; return it with its timestamp normalised to
    UTC. Raises StoreError with the reason."""
    def refuse(reason: str) -> StoreError:
        return StoreError(f"refusing measurement {row.metric!r} of model {row.model!r} "
                          f"on {row.board!r}: {reason}")

    if not isinstance(row, Measurement):
        raise StoreError(f"can only store Measurement rows, not {type(row).__name__}")
    for name in COLUMNS:
        if name == "value":
            continue
        if not isinstance(getattr(row, name), str):
            raise refuse(f"{name} must be text, not {type(getattr(row, name)).__name__}")
    for name in ("model", "engine", "board", "backend", "metric", "run_id", "timestamp"):
        if not getattr(row, name).strip():
            raise refuse(f"{name} is empty")
    if row.backend not in BACKENDS:
        raise refuse(f"backend {row.backend!r} is not one of {', '.join(BACKENDS)}")
    if isinstance(row.value, bool) or not isinstance(row.value, (int, float)):
        raise refuse(f"value must be a number, not {type(row.value).__name__}")
    if not math.isfinite(row.value):
        raise refuse(f"value {row.value} is not a finite number")
    unit = row.unit.strip()
    if not unit:
        raise refuse("the unit is empty; every value is stored with its unit")
    if unit.lower() in TIME_UNITS:
        raise refuse(f"unit {unit!r} is a unit of time; latencies are stored as cycles "
                     "(hardware) or instructions (QEMU), and milliseconds are only derived "
                     "from cycles and the board's clock")
    if is_latency_metric(row.metric) and unit not in LATENCY_UNITS:
        raise refuse(f"a latency must be in {' or '.join(LATENCY_UNITS)}, not {unit!r}")
    if row.metric in BYTE_METRICS and unit != "bytes":
        raise refuse(f"{row.metric} is a size and must be in bytes, not {unit!r}")
    try:
        extra = json.loads(row.extra)
    except ValueError:
        raise refuse(f"extra is not JSON text: {row.extra[:80]!r}") from None
    if not isinstance(extra, dict):
        raise refuse("extra must be a JSON object")
    try:
        timestamp = normalize_timestamp(row.timestamp)
    except StoreError as error:
        raise refuse(str(error)) from None
    return Measurement(**{**asdict(row), "value": float(row.value), "unit": unit,
                          "timestamp": timestamp})
