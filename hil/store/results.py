"""The results store: one row per measurement, with its provenance, in SQLite.

`open_store()` opens (and creates) the store; `Provenance.measurement()` (hil.store.provenance)
builds rows that share where, how and when they were measured; `ResultsStore.add()` validates
(hil.store.measurement) and writes them; `query`, `count` and `dataframe` read them back.
"""
from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from hil.destinations import creatable
from hil.errors import StoreError
from hil.store.location import resolve_store_path
from hil.store.measurement import COLUMNS, Measurement, normalize_timestamp, validate

if TYPE_CHECKING:  # pandas is imported only when a DataFrame is asked for
    import pandas

SCHEMA_VERSION = 1

_T = TypeVar("_T")

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
                             f"{creatable(self.path) or error.strerror or error}") from None
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
