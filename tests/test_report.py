"""`tinylab report` on a store filled by real `tinylab bench` runs on two emulated boards: the page
loads in headless Chromium with every figure, and its tables agree with `tinylab results`.
Regressions (hil.experiments.regressions) on rows written to a real SQLite store."""
from __future__ import annotations

import contextlib
import html
import io
import json
import re
import shutil
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hil.firmware_build.planlayout import PlanLayout
from hil.experiments.regressions import find_regressions
from hil.report.browser import BrowserError, check_page, find_chromium, png_size
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.experiments.tflm_columns import UNAVAILABLE_METRIC
from hil.store.results import open_store
from tinylab_cli.main import main

BOARDS = ("qemu-f746", "qemu-f412")  # f412 with --compare: portable kernels and TFLM's arena too
needs_chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="headless Chromium is not installed (Debian's `chromium` package; scripts/install.sh installs it)")


def cli(*args: str) -> tuple[int, str]:
    """Run `tinylab ARGS` in this process; (exit code, standard output)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def benched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store after `tinylab bench` on two boards (the default model, mcunet-tiny)."""
    missing = [tool for tool in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (scripts/install.sh installs them): cannot bench")
    store = tmp_path_factory.mktemp("benched") / "lab.sqlite"
    assert cli("bench", "--board", BOARDS[0], "--store", str(store), "--json")[0] == 0
    assert cli("bench", "--board", BOARDS[1], "--compare", "--store", str(store), "--json")[0] == 0
    return store


@pytest.fixture(scope="module")
def report(benched: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    code, printed = cli("report", "-o", str(out), "--store", str(benched))
    assert code == 0, printed
    return out / "index.html"


class Page(HTMLParser):
    """The parts of a report page the tests read: images, value cells, measurement tables, notes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[str] = []
        self.values: list[dict[str, str]] = []  # data-* of each value cell, with its table's
        self.measurements: list[list[str]] = []  # cells of each row of a table.measurements
        self.notes: dict[tuple[str, str], str] = {}  # (board, engine) -> why its column is empty
        self._table: dict[str, str] = {}
        self._section: dict[str, str] = {}
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._note: tuple[str, str] | None = None
        self._note_text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self._section = a
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "table":
            self._table = {**a, "class": a.get("class", "")}
        elif tag == "tr" and self._table.get("class") == "measurements":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        if tag == "td" and "value" in a.get("class", "").split():
            self.values.append({**{f"table-{k}": v for k, v in self._table.items()}, **a})
        if tag == "li" and "data-engine" in a:
            self._note, self._note_text = (self._section["data-board"], a["data-engine"]), []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row and self._row[0] != "timestamp":
                self.measurements.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = {}
        elif tag == "li" and self._note is not None:
            self.notes[self._note] = "".join(self._note_text)
            self._note = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._note is not None:
            self._note_text.append(data)


def results_rows(store: Path) -> list[dict]:
    code, printed = cli("results", "--json", "--store", str(store), "--limit", "100000")
    assert code == 0
    return json.loads(printed)


def shown_like_results(row: dict) -> list[str]:
    """The cells `tinylab results` prints for a row (its table columns), plus the run id."""
    value = float(row["value"])
    sha, plus, rest = row["git_commit"].partition("+")
    return [row["timestamp"][:19].replace("T", " "), row["model"], row["board"], row["backend"], row["metric"],
            str(int(value)) if value.is_integer() else f"{value:.6g}", row["unit"],
            f"{row['engine']} {row['engine_version']}".strip(), sha[:10] + plus + rest, row["run_id"]]


# --- the report end to end ----------------------------------------------------------------------


@needs_chromium
def test_every_figure_loads_in_headless_chromium(report: Path) -> None:
    page = Page(report.read_text(encoding="utf-8"))
    assert len(page.images) == 2 * 3  # per board: comparison, memory plan, trends
    for src in page.images:
        assert not src.startswith(("/", "file:", "http")) and (report.parent / src).is_file()
    check = check_page(report, report.parent / "screenshot.png")
    assert check.all_loaded and check.total == len(page.images) and check.broken == []
    width, height = check.screenshot_size
    assert (width, height) == png_size(report.parent / "screenshot.png") and width > 500 and height > 500
    assert (report.parent / "screenshot.png").stat().st_size > 10_000  # not a blank page


@needs_chromium
def test_a_figure_that_does_not_load_is_named(report: Path, tmp_path: Path) -> None:
    copy = tmp_path / "report"
    shutil.copytree(report.parent, copy)
    missing = Page(report.read_text(encoding="utf-8")).images[1]
    (copy / missing).unlink()
    with pytest.raises(BrowserError, match=f"1 of 6 images .* did not load: {re.escape(missing)}"):
        check_page(copy / "index.html", tmp_path / "shot.png")


def test_tables_agree_with_tinylab_results_row_for_row(report: Path, benched: Path) -> None:
    rows = results_rows(benched)
    page = Page(report.read_text(encoding="utf-8"))
    newest: dict[tuple, dict] = {}
    for row in rows:  # newest first
        newest.setdefault((row["model"], row["board"], row["backend"], row["engine"], row["metric"]), row)

    assert page.values
    cited = []
    for cell in page.values:
        board = cell["table-data-board"]
        matches = [r for r in rows if r["run_id"] == cell["data-run-id"] and r["engine"] == cell["data-engine"]
                   and r["metric"] == cell["data-metric"] and r["board"] == board
                   and r["model"] == cell["table-data-model"]]
        assert len(matches) == 1, cell
        (row,) = matches
        assert float(cell["data-value"]) == row["value"] and cell["data-unit"] == row["unit"]
        assert newest[(row["model"], board, row["backend"], row["engine"], row["metric"])] is row  # latest run
        cited.append(shown_like_results(row))
    # the measurements listed under the tables are exactly the cited rows, as `tinylab results` shows them
    assert sorted(page.measurements) == sorted(map(list, {tuple(c) for c in cited}))

    engines = {(c["table-data-board"], c["data-engine"]) for c in page.values}
    assert {("qemu-f746", "tinylab"), ("qemu-f412", "tinylab"), ("qemu-f412", "tinylab-portable"),
            ("qemu-f412", "tflite-micro")} <= engines
    assert ("qemu-f746", "tinylab-portable") not in engines
    assert "run tinylab bench --compare" in page.notes[("qemu-f746", "tinylab-portable")]
    for board in BOARDS:
        for engine in ("tflm", "tflm-cmsis-nn"):
            # the reason bench stored with the empty column
            assert "not measured: no TFLM library given: pass --tflm-dir or set TINYLAB_TFLM_DIR" in page.notes[(board, engine)]
            assert (board, engine) not in engines
    latency = [c for c in page.values if c["data-metric"] == "latency"]
    assert {c["data-unit"] for c in latency} == {"instructions"}


def test_every_figure_says_where_it_came_from(report: Path, benched: Path) -> None:
    text = report.read_text(encoding="utf-8")
    rows = results_rows(benched)
    commit = rows[0]["git_commit"]
    day = rows[0]["timestamp"][:10]
    captions = text.split("<figcaption>")[1:]
    assert len(captions) == 6
    for caption in captions:
        caption = caption.split("</figcaption>")[0]
        assert "board qemu-f" in caption and "backend qemu" in caption and "engine tinylab 0." in caption
        assert f"commit {commit[:10]}" in caption and day in caption


def test_the_memory_plan_is_stored_with_arena_planned_and_drawn(report: Path, benched: Path) -> None:
    with open_store(str(benched)) as store:
        planned = store.query(metric="arena_planned", board="qemu-f746")
    (row,) = planned
    layout = PlanLayout.from_json(json.loads(row.extra)["plan"])
    assert layout.sram_bytes == 320 * 1024 and layout.arena_bytes == row.value
    assert layout.floor.bytes == max(t.bytes for t in layout.tensors.values())
    assert layout.floor.bytes <= layout.lower_bound <= layout.arena_bytes
    live = [layout.live_bytes(step) for step in layout.steps]
    assert max(live) <= layout.arena_bytes and max(live) >= layout.floor.bytes
    assert len(row.extra) < 8_000  # compact
    text = report.read_text(encoding="utf-8")
    assert "mcunet-tiny-qemu-f746-qemu-plan.png" in text and "floor (largest tensor)" in text


def test_board_and_since_select_rows(benched: Path, tmp_path: Path) -> None:
    code, printed = cli("report", "-o", str(tmp_path / "one"), "--store", str(benched), "--board", "qemu-f412",
                        "--format", "svg", "--json")
    assert code == 0
    written = json.loads(printed)
    assert written["sections"] == ["mcunet-tiny on qemu-f412 (qemu)"]
    assert all(Path(p).suffix == ".svg" for p in written["figures"]) and len(written["figures"]) == 3
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        assert cli("report", "-o", str(tmp_path / "none"), "--store", str(benched), "--since", tomorrow)[0] == 2
    assert "no measurements matching since" in out.getvalue()
    with contextlib.redirect_stderr(out):
        assert cli("report", "-o", str(tmp_path / "x"), "--store", str(tmp_path / "missing.sqlite"))[0] == 2
    assert "there is no results store" in out.getvalue() and not (tmp_path / "missing.sqlite").exists()


@needs_chromium
def test_a_slower_run_is_marked_as_a_regression_in_the_report(benched: Path, tmp_path: Path) -> None:
    with open_store(str(benched)) as store:
        rows = store.query(board="qemu-f746")
    latency = next(r for r in rows if r.metric == "latency" and r.engine == "tinylab")
    later = (datetime.fromisoformat(latency.timestamp) + timedelta(hours=1)).isoformat()
    slower = replace(latency, value=latency.value + 4000, run_id="later-run", git_commit="feedfacecafe",
                     timestamp=later)
    with open_store(str(tmp_path / "lab.sqlite")) as store:
        store.add(rows + [slower])
    code, printed = cli("report", "-o", str(tmp_path / "out"), "--store", str(tmp_path / "lab.sqlite"),
                        "--json", "--check")
    assert code == 0
    written = json.loads(printed)
    (described,) = written["regressions"]
    assert "mcunet-tiny on qemu-f746" in described and "latency" in described
    assert f"{latency.value:,.0f} → {slower.value:,.0f} instructions" in described
    assert written["check"]["loaded"] == written["check"]["images"] == 3
    text = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "Regressions in the newest runs" in text and 'class="regression"' in text


def test_tflm_on_target_columns_appear_when_their_rows_exist(benched: Path, tmp_path: Path) -> None:
    with open_store(str(benched)) as store:
        rows = store.query(board="qemu-f412")
    ours = [r for r in rows if r.engine == "tinylab" and r.metric in ("latency", "peak_sram", "flash")]
    tflm = [replace(r, engine="tflm", engine_version="tflm-test", run_id="tflm-run", value=r.value * 2) for r in ours]
    with open_store(str(tmp_path / "lab.sqlite")) as store:
        store.add(rows + tflm)
    assert cli("report", "-o", str(tmp_path / "out"), "--store", str(tmp_path / "lab.sqlite"))[0] == 0
    text = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    page = Page(text)
    cells = {c["data-metric"]: c for c in page.values if c["data-engine"] == "tflm"}
    assert set(cells) == {"latency", "peak_sram", "flash"}
    assert all(c["data-run-id"] == "tflm-run" for c in cells.values())
    assert ("qemu-f412", "tflm") not in page.notes and ("qemu-f412", "tflm-cmsis-nn") in page.notes
    assert text.count('<td class="num ratio">0.50×</td>') == 3


def test_an_empty_tflm_column_gives_the_reason_its_run_stored(benched: Path, tmp_path: Path) -> None:
    """A library was given but the model did not fit: the note says so, not 'bench it here'."""
    with open_store(str(benched)) as store:
        rows = store.query(board="qemu-f412")
    ours = [r for r in rows if r.engine == "tinylab" and r.metric == "latency"]
    elsewhere = [replace(r, engine="tflm", board="qemu-f746", run_id="tflm-elsewhere") for r in ours]
    why = "model mcunet-tiny does not fit qemu-f412 under TFLM: AllocateTensors failed with an arena of 1 B"
    unfit = replace(ours[0], engine="tflm", metric=UNAVAILABLE_METRIC, value=1.0, unit="flag", run_id="tflm-unfit",
                    extra=json.dumps({"reason": why, "kind": "does-not-fit"}),
                    timestamp=datetime.now(timezone.utc).isoformat())  # newer than bench's "none given"
    with open_store(str(tmp_path / "lab.sqlite")) as store:
        store.add(rows + elsewhere + [unfit])
    assert cli("report", "-o", str(tmp_path / "out"), "--store", str(tmp_path / "lab.sqlite"))[0] == 0
    page = Page((tmp_path / "out" / "index.html").read_text(encoding="utf-8"))
    assert page.notes[("qemu-f412", "tflm")] == f"tflm: not measured: {why}"


def test_an_estimate_is_its_own_row_with_its_model_and_error_bar(benched: Path, tmp_path: Path) -> None:
    """`bench --cycle-model auto` (issue 16): the estimated cycles of the profiled run stand in a
    row of their own, named by their model and error bar, beside an unchanged instruction count."""
    with open_store(str(benched)) as store:
        rows = store.query(board="qemu-f746")
    plain = next(r for r in rows if r.metric == "latency" and r.engine == "tinylab")
    store_path = tmp_path / "lab.sqlite"
    with open_store(str(store_path)) as store:
        store.add(rows)
    code, printed = cli("bench", "--board", "qemu-f746", "--cycle-model", "auto", "--store", str(store_path), "--json")
    assert code == 0, printed
    with open_store(str(store_path)) as store:
        profiled = [r for r in store.query(board="qemu-f746") if r.engine == "tinylab" and r.run_id != plain.run_id]
    by_metric = {r.metric: r for r in profiled}
    assert by_metric["latency"].value == plain.value and by_metric["latency"].unit == "instructions"
    estimate = by_metric["estimated_latency"]
    extra = json.loads(estimate.extra)
    assert estimate.unit == "estimated_cycles" and estimate.value != plain.value
    assert extra["cycle_model"].startswith("cortex-m7 on nucleo-f746zg") and extra["error_bar"]

    assert cli("report", "-o", str(tmp_path / "out"), "--store", str(store_path))[0] == 0
    text = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    page = Page(text)
    ours = [c for c in page.values if c["table-data-board"] == "qemu-f746" and c["data-engine"] == "tinylab"]
    latency = [c for c in ours if c["data-metric"] == "latency"]
    estimated = [c for c in ours if c["data-metric"] == "estimated_latency"]
    assert [(float(c["data-value"]), c["data-unit"]) for c in latency] == [(plain.value, "instructions")]
    assert [(float(c["data-value"]), c["data-unit"], c["data-cycle-model"]) for c in estimated] == [
        (estimate.value, "estimated_cycles", extra["cycle_model"])]
    assert "data-cycle-model" not in latency[0]
    row = text.split('<tr data-quantity="estimated_latency">')[1].split("</tr>")[0]
    assert html.escape(f"estimated by {extra['cycle_model']}, error {extra['error_bar']}") in row
    assert f"{extra['estimated_ms']:,.3g} ms estimated" in row
    latency_row = text.split('<tr data-quantity="latency">')[1].split("</tr>")[0]
    assert "estimated" not in latency_row and " ms" not in latency_row  # instructions give no milliseconds


# --- regressions on rows in a real store --------------------------------------------------------

START = datetime(2025, 3, 1, 12, tzinfo=timezone.utc)


def measured(metric: str, value: float, unit: str, run: int, *, engine: str = "tinylab",
             board: str = "qemu-f746", backend: str = "qemu", model: str = "kws") -> Measurement:
    provenance = Provenance(engine=engine, engine_version="0.2", board=board, backend=backend,
                            toolchain="arm-none-eabi-gcc 12.2", git_commit=f"{run:040x}", host="lab",
                            run_id=f"run-{run}")
    row = provenance.measurement(model, "ab" * 32, metric, value, unit)
    return replace(row, timestamp=(START + timedelta(hours=run)).isoformat())


def regressions(tmp_path: Path, rows: list[Measurement], **options):
    with open_store(str(tmp_path / "lab.sqlite")) as store:
        store.add(rows)
        return find_regressions(store.dataframe(), **options)


def test_a_slower_instruction_count_is_a_regression_and_is_named(tmp_path: Path) -> None:
    (found,) = regressions(tmp_path, [measured("latency", 1000, "instructions", 1),
                                      measured("latency", 1001, "instructions", 2)])
    assert (found.model, found.board, found.metric, found.baseline, found.new) == ("kws", "qemu-f746", "latency",
                                                                                   1000, 1001)
    assert (found.baseline_run_id, found.new_run_id) == ("run-1", "run-2")
    assert found.new_commit == f"{2:040x}" and found.timestamp.startswith("2025-03-01T14:00")
    text = found.describe()
    assert "kws" in text and "qemu-f746" in text and "latency" in text
    assert "1,000 → 1,001 instructions" in text


def test_an_equal_or_faster_run_is_not_a_regression(tmp_path: Path) -> None:
    assert regressions(tmp_path, [measured("latency", 1000, "instructions", 1),
                                  measured("latency", 1000, "instructions", 2),
                                  measured("peak_sram", 2048, "bytes", 1),
                                  measured("peak_sram", 2000, "bytes", 2)]) == []


def test_any_byte_more_is_a_regression(tmp_path: Path) -> None:
    (found,) = regressions(tmp_path, [measured("flash", 98_000, "bytes", 1), measured("flash", 98_004, "bytes", 2)])
    assert found.metric == "flash" and found.change == 4


def test_cycles_regress_only_beyond_the_run_to_run_spread(tmp_path: Path) -> None:
    earlier = [measured("latency", v, "cycles", i, backend="hardware", board="nucleo-f746zg")
               for i, v in enumerate((100_000, 100_400, 100_200), start=1)]
    within = measured("latency", 100_550, "cycles", 4, backend="hardware", board="nucleo-f746zg")
    assert regressions(tmp_path / "a", earlier + [within]) == []  # 350 over the median, spread 400
    beyond = replace(within, value=100_700)
    (found,) = regressions(tmp_path / "b", earlier + [beyond])
    assert found.rule == "beyond spread" and found.tolerance == 400 and found.baseline == 100_200
    assert "beyond the run-to-run spread" in found.describe()


def test_cycles_after_a_single_run_use_the_stated_tolerance(tmp_path: Path) -> None:
    first = measured("latency", 100_000, "cycles", 1, backend="hardware", board="nucleo-f746zg")
    assert regressions(tmp_path / "a", [first, replace(measured("latency", 101_000, "cycles", 2), board="nucleo-f746zg",
                                                       backend="hardware")]) == []
    (found,) = regressions(tmp_path / "b", [first, replace(measured("latency", 101_000, "cycles", 2),
                                                           board="nucleo-f746zg", backend="hardware")],
                           cycles_tolerance=0.005)
    assert found.rule == "beyond tolerance" and found.tolerance == 500


def test_losing_bit_exactness_is_a_regression(tmp_path: Path) -> None:
    (found,) = regressions(tmp_path / "a", [measured("matches_reference", 1, "bool", 1),
                                            measured("matches_reference", 0, "bool", 2)])
    assert "no longer matches the reference" in found.describe()
    assert regressions(tmp_path / "b", [measured("matches_reference", 0, "bool", 1),
                                        measured("matches_reference", 0, "bool", 2)]) == []


def test_series_compare_like_with_like(tmp_path: Path) -> None:
    rows = [measured("latency", 1000, "instructions", 1),
            measured("latency", 6000, "instructions", 2, engine="tinylab-portable"),  # another engine
            measured("latency", 1500, "instructions", 3, board="qemu-f412"),  # another board
            measured("latency", 900, "instructions", 4)]
    assert regressions(tmp_path, rows) == []


def test_only_the_newest_run_unless_history_is_asked_for(tmp_path: Path) -> None:
    rows = [measured("latency", 1000, "instructions", 1), measured("latency", 1200, "instructions", 2),
            measured("latency", 1100, "instructions", 3)]
    assert regressions(tmp_path / "a", rows) == []
    (old,) = regressions(tmp_path / "b", rows, latest_only=False)
    assert old.new_run_id == "run-2" and old.baseline == 1000


def test_an_empty_store_has_no_regressions(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "lab.sqlite")) as store:
        assert find_regressions(store.dataframe()) == []
