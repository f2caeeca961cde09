"""`tinylab nas run` (`tinylab_cli/nas_run.py`): the issue's command with the quick budget end to
end on qemu-f412, from an empty cache (its own latency table), as on a clean clone; the uniform
baseline's choice, the median latency budget, the budgets' names and the --latency argument."""
from __future__ import annotations

import argparse
import json

import pytest

from conftest import needs_arm_gcc, needs_qemu
from hil.errors import LabError
from hil.store.results import open_store
from nas.arch import Arch
from nas.baseline import Measured, uniform_arch, uniform_baseline
from nas.budgets import BUDGETS, run_budget
from nas.constraints import Constraints, median_latency
from nas.overhead import BoardOverhead
from nas.space import get_space
from tinylab_cli.nas_run import BUDGET_CHOICES, latency_argument

FMNIST = get_space("fashion-mnist")
OVERHEAD = BoardOverhead(board="fake", key="fake", sram_bytes=500, stack_bytes=500, code_base_bytes=20000,
                         code_per_op_bytes=1000.0)


def test_budget_names_and_the_latency_argument():
    assert tuple(BUDGETS) == BUDGET_CHOICES
    full = run_budget("full")
    # The floor for the full budget.
    assert full.train_images is None and full.epochs >= 10 and full.population >= 50 and full.generations >= 20
    assert full.val_images >= 2000 and full.target_images >= 50
    with pytest.raises(LabError, match="budget 'huge': one of quick, full"):
        run_budget("huge")
    assert latency_argument("median") == "median" and latency_argument("2.5e6") == 2.5e6
    for bad in ("fast", "-3"):
        with pytest.raises(argparse.ArgumentTypeError):
            latency_argument(bad)


def test_the_uniform_baseline_is_k3e6_at_full_depth():
    arch = uniform_arch(FMNIST)
    assert arch.depths == tuple(max(stage.repeats) for stage in FMNIST.stages)
    assert {(b.kernel, b.expand) for stage in arch.stages for b in stage} == {(3, 6)}


def test_the_baseline_is_the_most_macs_that_fits_as_measured():
    asked = []

    def measure_of(width, resolution, network):
        asked.append((width, resolution))
        if len(asked) == 1:
            return None  # the biggest does not fit the flash
        latency = 1000.0 * width * resolution
        return Measured(latency, "instructions", 10_000, 100_000)

    found = uniform_baseline(FMNIST, OVERHEAD, 64 * 1024, 512 * 1024, 15_000.0, measure_of)
    assert found.measured.latency <= 15_000.0 and found.arch == uniform_arch(FMNIST)
    assert len(found.tried) == len(asked) - 1 and "exceeds" in found.tried[0]
    assert "latency" in found.tried[-1] if len(found.tried) > 1 else True
    # What was passed over had more MACs (they are tried in that order).
    from nas.footprint import footprint

    macs = [footprint(FMNIST.network(found.arch, w, r)).macs for w, r in asked]
    assert macs == sorted(macs, reverse=True)
    with pytest.raises(LabError, match="fits no \\(W, R\\) of fashion-mnist as measured"):
        uniform_baseline(FMNIST, OVERHEAD, 64 * 1024, 512 * 1024, 1.0, lambda w, r, n: Measured(9.0, "i", 1, 1))
    with pytest.raises(LabError, match="least predicted peak SRAM"):
        uniform_baseline(FMNIST, OVERHEAD, 1000, 512 * 1024, None, measure_of)


def test_the_median_latency_budget_binds_half_of_the_fitting_networks():
    from tests.test_nas_evolution import SPACE, fake_table

    constraints = Constraints(SPACE, 1.0, 8, OVERHEAD, 10 ** 9, 10 ** 9, None, fake_table())
    median = median_latency(constraints, 201, seed=4)
    import random

    from nas.arch import sample_arch

    rng = random.Random("4:median-latency")
    values = sorted(constraints.figures(sample_arch(SPACE.stages, rng)).latency for _ in range(201))
    assert median == values[100]
    with pytest.raises(LabError, match="fits SRAM 10 B"):
        median_latency(Constraints(SPACE, 1.0, 8, OVERHEAD, 10, 10 ** 9, None, fake_table()), 20)


@needs_arm_gcc
@needs_qemu
@pytest.mark.longest
def test_nas_run_quick_end_to_end(tmp_path, monkeypatch, capsys):
    """The issue's command, patches allowed (issue 14's joint search): space, its own latency table
    (with the patches' cost), supernet, evolution and random search, the baseline, three networks
    deployed under QEMU, each with the patch plan the search chose for it, the store, the report's
    section."""
    from hil.report.report import make_report
    from tinylab_cli.main import main

    monkeypatch.setenv("TINYLAB_CACHE", str(tmp_path / "cache"))  # no table yet, as on a clean clone
    store = tmp_path / "lab.sqlite"
    assert main(["nas", "run", "--board", "qemu-f412", "--sram", "64K", "--flash", "512K", "--budget", "quick",
                 "--patches", "auto", "--json", "--store", str(store)]) == 0
    printed = capsys.readouterr()
    report = json.loads(printed.out)  # stdout is the JSON alone; the progress went to stderr
    for step in ("== 1/6 search space", "lut build [", "epoch 1/1 [", "evolution [", "random search [",
                 "deploying the winner network"):
        assert step in printed.err, step
    print(json.dumps({k: report[k] for k in ("timing", "budget", "space_choice", "latency_table")}, indent=2))
    assert report["latency_table"]["measured_now"] > 0
    winner = report["winner"]
    Arch.parse(winner["architecture"]).check(FMNIST.stages)
    for part in ("predicted", "measured"):
        assert winner[part]["latency_unit"] == "instructions" and winner[part]["latency"] > 0
        assert winner[part]["peak_sram_bytes"] > 0
    measured, predicted, budget = winner["measured"], winner["predicted"], report["budget"]
    assert budget["sram_bytes"] == 65536 and budget["flash_bytes"] == 524288 and budget["latency"] is None
    assert budget["patches"] == "auto"
    assert measured["peak_sram_bytes"] <= budget["sram_bytes"] and measured["flash_bytes"] <= budget["flash_bytes"]
    assert abs(measured["latency"] / predicted["latency"] - 1) <= 0.05
    assert abs(measured["flash_bytes"] / predicted["flash_bytes"] - 1) <= 0.03
    assert winner["matches_reference"] is True and winner["target_matches_host"] is True
    assert 0.1 < winner["int8_accuracy"] <= 1 and 0.1 < winner["float_accuracy"] <= 1
    names = [b["name"] for b in report["baselines"]]
    assert names[0] == "random search" and names[1].startswith("uniform")
    for deployed in [winner] + report["baselines"][:1]:  # the uniform baseline stays whole
        # Built with the plan the search chose, whose arena is the build's exactly.
        assert deployed["measured"]["patches"] == deployed["predicted"]["patches"]
        assert deployed["measured"]["arena_planned_bytes"] == deployed["predicted"]["arena_bytes"]
        assert abs(deployed["measured"]["latency"] / deployed["predicted"]["latency"] - 1) <= 0.05
    for baseline in report["baselines"]:
        assert baseline["matches_reference"] is True and 0 <= baseline["accuracy"] <= 1
        assert baseline["measured"]["peak_sram_bytes"] <= budget["sram_bytes"]
        assert baseline["measured"]["latency_unit"] == "instructions"
    search = report["search"]
    assert search["evolution"]["evaluations"] == search["random"]["evaluations"]  # the control's rule

    with open_store(store) as opened:
        candidates = opened.query(metric="nas_validation_accuracy")
        deployed = opened.query(metric="int8_accuracy")
        table_rows = opened.query(metric="layer_latency")  # the table's build, in the same store, its own run
    roles = sorted(json.loads(r.extra)["role"] for r in deployed)
    assert len(candidates) == search["evolution"]["evaluations"] + search["random"]["evaluations"]
    plans = [json.loads(r.extra)["patches"] for r in candidates]
    assert "off" in plans and len(set(plans)) > 1, set(plans)  # some candidates fit only with patches
    assert roles == ["random", "uniform", "winner"]
    assert {r.run_id for r in candidates + deployed} == {report["store"]["run_id"]}
    assert len(table_rows) == report["latency_table"]["measured_now"] - 2  # the overhead, the patch cost apart
    written = make_report(tmp_path / "report", store=str(store))
    assert len(written.data.searches) == 1 and written.data.sections == []
    html = written.index.read_text()
    assert winner["architecture"] in html

    runs = tmp_path / "runs"  # the co-design table reads this record as one of its runs
    runs.mkdir()
    (runs / "64K-s0.json").write_text(json.dumps(report))
    assert main(["nas", "codesign", "--runs", str(runs), "--srams", "64K", "--seeds", "0", "--table-only"]) == 0
    table = capsys.readouterr().out
    assert f"| (c) evolution | {winner['int8_accuracy'] * 100:.2f} |" in table
    assert "one seed, so inconclusive" in table


def test_the_predictor_learns_a_fitness_and_reports_its_error():
    import random

    from nas.arch import sample_arch
    from nas.predictor import AccuracyPredictor
    from tests.test_nas_evolution import SPACE, k7_count

    rng = random.Random(0)
    scored = {a: 0.5 + 0.03 * k7_count(a) for a in {sample_arch(SPACE.stages, rng) for _ in range(150)}}
    predictor = AccuracyPredictor(SPACE.stages, seed=0)
    error = predictor.fit(scored)
    assert error.held_out == round(len(scored) * 0.2)
    assert error.spearman > 0.9 and error.rmse < 0.03, error
    with pytest.raises(LabError, match="at least 10 scored subnets"):
        AccuracyPredictor(SPACE.stages).fit(dict(list(scored.items())[:5]))


def test_searches_with_a_predictor_score_only_its_samples_and_the_finalists_for_real():
    from dataclasses import replace

    from tests.test_nas_evolution import SPACE, constraints, k7_count
    from tinylab_cli.nas_run import run_searches

    real_calls = []

    def fitness(arch):
        real_calls.append(arch)
        return 0.5 + 0.03 * k7_count(arch)

    budget = replace(run_budget("quick"), population=10, generations=3, predictor_samples=40, finalists=3)
    evolution, control, predicted = run_searches(constraints(), fitness, budget, 0, lambda line: None)
    assert len(predicted.samples) == 40 and set(predicted.finalists) == {"evolution", "random"}
    assert len(real_calls) == 40 + 3 + 3  # the samples, then each search's finalists
    for result in (evolution, control):
        finalists = predicted.finalists[result.method]
        assert result.best in finalists and result.fitness == max(finalists.values())
    assert evolution.evaluations == control.evaluations


def test_bad_settings_are_refused_before_any_work(tmp_path, capsys):
    from tinylab_cli.main import main

    assert main(["nas", "run", "--finetune-epochs", "-1"]) == 2
    assert "--finetune-epochs must be 0 or more, not -1" in capsys.readouterr().err
    assert main(["nas", "run", "--dataset", str(tmp_path / "none")]) == 2
    assert "no folder or .npz file of that name exists" in capsys.readouterr().err
    assert main(["nas", "run", "--sram", "1M"]) == 2
    assert "more than qemu-f412's SRAM" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["nas", "run", "--latency", "soon"])
    assert "'soon' is not a number of the latency table's unit, nor 'median'" in capsys.readouterr().err


def test_an_option_an_action_would_ignore_is_refused_naming_it(capsys):
    """The nas actions share one parser; `nas run --epochs 3` would train for the budget's epochs."""
    from tinylab_cli.main import main
    from tinylab_cli.nas import ACTION_OPTIONS

    assert main(["nas", "run", "--epochs", "3", "--population", "8"]) == 2
    err = capsys.readouterr().err
    assert "nas run does not take --epochs, --population; --budget quick|full sets" in err
    assert main(["nas", "codesign", "--sram", "32K"]) == 2
    assert "nas codesign does not take --sram (its options: --board, --budget," in capsys.readouterr().err
    assert main(["nas", "deploy", "--figure", "cdf.png"]) == 2
    assert "nas deploy does not take --figure" in capsys.readouterr().err
    assert main(["nas", "run", "--no-store"]) == 2
    assert "nas run does not take --no-store" in capsys.readouterr().err
    # A default given again is no change; the refusal comes before any work.
    assert main(["nas", "space", "--epochs", "5", "--sram", "1M"]) == 2
    assert "more than qemu-f412's SRAM" in capsys.readouterr().err
    assert ACTION_OPTIONS["codesign"] >= {"srams", "seeds", "runs", "table_only", "latency", "store"}
    # Every option of the shared parser is read by some action: a new flag needs its row in the table.
    import argparse

    from tinylab_cli.nas import add_arguments
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    read = set().union(*ACTION_OPTIONS.values()) | {"action", "board", "destinations"}
    assert set(vars(parser.parse_args(["run"]))) <= read
