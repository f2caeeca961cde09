"""The results store: one row per measurement, with its provenance, in SQLite.

`open_store()` opens (and creates) the store; `Provenance.measurement()` builds rows that share
where, how and when they were measured; `ResultsStore.add()` validates and writes them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import secrets
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hil.errors import StoreError
from hil.resources import SOURCE_ROOT, results_dir

if TYPE_CHECKING:  # pandas is imported only when a DataFrame is asked for
    import pandas

SCHEMA_VERSION = 1
STORE_ENV = "TINYLAB_STORE"
REPO_ROOT = SOURCE_ROOT  # the checkout (site-packages when installed): provenance's git commit
STORE_FILE_NAME = "lab.sqlite"


def default_store_path() -> Path:
    """results/lab.sqlite in a checkout; installed, $XDG_DATA_HOME/tinylab/lab.sqlite
    (else ~/.local/share/tinylab/lab.sqlite)."""
    return results_dir() / STORE_FILE_NAME


DEFAULT_STORE_PATH = default_store_path()  # as resolved at import; resolve_store_path() asks again

BACKENDS = ("qemu", "hardware", "renode", "host")  # host: figures taken on this machine (TFLM's arena)
LATENCY_UNITS = ("cycles", "instructions")
# Units of time are never stored: milliseconds are derived from cycles and the board's clock.
TIME_UNITS = frozenset({"s", "sec", "seconds", "ms", "msec", "milliseconds", "us", "µs", "usec",
                        "microseconds", "ns", "nanoseconds"})
BYTE_METRICS = frozenset({"peak_sram", "lab_overhead", "stack_high_water", "flash", "arena_touched"})

_T = TypeVar("_T")


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


# --- provenance -------------------------------------------------------------------------------


def utc_now() -> str:
    """The current time as the store writes timestamps (ISO-8601, UTC, microseconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def new_run_id() -> str:
    """A fresh run id that sorts by time: `20250102T030405Z-1a2b3c4d`."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(4)


def file_sha256(path: Path) -> str:
    """The sha256 of a file (a .tflite model, say), as lower-case hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def collect_git_commit(repo: Path) -> str:
    """HEAD's commit in `repo`, with "+dirty" when tracked files have uncommitted changes;
    "unknown" when `repo` is not a git checkout (or git is missing)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=30, check=False)

    try:
        head = git("rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return "unknown"
        commit = head.stdout.strip()
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if status.returncode != 0 or status.stdout.strip():
        commit += "+dirty"
    return commit


@dataclass
class Provenance:
    """What the rows of one run share: engine, board, backend, toolchain, commit, host, run."""

    engine: str
    engine_version: str
    board: str
    backend: str
    toolchain: str
    git_commit: str
    host: str
    run_id: str
    test_id: str = ""

    @classmethod
    def collect(cls, *, engine: str, engine_version: str, board: str, backend: str,
                toolchain: str, repo: Path = REPO_ROOT, test_id: str = "",
                run_id: str | None = None) -> Provenance:
        """Provenance for a run starting now on this host: git commit of `repo`, host name,
        and a new run id unless one is given."""
        return cls(engine=engine, engine_version=engine_version, board=board, backend=backend,
                   toolchain=toolchain, git_commit=collect_git_commit(repo),
                   host=socket.gethostname(), run_id=run_id or new_run_id(), test_id=test_id)

    def measurement(self, model: str, model_sha256: str, metric: str, value: float, unit: str,
                    extra: dict[str, Any] | str | None = None) -> Measurement:
        """A measurement taken now with this provenance. `extra` is a dict or JSON text."""
        if extra is None:
            extra_text = "{}"
        elif isinstance(extra, str):
            extra_text = extra
        else:
            extra_text = json.dumps(extra, sort_keys=True)
        return Measurement(
            model=model, model_sha256=model_sha256, engine=self.engine,
            engine_version=self.engine_version, board=self.board, backend=self.backend,
            metric=metric, value=value, unit=unit, toolchain=self.toolchain,
            git_commit=self.git_commit, host=self.host, timestamp=utc_now(),
            run_id=self.run_id, test_id=self.test_id, extra=extra_text)


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


# --- locations --------------------------------------------------------------------------------

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
SUPPORTED_LOCATIONS = "a file path, sqlite:///absolute/path or sqlite:relative/path"


def resolve_store_path(location: str | os.PathLike[str] | None = None) -> Path:
    """The SQLite file a store location names: a path, `sqlite:///abs/path`,
    `sqlite:relative/path`; None means $TINYLAB_STORE, else `default_store_path()`."""
    if location is None:
        location = os.environ.get(STORE_ENV) or default_store_path()
    if isinstance(location, os.PathLike):
        return Path(location).expanduser().absolute()
    text = str(location).strip()
    if not text:
        raise StoreError(f"the results store location is empty; give {SUPPORTED_LOCATIONS}")
    if text.lower().startswith("sqlite:"):
        rest = text[len("sqlite:"):]
        if rest.startswith("//"):
            rest = rest[2:]
            if not rest.startswith("/"):
                raise StoreError(f"store URL {text!r} names a host; use sqlite:///absolute/path "
                                 "(three slashes) or sqlite:relative/path")
            rest = "/" + rest.lstrip("/")  # sqlite:////abs/path (SQLAlchemy's form) works too
        if not rest:
            raise StoreError(f"store URL {text!r} names no file")
        return Path(rest).expanduser().absolute()
    match = _URL_SCHEME.match(text)
    if match:  # name the scheme only: the URL may carry a password
        raise StoreError(f"unsupported results store scheme {match.group(1)!r}; "
                         f"supported: {SUPPORTED_LOCATIONS}")
    return Path(text).expanduser().absolute()


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """Add the shared `--store URL` option (resolved later by `open_store(args.store)`)."""
    parser.add_argument(
        "--store", metavar="URL", default=None,
        help=f"results store: {SUPPORTED_LOCATIONS} (default: ${STORE_ENV}, "
        "else results/lab.sqlite in a checkout, $XDG_DATA_HOME/tinylab/lab.sqlite when installed)")


# --- the store --------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    engine TEXT NOT NULL,
    engine_version TEXT NOT NULL,
    board TEXT NOT NULL,
    backend TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL CHECK (unit <> ''),
    toolchain TEXT NOT NULL,
    git_commit TEXT NOT NULL,
    host TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    run_id TEXT NOT NULL,
    test_id TEXT NOT NULL DEFAULT '',
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS measurements_model ON measurements (model);
CREATE INDEX IF NOT EXISTS measurements_board ON measurements (board);
CREATE INDEX IF NOT EXISTS measurements_metric ON measurements (metric);
CREATE INDEX IF NOT EXISTS measurements_timestamp ON measurements (timestamp);
"""

_INSERT = (f"INSERT INTO measurements ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in COLUMNS)})")


def _is_locked(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return True
    message = str(error).lower()
    return "locked" in message or "busy" in message


class ResultsStore:
    """Measurements in one SQLite file, safe for several processes writing at once
    (WAL journal, a busy timeout, and bounded retries when the file stays locked)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0, retries: int = 6) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.retries = retries
        self._connection: sqlite3.Connection | None = None
        self._connection = self._open()

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r})"

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- opening

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the folder of the results store {self.path}: "
                             f"{error.strerror or error}") from None
        if self.path.is_dir():
            raise StoreError(f"the results store {self.path} is a folder, not a SQLite file")
        try:
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout_s,
                                         isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the results store {self.path}: {error}") from None
        try:
            self._retrying(lambda: self._prepare(connection), "open")
        except BaseException:
            connection.close()
            raise
        return connection

    def _prepare(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"the results store {self.path} has schema version {version}, "
                             f"newer than this tinylab's {SCHEMA_VERSION}; update tinylab")
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"the results store {self.path} cannot use the WAL journal "
                             f"(got {mode!r}); is it on a network file system?")
        connection.execute("BEGIN IMMEDIATE")
        try:
            table, *indexes = filter(str.strip, _SCHEMA.split(";"))
            connection.execute(table)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(measurements)")}
            missing = set(COLUMNS) - columns
            if missing:
                raise StoreError(f"{self.path} has a 'measurements' table that is not a tinylab "
                                 f"results store (missing {', '.join(sorted(missing))})")
            for statement in indexes:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    # -- running statements

    @property
    def connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError(f"the results store {self.path} is closed")
        return self._connection

    def _retrying(self, work: Callable[[], _T], action: str) -> _T:
        """Run `work`; while SQLite says the file is locked, roll back, wait and run it again
        (at most `retries` times more), then give up with StoreError. Nothing is dropped."""
        attempt = 0
        while True:
            try:
                return work()
            except sqlite3.OperationalError as error:
                if not _is_locked(error):
                    raise self._error(action, error) from None
                if attempt >= self.retries:
                    raise StoreError(
                        f"could not {action} the results store {self.path}: still locked by "
                        f"another process after {attempt + 1} attempts "
                        f"({self.busy_timeout_s:g} s each); nothing was written") from None
                time.sleep(min(2.0, 0.05 * 2 ** attempt) * (0.5 + random.random()))
                attempt += 1
            except sqlite3.DatabaseError as error:
                raise self._error(action, error) from None

    def _error(self, action: str, error: sqlite3.Error) -> StoreError:
        message = str(error)
        if "not a database" in message or "malformed" in message:
            return StoreError(f"the results store {self.path} is not a readable SQLite "
                              f"database ({message}); move it aside to start a new one")
        if "readonly" in message or "unable to open" in message:
            return StoreError(f"cannot {action} the results store {self.path}: {message} "
                              "(check the file's and its folder's permissions)")
        return StoreError(f"cannot {action} the results store {self.path}: {message}")

    # -- writing

    def add(self, rows: Iterable[Measurement]) -> int:
        """Validate and write `rows` in one transaction; return how many were written."""
        checked = [validate(row) for row in rows]
        if not checked:
            return 0
        values = [tuple(getattr(row, name) for name in COLUMNS) for row in checked]
        connection = self.connection

        def write() -> int:
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(_INSERT, values)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return len(values)

        return self._retrying(write, "write to")

    # -- reading

    def _where(self, model: str | None, board: str | None, metric: str | None,
               backend: str | None, since: str | datetime | date | None
               ) -> tuple[str, list[object]]:
        clauses: list[str] = []
        parameters: list[object] = []
        for column, wanted in (("model", model), ("board", board), ("metric", metric),
                               ("backend", backend)):
            if wanted is None:
                continue
            clauses.append(f"{column} LIKE ?" if "%" in wanted else f"{column} = ?")
            parameters.append(wanted)
        if since is not None:
            clauses.append("timestamp >= ?")
            parameters.append(normalize_timestamp(since, naive_is_utc=True))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), parameters

    def query(self, model: str | None = None, board: str | None = None,
              metric: str | None = None, backend: str | None = None,
              since: str | datetime | date | None = None,
              limit: int | None = None) -> list[Measurement]:
        """Measurements matching every filter given, newest first. Filters are exact matches,
        or SQL LIKE patterns when they contain `%`; `since` is a date or time (UTC if no zone)."""
        where, parameters = self._where(model, board, metric, backend, since)
        sql = (f"SELECT {', '.join(COLUMNS)} FROM measurements{where} "
               "ORDER BY timestamp DESC, id DESC")
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise StoreError(f"limit must be a whole number >= 0, not {limit!r}")
            sql += " LIMIT ?"
            parameters.append(limit)
        rows = self._retrying(lambda: self.connection.execute(sql, parameters).fetchall(), "read")
        return [Measurement(*row) for row in rows]

    def count(self, model: str | None = None, board: str | None = None,
              metric: str | None = None, backend: str | None = None,
              since: str | datetime | date | None = None) -> int:
        """How many measurements match the filters (all of them when none is given)."""
        where, parameters = self._where(model, board, metric, backend, since)
        sql = f"SELECT COUNT(*) FROM measurements{where}"
        return self._retrying(lambda: self.connection.execute(sql, parameters).fetchone()[0],
                              "read")

    def dataframe(self, model: str | None = None, board: str | None = None,
                  metric: str | None = None, backend: str | None = None,
                  since: str | datetime | date | None = None,
                  limit: int | None = None) -> pandas.DataFrame:
        """`query()` as a pandas DataFrame, one column per field; `timestamp` as UTC datetimes."""
        import pandas

        rows = self.query(model=model, board=board, metric=metric, backend=backend, since=since,
                          limit=limit)
        frame = pandas.DataFrame([asdict(row) for row in rows], columns=list(COLUMNS))
        frame["value"] = frame["value"].astype("float64")
        frame["timestamp"] = pandas.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        return frame


def open_store(location: str | os.PathLike[str] | None = None, *, busy_timeout_s: float = 5.0,
               retries: int = 6) -> ResultsStore:
    """Open the results store at `location` (see `resolve_store_path`), creating the file, its
    folder and the schema when missing."""
    return ResultsStore(resolve_store_path(location), busy_timeout_s=busy_timeout_s,
                        retries=retries)
