"""The results store (hil.store.results) and `tinylab results`, on real SQLite files."""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

import tinylab_cli.main
from hil.errors import StoreError
from hil.store.location import DEFAULT_STORE_PATH, resolve_store_path
from hil.store.measurement import Measurement
from hil.store.provenance import REPO_ROOT, Provenance, collect_git_commit, new_run_id
from hil.store.results import ResultsStore, open_store

SHA = "ab" * 32


def provenance(board: str = "qemu-f746", backend: str = "qemu", run_id: str = "run-1",
               ) -> Provenance:
    return Provenance(engine="tinyengine", engine_version="0.1.0", board=board, backend=backend,
                      toolchain="arm-none-eabi-gcc 12.2.1; qemu 7.2.22",
                      git_commit="0123456789abcdef0123456789abcdef01234567+dirty",
                      host="labhost", run_id=run_id)


def row(metric: str = "latency", value: float = 1234.0, unit: str = "instructions", *,
        model: str = "kws", timestamp: str = "2025-01-31T12:00:00.000000+00:00",
        **changes: str) -> Measurement:
    measured = provenance().measurement(model, SHA, metric, value, unit, extra={"layers": 7})
    return replace(measured, timestamp=timestamp, **changes)


@pytest.fixture
def store(tmp_path: Path):
    with open_store(str(tmp_path / "lab.sqlite")) as opened:
        yield opened


# --- writing and reading ----------------------------------------------------------------------


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "lab.sqlite"
    written = [row(), row("peak_sram", 81920, "bytes"), row("flash", 123456.0, "bytes")]
    with open_store(str(path)) as store:
        assert store.add(written) == 3
    with open_store(f"sqlite://{path}") as store:  # sqlite:///abs/path
        assert store.count() == 3
        read = store.query()
    assert sorted(read, key=lambda m: m.metric) == sorted(written, key=lambda m: m.metric)
    assert json.loads(read[0].extra) == {"layers": 7}
    assert isinstance(read[0].value, float)


def test_schema_columns_indexes_and_version(store: ResultsStore) -> None:
    connection = sqlite3.connect(store.path)
    columns = [r[1] for r in connection.execute("PRAGMA table_info(measurements)")]
    indexes = {r[1] for r in connection.execute("PRAGMA index_list(measurements)")}
    assert columns[0] == "id" and "model_sha256" in columns and "extra" in columns
    assert {"measurements_model", "measurements_board", "measurements_metric",
            "measurements_timestamp"} <= indexes
    assert connection.execute("PRAGMA user_version").fetchone()[0] == 1
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def test_filters(store: ResultsStore) -> None:
    store.add([
        row(model="kws", board="qemu-f746"),
        row(model="kws", board="nucleo-f746zg", backend="hardware", unit="cycles"),
        row(model="vww", board="qemu-f746"),
        row("peak_sram", 1000, "bytes", model="vww", board="qemu-f746"),
        row(model="kws", timestamp="2024-06-01T00:00:00+00:00"),
    ])
    assert len(store.query(model="kws")) == 3
    assert len(store.query(model="kws", board="qemu-f746")) == 2
    assert [m.board for m in store.query(backend="hardware")] == ["nucleo-f746zg"]
    assert len(store.query(metric="latency")) == 4
    assert len(store.query(metric="peak_sram", model="vww")) == 1
    assert len(store.query(since="2025-01-01")) == 4
    assert len(store.query(board="nucleo%")) == 1
    assert store.query(model="nope") == []
    assert store.count(model="kws") == 3 and store.count() == 5
    frame = store.dataframe(model="vww")
    assert list(frame.columns) == [f for f in Measurement.__dataclass_fields__]
    assert sorted(frame["metric"]) == ["latency", "peak_sram"]
    assert str(frame["timestamp"].dt.tz) == "UTC"


def test_newest_first_and_limit(store: ResultsStore) -> None:
    rows = [row(value=i, timestamp=f"2025-01-{i + 1:02d}T00:00:00+00:00") for i in range(10)]
    store.add(rows[5:])
    store.add(rows[:5])  # insertion order is not time order
    newest = store.query()
    assert [m.value for m in newest] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert [m.value for m in store.query(limit=3)] == [9, 8, 7]
    # A time with another zone is stored in UTC and sorts by its UTC instant.
    store.add([row(value=99, timestamp="2025-02-01T01:00:00+02:00")])
    assert store.query(limit=1)[0].timestamp == "2025-01-31T23:00:00.000000+00:00"


def test_provenance_builds_measurements() -> None:
    run = Provenance.collect(engine="tinyengine", engine_version="0.1.0", board="qemu-f412",
                             backend="qemu", toolchain="gcc", test_id="tests/x.py::t")
    measured = run.measurement("kws", SHA, "latency", 5, "instructions")
    assert measured.board == "qemu-f412" and measured.test_id == "tests/x.py::t"
    assert measured.extra == "{}" and measured.timestamp.endswith("+00:00")
    assert run.host and run.run_id and run.git_commit
    assert new_run_id() != new_run_id()


def test_collect_git_commit(tmp_path: Path) -> None:
    assert collect_git_commit(tmp_path) == "unknown"
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.txt").write_text("1")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    clean = collect_git_commit(tmp_path)
    assert len(clean) == 40 and "+" not in clean
    (tmp_path / "a.txt").write_text("2")
    assert collect_git_commit(tmp_path) == clean + "+dirty"


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, reason", [
    (row(unit="ms"), "unit of time"),
    (row(unit="bytes"), "cycles or instructions"),
    (row("latency.conv_3", unit="us"), "unit of time"),
    (row("peak_sram", 1, ""), "unit is empty"),
    (row("peak_sram", 1, "kB"), "bytes"),
    (row(backend="simulator"), "backend"),
    (row(value=float("nan")), "finite"),
    (row(timestamp="2025-01-31T12:00:00"), "time zone"),
    (row(timestamp="yesterday"), "ISO-8601"),
    (row(extra="not json"), "JSON"),
    (row(model=""), "model is empty"),
])
def test_add_refuses_bad_rows(store: ResultsStore, bad: Measurement, reason: str) -> None:
    with pytest.raises(StoreError, match=reason):
        store.add([row(), bad])
    assert store.count() == 0  # nothing of a refused batch is written


def test_latency_in_cycles_or_instructions_is_accepted(store: ResultsStore) -> None:
    assert store.add([row(unit="cycles", backend="hardware"), row(unit="instructions")]) == 2


# --- locations --------------------------------------------------------------------------------


def test_default_location_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.delenv("TINYLAB_STORE", raising=False)
    assert resolve_store_path(None) == REPO_ROOT / "results" / "lab.sqlite" == DEFAULT_STORE_PATH
    assert REPO_ROOT == Path(tinylab_cli.main.__file__).resolve().parent.parent

    target = tmp_path / "env" / "store.sqlite"
    monkeypatch.setenv("TINYLAB_STORE", str(target))
    with open_store() as store:
        store.add([row()])
        assert store.path == target
    assert target.is_file()

    monkeypatch.setenv("TINYLAB_STORE", f"sqlite:///{tmp_path}/env2.sqlite")
    assert resolve_store_path(None) == tmp_path / "env2.sqlite"
    monkeypatch.chdir(tmp_path)
    assert resolve_store_path("sqlite:rel/lab.sqlite") == tmp_path / "rel" / "lab.sqlite"
    assert resolve_store_path("plain.sqlite") == tmp_path / "plain.sqlite"


def test_unsupported_scheme_is_refused_without_echoing_credentials() -> None:
    with pytest.raises(StoreError, match="'postgresql'.*sqlite:///") as caught:
        open_store("postgresql://lab:secret@db.example/lab")
    assert "secret" not in str(caught.value)


def test_corrupt_file_gives_store_error(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match=str(path)):
        open_store(str(path))


def test_unusable_path_gives_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="a-file"):
        open_store(str(blocker / "lab.sqlite"))
    with pytest.raises(StoreError, match="folder"):
        open_store(str(tmp_path))


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE measurements (id INTEGER PRIMARY KEY, x TEXT)")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="not a tinylab results store"):
        open_store(str(path))


# --- concurrency ------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hil.store.provenance import Provenance
    from hil.store.results import open_store

    store_path, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    run = Provenance(engine="tinyengine", engine_version="0.1.0", board="qemu-f746",
                     backend="qemu", toolchain="gcc", git_commit="abc", host="h", run_id=name)
    with open_store(store_path) as store:
        (go.parent / f"ready-{name}").touch()
        while not go.exists():
            time.sleep(0.001)
        for i in range(0, 300, 2):
            store.add([run.measurement("kws", "00", "latency", i + k, "instructions")
                       for k in range(2)])
            time.sleep(0.001)  # as a lab does: measure, write, measure again
""")


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    go = tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(go)],
                                cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
               for name in ("writer-a", "writer-b")]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"ready-{name}").exists() for name in ("writer-a", "writer-b")):
        assert time.monotonic() < deadline and all(w.poll() is None for w in writers)
        time.sleep(0.01)
    go.touch()  # both have the store open: start them together
    for writer in writers:
        _, errors = writer.communicate(timeout=60)
        assert writer.returncode == 0, errors
    with open_store(str(path)) as store:
        assert store.count() == 600
        for name in ("writer-a", "writer-b"):
            values = sorted(m.value for m in store.query() if m.run_id == name)
            assert values == [float(i) for i in range(300)]
    connection = sqlite3.connect(path)
    order = [r[0] for r in connection.execute("SELECT run_id FROM measurements ORDER BY id")]
    connection.close()
    assert sum(a != b for a, b in zip(order, order[1:])) > 1  # the writes really interleaved


def test_a_lock_held_too_long_raises_and_drops_nothing(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    with open_store(str(path), busy_timeout_s=0.05, retries=2) as store:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked.*nothing was written"):
            store.add([row()])
        holder.execute("ROLLBACK")
        holder.close()
        assert store.add([row()]) == 1  # the same row goes in once the lock is gone
        assert store.count() == 1


# --- the `tinylab results` command ------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    """`tinylab` as a function. Sub-commands whose module is not written yet are left out of
    the table so that this command can be tested on its own."""
    for name, module in list(tinylab_cli.main.COMMANDS.items()):
        if importlib.util.find_spec(module) is None:
            monkeypatch.delitem(tinylab_cli.main.COMMANDS, name)
    monkeypatch.delenv("TINYLAB_STORE", raising=False)
    return tinylab_cli.main.main


def filled_store(tmp_path: Path, n: int = 25) -> Path:
    path = tmp_path / "lab.sqlite"
    rows = [row(value=1000 + i, timestamp=f"2025-01-{i + 1:02d}T08:00:00+00:00",
                model="kws" if i % 2 else "vww") for i in range(n)]
    rows.append(row("peak_sram", 81920, "bytes", model="kws", board="nucleo-f746zg",
                    backend="hardware", timestamp="2025-02-15T00:00:00+00:00"))
    with open_store(str(path)) as store:
        store.add(rows)
    return path


def test_cli_json(cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = filled_store(tmp_path)
    assert cli(["results", "--store", str(path), "--json", "--model", "kws",
                "--metric", "latency", "--limit", "3"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["value"] for r in listed] == [1023.0, 1021.0, 1019.0]
    assert all(r["model"] == "kws" and r["unit"] == "instructions" for r in listed)
    with open_store(str(path)) as store:
        assert [Measurement(**r) for r in listed] == store.query(model="kws", metric="latency",
                                                                 limit=3)


def test_cli_table(cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = filled_store(tmp_path)
    assert cli(["results", "--store", f"sqlite://{path}"]) == 0
    out = capsys.readouterr().out.splitlines()
    header, first = out[0].split(), out[1].split()
    assert header == ["timestamp", "model", "board", "backend", "metric", "value", "unit",
                      "engine", "commit"]
    assert first[:8] == ["2025-02-15", "00:00:00", "kws", "nucleo-f746zg", "hardware",
                         "peak_sram", "81920", "bytes"]
    assert "0123456789+dirty" in out[1]
    table = out[1:out.index("")]
    assert len(table) == 20  # the default limit
    assert len({line.index("instructions") for line in table if "instructions" in line}) == 1
    assert "20 of 26" in out[-1]

    assert cli(["results", "--store", str(path), "--since", "2025-02-01"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4  # header, 1 row, blank, summary


def test_cli_empty_store(cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "none" / "lab.sqlite"
    assert cli(["results", "--store", str(path)]) == 0
    assert f"the results store at {path} has no measurements yet" in capsys.readouterr().out
    assert not path.exists()  # reading creates nothing
    with open_store(str(path)):
        pass
    assert cli(["results", "--store", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_cli_csv_equals_the_store(cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                  ) -> None:
    path = filled_store(tmp_path)
    with open_store(str(path)) as store:
        expected = store.query()

    def parse(text: str) -> list[Measurement]:
        return [Measurement(**{**r, "value": float(r["value"])})
                for r in csv.DictReader(io.StringIO(text))]

    assert cli(["results", "--store", str(path), "--csv", "-"]) == 0
    assert parse(capsys.readouterr().out) == expected  # every row, not only 20

    out_file = tmp_path / "export.csv"
    assert cli(["results", "--store", str(path), "--csv", str(out_file), "--model", "vww"]) == 0
    assert "wrote 13 measurements" in capsys.readouterr().out
    assert parse(out_file.read_text()) == [m for m in expected if m.model == "vww"]


def test_cli_errors_exit_2(cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "bad.sqlite"
    corrupt.write_bytes(b"\x00garbage" * 100)
    assert cli(["results", "--store", str(corrupt)]) == 2
    assert str(corrupt) in capsys.readouterr().err
    assert cli(["results", "--store", "postgresql://host/lab"]) == 2
    assert "postgresql" in capsys.readouterr().err
