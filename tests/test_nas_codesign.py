"""The co-design table (`nas/codesign.py`) and its command, `tinylab nas codesign`. The runs it
makes are `nas run`s (tested end to end in tests/test_nas_run.py, whose record is tabulated there
too); here the records are written out, to hold the table's arithmetic and the command's resuming."""
from __future__ import annotations

import json

import pytest

from hil.errors import LabError
from nas.codesign import codesign_table

LATENCY = 10_000_000


def network(accuracy: float, sram: int = 30_000, ratio: float = 1.02, exact: bool = True) -> dict:
    return {"architecture": "k3e3 | k3e3", "int8_accuracy": accuracy, "latency_ratio": ratio,
            "matches_reference": exact, "measured": {"peak_sram_bytes": sram, "flash_bytes": 400_000,
                                                     "latency": 9_000_000, "latency_unit": "instructions"}}


def record(sram_budget: int, seed: int, evolution: float, random: float, uniform: float, latency=LATENCY,
           **winner) -> dict:
    return {"board": "qemu-f412", "dataset": "fashion-mnist", "space": "fashion-mnist", "seed": seed,
            "work_budget": {"name": "full"}, "latency_table": {"unit": "instructions"},
            "budget": {"sram_bytes": sram_budget, "flash_bytes": 524_288, "latency": latency},
            "winner": network(evolution, **winner),
            "baselines": [{"name": "random search", **network(random)},
                          {"name": "uniform (k3 e6, full depth, trained from scratch)", **network(uniform)}]}


def records(rows: dict[int, list[tuple[float, float, float]]]) -> dict:
    return {(sram, seed): record(sram, seed, *accuracies) for sram, by_seed in rows.items()
            for seed, accuracies in enumerate(by_seed)}


def test_a_difference_counts_only_beyond_the_seed_spread():
    table = codesign_table(records({
        65536: [(0.926, 0.925, 0.910), (0.921, 0.927, 0.912), (0.924, 0.922, 0.915)],
        32768: [(0.922, 0.922, 0.919)]}))
    assert [b.sram_bytes for b in table.budgets] == [65536, 32768]
    at_64k = {c.second: c for c in table.budgets[0].comparisons()}
    # evolution against random: -0.1 points with spreads of 0.5: inconclusive, though ahead in two seeds.
    assert not at_64k["random"].conclusive and at_64k["random"].first_ahead_in == 2
    assert at_64k["random"].difference == pytest.approx(-0.001)
    # against uniform: +1.13 points against spreads of 0.5 and 0.5: evolution is ahead.
    assert at_64k["uniform"].conclusive and at_64k["uniform"].difference == pytest.approx(0.011333, abs=1e-6)
    assert "evolution is ahead beyond the seed spread" in at_64k["uniform"].verdict()
    one_seed = table.budgets[1].comparisons()
    assert all(not c.conclusive and "one seed" in c.verdict() for c in one_seed)
    text = table.markdown()
    assert "| (c) evolution | 92.60 / 92.10 / 92.40 | 92.37 % | 0.50 |" in text
    assert "within the seed spread, so inconclusive" in text and "bit-exact with TFLM" in text
    assert table.failures() == []


def test_a_network_that_breaks_a_budget_or_the_reference_is_named():
    table = codesign_table({(65536, 0): record(65536, 0, 0.9, 0.9, 0.9, sram=70_000, ratio=1.08, exact=False)})
    failures = table.failures()
    assert len(failures) == 3 and all(line.startswith("SRAM 65,536 B, evolution, seed 0:") for line in failures)
    assert "peak SRAM 70,000 B over 65,536 B" in failures[0] and "+8.0 %" in failures[1]
    assert "Checks that failed:" in table.markdown()
    assert table.to_json()["checks_failed"] == failures


def test_runs_made_differently_are_refused():
    mixed = records({65536: [(0.9, 0.9, 0.9)]})
    mixed[(32768, 0)] = record(32768, 0, 0.9, 0.9, 0.9, latency=LATENCY + 1)
    with pytest.raises(LabError, match=r"differ in their latency budget: 10000000 \(SRAM 65,536 B, seed 0\) against 10000001"):
        codesign_table(mixed)
    with pytest.raises(LabError, match="filed as SRAM 32,768 B seed 0 is of SRAM 65,536 B"):
        codesign_table({(32768, 0): record(65536, 0, 0.9, 0.9, 0.9)})
    with pytest.raises(LabError, match="no run records"):
        codesign_table({})


def test_the_command_runs_only_what_is_missing_with_the_first_runs_median(tmp_path, monkeypatch, capsys):
    """The first run of the plan resolves `median`; every later run gets its number, and so do the
    runs of a later call on the same folder. A recorded run is read, not run again; each new record
    is written as its run ends."""
    import tinylab_cli.nas_run
    from tinylab_cli.main import main

    runs = tmp_path / "runs"
    asked = []

    def nas_run_report(args):
        asked.append((args.sram, args.seed, args.latency, args.budget))
        assert len(list(runs.glob("*.json"))) == len(asked) - 1  # the earlier runs' records are written already
        return record(args.sram, args.seed, 0.92, 0.91, 0.90 - 0.01 * args.seed,
                      latency=LATENCY if args.latency == "median" else args.latency)

    monkeypatch.setattr(tinylab_cli.nas_run, "nas_run_report", nas_run_report)
    assert main(["nas", "codesign", "--srams", "64K,32K", "--seeds", "0", "--budget", "full",
                 "--runs", str(runs)]) == 0
    assert asked == [(65536, 0, "median", "full"), (32768, 0, LATENCY, "full")]
    out = capsys.readouterr().out
    assert "=== co-design run 1/2: SRAM 64K, seed 0, latency budget median" in out
    assert "=== co-design run 2/2: SRAM 32K, seed 0, latency budget 10,000,000" in out

    assert main(["nas", "codesign", "--srams", "64K,32K", "--seeds", "0,1", "--budget", "full",
                 "--runs", str(runs)]) == 0
    assert asked[2:] == [(65536, 1, LATENCY, "full"), (32768, 1, LATENCY, "full")]
    assert sorted(p.name for p in runs.iterdir()) == ["32K-s0.json", "32K-s1.json", "64K-s0.json", "64K-s1.json"]
    assert "| (a) uniform (k3 e6, full depth, from scratch) | 90.00 / 89.00 | 89.50 % |" in capsys.readouterr().out

    assert main(["nas", "codesign", "--srams", "64K,32K,16K", "--seeds", "0,1", "--runs", str(runs),
                 "--table-only", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert [b["sram_bytes"] for b in table["budgets"]] == [65536, 32768]
    assert table["missing"] == ["16K-s0.json", "16K-s1.json"]
    assert len(asked) == 4  # --table-only ran nothing


def test_bad_codesign_settings_are_refused(tmp_path, capsys):
    from tinylab_cli.main import main

    assert main(["nas", "codesign", "--runs", str(tmp_path), "--table-only"]) != 0
    assert "holds no run record" in capsys.readouterr().err
    (tmp_path / "64K-s0.json").write_text("{}")
    assert main(["nas", "codesign", "--runs", str(tmp_path), "--table-only", "--srams", "64K", "--seeds", "0"]) != 0
    assert "is not a `nas run --json` record" in capsys.readouterr().err
    for flags in (["--srams", "64K,64K"], ["--seeds", "0,x"]):
        with pytest.raises(SystemExit):
            main(["nas", "codesign", "--table-only", *flags])
        assert "is not a list of" in capsys.readouterr().err


def test_a_latency_budget_other_than_the_recorded_runs_is_refused(tmp_path, capsys):
    from tinylab_cli.main import main

    (tmp_path / "64K-s0.json").write_text(json.dumps(record(65536, 0, 0.9, 0.9, 0.9)))
    assert main(["nas", "codesign", "--runs", str(tmp_path), "--latency", "5000000"]) != 0
    assert "--latency 5,000,000, but the runs recorded" in capsys.readouterr().err
    (tmp_path / "64K-s1.json").write_text(json.dumps(record(65536, 1, 0.9, 0.9, 0.9, latency=LATENCY + 1)))
    assert main(["nas", "codesign", "--runs", str(tmp_path)]) != 0
    assert "made with different latency budgets" in capsys.readouterr().err
