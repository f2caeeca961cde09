"""Evolution and random search over a small space (`nas/evolution.py`): with a cheap known
fitness, evolution beats its first population and random search at equal evaluations; every
evaluated architecture fits the SRAM, flash and latency budgets; a budget nothing fits is refused
with its numbers; a seed gives the same search; mutation and crossover stay in the space; and
`tinylab nas search` runs end to end on a supernet of digits."""
from __future__ import annotations

import json
import random
import statistics
from dataclasses import replace

import pytest

from conftest import needs_arm_gcc, needs_qemu
from nas.arch import Arch, sample_arch
from nas.constraints import Constraints
from nas.evolution import EvolutionConfig, SearchError, crossover, evolve, mutate, random_search
from nas.layers import space_layers
from nas.lut import LatencyTable
from nas.lutkey import LatencyKey
from nas.overhead import BoardOverhead
from nas.space import SearchSpace, StageChoices, save_space

SPACE = SearchSpace(
    name="evo-small", resolutions=(8,), input_channels=1, stem_channels=8, stem_stride=1, first_block_channels=8,
    stages=(StageChoices(channels=16, stride=2, repeats=(1, 2, 3)), StageChoices(channels=24, stride=2, repeats=(1, 2, 3)),
            StageChoices(channels=32, stride=1, repeats=(1, 2, 3))),
)
OVERHEAD = BoardOverhead(board="fake", key="fake", sram_bytes=3000, stack_bytes=1000, code_base_bytes=20000,
                         code_per_op_bytes=400.0)
BIG = 10 ** 9


def fake_table() -> LatencyTable:
    """A table whose layer latencies are their MACs (plus a little per layer)."""
    key = LatencyKey(board="fake", kernels="optimized", kernel_library="x", code_generator="x", toolchain="x",
                     compile_flags=())
    layers = space_layers(SPACE)
    return LatencyTable(key=key, unit="instructions", overhead=5000.0,
                        layers={k: float(layer.macs + 100) for k, layer in layers.items()},
                        overhead_code=20000, code={k: 400 for k in layers})


def constraints(sram: int = BIG, flash: int = BIG, latency: float | None = None) -> Constraints:
    return Constraints(SPACE, 1.0, 8, OVERHEAD, sram, flash, latency, fake_table() if latency is not None else None)


def k7_count(arch: Arch) -> float:
    """Blocks of kernel 7, a tenth for each of expand 6: optimum 9.9 (all 9 blocks k7e6)."""
    return sum((b.kernel == 7) + 0.1 * (b.expand == 6) for stage in arch.stages for b in stage)


def test_mutation_and_crossover_stay_in_the_space():
    rng = random.Random(1)
    for _ in range(200):
        a, b = sample_arch(SPACE.stages, rng), sample_arch(SPACE.stages, rng)
        mutate(a, SPACE.stages, rng, 0.5).check(SPACE.stages)
        child = crossover(a, b, SPACE.stages, rng)
        child.check(SPACE.stages)
        for blocks, ba, bb in zip(child.stages, a.stages, b.stages):
            assert len(blocks) in (len(ba), len(bb))
            assert all(blk in (ba[i:i + 1] + bb[i:i + 1]) for i, blk in enumerate(blocks))
    a = sample_arch(SPACE.stages, rng)
    assert mutate(a, SPACE.stages, rng, 0.0) == a


def test_evolution_beats_its_first_population_and_random_search():
    config = EvolutionConfig(population=16, generations=8)
    evolved, controls = [], []
    for seed in range(3):
        seeded = replace(config, seed=seed)
        result = evolve(constraints(), k7_count, seeded)
        control = random_search(constraints(), k7_count, result.evaluations, seeded)
        assert control.evaluations == result.evaluations
        assert result.fitness > result.history[0].best
        assert [g.index for g in result.history] == list(range(config.generations + 1))
        evolved.append(result.fitness)
        controls.append(control.fitness)
    assert statistics.mean(evolved) > statistics.mean(controls) + 1.0, (evolved, controls)


def test_every_evaluated_arch_fits_the_budgets():
    loose = constraints(latency=BIG)
    archs = [sample_arch(SPACE.stages, random.Random(i)) for i in range(60)]
    sram = sorted(loose.figures(a).peak_sram_bytes for a in archs)[30]
    flash = sorted(loose.figures(a).flash_bytes for a in archs)[45]
    latency = sorted(loose.figures(a).latency for a in archs)[40]
    tight = constraints(sram, flash, latency)
    config = EvolutionConfig(population=12, generations=4, seed=5)
    for result in (evolve(tight, k7_count, config), random_search(tight, k7_count, 40, config)):
        assert result.evaluated
        for arch in result.evaluated:
            f = tight.figures(arch)
            assert f.peak_sram_bytes <= sram and f.flash_bytes <= flash and f.latency <= latency
        assert sum(result.rejected.values()) > 0 and result.rejected["sram"] > 0
        assert result.figures.latency_unit == "instructions" and result.figures.macs > 0
    unbound = evolve(constraints(), k7_count, config)
    assert sum(unbound.rejected.values()) == 0


def test_a_budget_nothing_fits_is_refused_with_its_numbers():
    with pytest.raises(SearchError, match=r"no architecture .* fits .* peak SRAM [\d,]+ B \(budget 1,000 B\)"):
        evolve(constraints(sram=1000), k7_count, EvolutionConfig(population=4, generations=1, max_attempts=20))
    with pytest.raises(SearchError, match=r"latency [\d,]+ instructions \(budget 10 instructions\)"):
        random_search(constraints(latency=10), k7_count, 5, EvolutionConfig(max_attempts=20))


def test_a_seed_gives_the_same_search():
    config = EvolutionConfig(population=10, generations=3, seed=7)
    a, b = evolve(constraints(), k7_count, config), evolve(constraints(), k7_count, config)
    assert (a.best, [g.best for g in a.history], list(a.evaluated)) == (b.best, [g.best for g in b.history], list(b.evaluated))
    c = evolve(constraints(), k7_count, replace(config, seed=8))
    assert list(c.evaluated) != list(a.evaluated)
    r1, r2 = random_search(constraints(), k7_count, 20, config), random_search(constraints(), k7_count, 20, config)
    assert list(r1.evaluated) == list(r2.evaluated)


def test_bad_settings_are_refused():
    with pytest.raises(SearchError, match="population"):
        EvolutionConfig(population=1)
    with pytest.raises(SearchError, match="mutation ratio"):
        EvolutionConfig(mutation_ratio=1.5)


def test_command_defaults_match_the_config():
    import tinylab_cli.nas_search as cli

    defaults = EvolutionConfig()
    assert (cli.DEFAULT_POPULATION, cli.DEFAULT_GENERATIONS) == (defaults.population, defaults.generations)


CLI_SPACE = SearchSpace(
    name="evo-cli", resolutions=(8,), input_channels=1, stem_channels=8, stem_stride=1, first_block_channels=0,
    stages=(StageChoices(channels=16, stride=2, repeats=(1, 2), expands=(3, 6), kernels=(3, 5)),
            StageChoices(channels=24, stride=2, repeats=(1, 2), expands=(3, 6), kernels=(3, 5))),
)


def test_a_missing_supernet_names_the_command_that_makes_it(tmp_path, monkeypatch, capsys):
    from tinylab_cli.main import main

    monkeypatch.setenv("TINYLAB_CACHE", str(tmp_path))
    space = str(save_space(CLI_SPACE, tmp_path / "evo-cli.json"))
    assert main(["nas", "search", "--space", space, "--width", "1", "--resolution", "8", "--dataset", "digits",
                 "--epochs", "1"]) == 2
    assert f"make it with 'tinylab nas train --space {space} --width 1 --resolution 8 --dataset digits --epochs 1" \
        in capsys.readouterr().err
    assert main(["nas", "search", "--dataset", "digits", "--width", "1"]) == 2
    assert "--width and --resolution together" in capsys.readouterr().err


@needs_arm_gcc
@needs_qemu
def test_nas_search_command(tmp_path, monkeypatch, capsys):
    from tinylab_cli.main import main

    monkeypatch.setenv("TINYLAB_CACHE", str(tmp_path))
    space = str(save_space(CLI_SPACE, tmp_path / "evo-cli.json"))
    train = ["--space", space, "--width", "1", "--resolution", "8", "--dataset", "digits", "--epochs", "1",
             "--batch-size", "64", "--subnets", "1"]
    assert main(["nas", "train", *train, "--random-subnets", "0", "--json"]) == 0
    capsys.readouterr()
    search = ["nas", "search", *train, "--board", "qemu-f412", "--sram", "64K", "--flash", "512K",
              "--population", "6", "--generations", "2", "--val-images", "100", "--latency", "1e9", "--json"]
    assert main(search) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["budget"] == {"sram_bytes": 65536, "flash_bytes": 524288, "latency": 1e9,
                                "latency_unit": "instructions", "cycle_model": None}
    assert report["validation_images"] == 100
    for method in ("evolution", "random"):
        best = report[method]
        Arch.parse(best["architecture"]).check(CLI_SPACE.stages)
        assert 0.0 <= best["accuracy"] <= 1.0
        predicted = best["predicted"]
        assert 0 < predicted["peak_sram_bytes"] <= 65536 and 0 < predicted["flash_bytes"] <= 524288
        assert predicted["latency"] > 0 and predicted["latency_unit"] == "instructions" and predicted["macs"] > 0
    assert report["random"]["evaluations"] == report["evolution"]["evaluations"] > 0
    assert len(report["evolution"]["history"]) == 3
    assert report["timing"]["seconds_per_evaluation"] > 0
