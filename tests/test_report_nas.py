"""`tinylab report`'s NAS search sections, on rows as `tinylab nas run` writes them (nas/records.py)
put into a real SQLite store: the Pareto fronts, the deployed networks' table, the figure, and search
runs kept out of the ordinary model sections."""
from __future__ import annotations

import json

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import nas.records
from hil.report import search_data
from hil.report.report import collect_report, load_frame, make_report
from hil.report.search_data import Candidate, pareto_front
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.store.results import open_store

START = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
SEARCH_RUN = "20260301T120000Z-search01"
BUDGET = {"sram_bytes": 2048, "flash_bytes": 100_000, "latency": 350}
CONTEXT = {"width": 0.5, "resolution": 32, "dataset": "digits", "budget": BUDGET}
# architecture: (method, validation accuracy, predicted latency, predicted peak SRAM)
CANDIDATES = {
    "a": ("evolution", 0.80, 100, 1000),
    "b": ("evolution", 0.85, 200, 500),
    "c": ("evolution", 0.70, 150, 2000),
    "d": ("evolution", 0.90, 300, 1500),
    "e": ("random", 0.82, 120, 800),
    "f": ("random", 0.78, 100, 3000),  # as fast as a, less accurate
    "g": ("random", 0.60, 400, 400),
}
LATENCY_FRONT = ["a", "e", "b", "d"]
SRAM_FRONT = ["g", "b", "d"]
# role: (architecture, model, int8, float, latency, predicted latency, peak SRAM, predicted SRAM, flash, TFLM match)
DEPLOYED = {
    "winner": ("d", "nas-winner", 0.875, 0.89, 312.0, 300.0, 1544, 1500, 61_000, True),
    "random": ("e", "nas-random", 0.79, 0.81, 125.0, 120.0, 830, 800, 40_000, True),
    "uniform": ("uniform-0.5", "nas-uniform", 0.71, 0.73, 280.0, 260.0, 1400, 1380, 52_000, False),
}


def provenance(run_id: str) -> Provenance:
    return Provenance(engine="tinylab", engine_version="0.2", board="qemu-f746", backend="qemu",
                      toolchain="arm-none-eabi-gcc 12.2", git_commit="ab" * 20, host="lab", run_id=run_id)


def at(rows: list[Measurement], hour: int) -> list[Measurement]:
    return [replace(row, timestamp=(START + timedelta(hours=hour, seconds=i)).isoformat())
            for i, row in enumerate(rows)]


def search_rows(run_id: str = SEARCH_RUN) -> list[Measurement]:
    """A search's rows with the metrics, units and extra keys of nas/records.py."""
    p = provenance(run_id)
    rows = []
    for arch, (method, accuracy, latency, sram) in CANDIDATES.items():
        extra = {**CONTEXT, "role": "candidate", "method": method, "architecture": arch,
                 "predicted_latency": latency, "latency_unit": "instructions",
                 "predicted_peak_sram_bytes": sram, "predicted_flash_bytes": 50_000, "macs": 1000}
        rows.append(p.measurement(f"nas:{arch}", "", "nas_validation_accuracy", accuracy, "ratio", extra))
    for role, (arch, model, int8, float_, latency, p_latency, sram, p_sram, flash, match) in DEPLOYED.items():
        extra = {**CONTEXT, "role": role, "architecture": arch, "test_images": 300, "target_images": 8}
        for metric, value, unit in [
                ("latency", latency, "instructions"), ("peak_sram", sram, "bytes"), ("flash", flash, "bytes"),
                ("arena_planned", sram - 500, "bytes"), ("matches_reference", float(match), "bool"),
                ("nas_predicted_latency", p_latency, "instructions"), ("nas_predicted_peak_sram", p_sram, "bytes"),
                ("nas_predicted_flash", 50_000, "bytes"), ("float_accuracy", float_, "ratio"),
                ("int8_accuracy", int8, "ratio"), ("target_matches_host", 1.0, "bool")]:
            rows.append(p.measurement(model, "cd" * 32, metric, value, unit, extra))
    return at(rows, 2)


def bench_rows(run_id: str = "bench-1") -> list[Measurement]:
    p = provenance(run_id)
    return at([p.measurement("kws", "ef" * 32, metric, value, unit) for metric, value, unit in
               [("latency", 5000.0, "instructions"), ("peak_sram", 9000, "bytes"), ("flash", 70_000, "bytes"),
                ("matches_reference", 1.0, "bool")]], 1)


def store_with(tmp_path: Path, rows: list[Measurement]) -> Path:
    path = tmp_path / "lab.sqlite"
    with open_store(str(path)) as store:
        store.add(rows)
    return path


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("nas-report")
    store = store_with(tmp_path, bench_rows() + search_rows())
    report = make_report(tmp_path / "out", store=str(store))
    return report, report.index.read_text(encoding="utf-8")


def test_the_names_agree_with_what_nas_writes() -> None:
    assert search_data.CANDIDATE_METRIC == nas.records.CANDIDATE_METRIC
    assert search_data.PREDICTED_METRICS == nas.records.PREDICTED_METRICS
    assert search_data.ROLES == nas.records.ROLES


def test_the_pareto_front_keeps_exactly_the_undominated_points() -> None:
    def c(name: str, accuracy: float, cost: float | None) -> Candidate:
        return Candidate(name, "evolution", accuracy, cost, "instructions", cost, None)

    points = [c("slow-best", 0.9, 50), c("tie-first", 0.7, 10), c("tie-second", 0.7, 10), c("same-cost-worse", 0.6, 10),
              c("dearer-same", 0.7, 20), c("middle", 0.8, 30), c("dominated", 0.75, 40), c("no-cost", 0.99, None)]
    assert [p.architecture for p in pareto_front(points, lambda p: p.latency)] == ["tie-first", "middle", "slow-best"]
    assert pareto_front([], lambda p: p.latency) == []


def test_each_search_has_its_fronts_for_latency_and_for_sram(tmp_path: Path) -> None:
    frame, _ = load_frame(str(store_with(tmp_path, bench_rows() + search_rows())))
    (search,) = collect_report(frame).searches
    assert search.run_id == SEARCH_RUN and (search.board, search.backend) == ("qemu-f746", "qemu")
    assert [c.architecture for c in search.latency_front] == LATENCY_FRONT
    assert [c.architecture for c in search.sram_front] == SRAM_FRONT
    assert len(search.candidates) == len(CANDIDATES) and search.methods() == {"evolution": 4, "random": 3}
    assert search.budget.sram_bytes == 2048 and search.budget.latency == 350 and search.latency_unit == "instructions"
    assert [d.role for d in search.deployed] == ["winner", "random", "uniform"]
    winner = search.role("winner")
    assert (winner.architecture, winner.int8_accuracy, winner.latency, winner.latency_unit, winner.peak_sram) == \
        ("d", 0.875, 312.0, "instructions", 1544)
    assert winner.latency_ratio == pytest.approx(312 / 300) and winner.bit_exact is True
    assert search.role("uniform").bit_exact is False


def test_the_section_shows_the_winner_and_the_baselines(written) -> None:
    report, html = written
    (search,) = report.data.searches
    section = html[html.index(f'<section id="{search.anchor}" class="nas-search"'):]
    section = section[:section.index("</section>")]
    rows = dict(re.findall(r'<tr data-role="(\w+)" data-model="[^"]*">(.*?)</tr>', section, re.S))
    assert list(rows) == ["winner", "random", "uniform"]
    winner = rows["winner"]
    assert "<code>d</code>" in winner and "87.5%" in winner and "89.0%" in winner
    assert "312 instructions" in winner and "300 instructions" in winner and "1.04×" in winner
    assert "1,544" in winner and "75.4% of the budget" in winner and "61,000" in winner
    assert re.search(r'data-metric="bit_exact">yes<', winner)
    assert re.search(r'class="bad" data-metric="bit_exact">NO<', rows["uniform"])
    assert f'href="#{search.anchor}"' in html  # in the contents
    assert "cycles" not in section.replace("not cycles or time", "")


def test_the_search_figure_is_written(written) -> None:
    report, html = written
    (search,) = report.data.searches
    figure = report.index.parent / search.figures["search"]
    assert figure in report.figures and figure.name == f"{search.anchor}-search.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
    assert f'<img src="{search.figures["search"]}"' in html


def test_search_runs_are_not_ordinary_model_sections(written) -> None:
    report, html = written
    assert [(s.model, s.board) for s in report.data.sections] == [("kws", "qemu-f746")]
    assert not re.search(r'<section[^>]*data-model="nas-', html)
    note = next(n for n in report.data.left_out if "NAS search" in n)
    assert note.startswith(f"{len(search_rows())} rows of 1 NAS search runs")
    assert all(r.new_run_id != SEARCH_RUN for r in report.data.history)


def test_a_store_without_searches_has_no_search_section(tmp_path: Path) -> None:
    report = make_report(tmp_path / "out", store=str(store_with(tmp_path, bench_rows())))
    html = report.index.read_text(encoding="utf-8")
    assert report.data.searches == [] and 'class="nas-search"' not in html and "NAS search" not in html
    assert not any(p.name.endswith("-search.png") for p in report.figures)


def test_a_store_of_searches_alone_is_reported(tmp_path: Path) -> None:
    report = make_report(tmp_path / "out", store=str(store_with(tmp_path, search_rows())))
    assert report.data.sections == [] and len(report.data.searches) == 1
    assert 'class="nas-search"' in report.index.read_text(encoding="utf-8")


def test_the_report_command_counts_the_searches(tmp_path: Path, capsys) -> None:
    from tinylab_cli.main import main

    store = str(store_with(tmp_path, bench_rows() + search_rows()))
    assert main(["report", "--store", store, "--output", str(tmp_path / "out"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["searches"]) == 1 and len(out["sections"]) == 1
    assert main(["report", "--store", store, "--output", str(tmp_path / "out")]) == 0
    assert "1 model/board sections, 1 NAS searches" in capsys.readouterr().out
