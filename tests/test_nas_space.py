"""The search space and its optimisation: the width multiplier, space files, the shape-only
footprint against the full compiler on quantised models, the choice of (W, R), and `tinylab nas
space` end to end on QEMU."""
from __future__ import annotations

import argparse
import json
import random
from dataclasses import replace

import numpy as np
import pytest

from engine.compiler import compile_graph
from engine.quantize import quantize_model
from engine.zoo import seeded_model, synthetic_images
from hil.sizes import byte_count
from nas.footprint import footprint
from nas.shapegraph import network_graph
from nas.space import (SPACES, SearchSpace, SpaceError, StageChoices, load_space, make_divisible, save_space,
                       space_to_dict)
from nas.space_opt import GridPoint, choose, sample_grid
from conftest import needs_arm_gcc, needs_qemu
from tinylab_cli.main import main

FASHION = SPACES["fashion-mnist"]


def test_make_divisible_rounds_to_eight_never_below_eight_nor_ten_percent_down():
    assert make_divisible(16 * 0.2) == 8  # at least 8
    assert make_divisible(24 * 0.5) == 16  # 12: half-way rounds up
    assert make_divisible(96 * 0.7) == 64  # 67.2 -> 64, within 10 %
    assert make_divisible(32 * 0.6) == 24  # 19.2 -> 16 would be 17 % down: one step up
    assert make_divisible(40 * 1.0) == 40


def test_width_scales_every_layer_but_the_input_and_the_classes():
    config = FASHION.sample(random.Random(3), width=0.5, resolution=20)
    assert config.input_size == 20 and config.input_channels == 1 and config.num_classes == 10
    assert config.stem_channels == 16 and config.stages[0].channels == 8  # 32 * 0.5, 16 * 0.5
    stage_channels = {s.channels for s in config.stages[1:]}
    assert stage_channels <= {make_divisible(c.channels * 0.5) for c in FASHION.stages} == {16, 24, 40, 48}
    assert all(s.channels % 8 == 0 for s in config.stages)
    scaled = FASHION.at(0.3)
    assert [s.channels for s in scaled.stages] == [8, 16, 24, 32] and scaled.widths == (1.0,)
    # The choices drawn do not depend on the width: the same blocks, scaled.
    wide = FASHION.sample(random.Random(3), width=1.0, resolution=20)
    assert [(s.expand, s.kernel, s.stride) for s in wide.stages] == [(s.expand, s.kernel, s.stride) for s in config.stages]
    depths = [len(FASHION.sample(random.Random(i), 1.0, 16).stages) - 1 for i in range(40)]
    assert min(depths) >= 8 and max(depths) <= 16  # four stages of depth 2..4


def test_the_default_grid_is_the_issues():
    assert FASHION.resolutions == (16, 20, 24, 28, 32)
    assert FASHION.widths == pytest.approx(tuple(w / 10 for w in range(2, 11)))
    assert len(FASHION.grid) == 45
    assert all(s.expands == (3, 4, 6) and s.kernels == (3, 5, 7) and s.repeats == (2, 3, 4) for s in FASHION.stages)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_space_file_round_trips(tmp_path, suffix):
    path = save_space(FASHION, tmp_path / f"space{suffix}")
    assert load_space(str(path)) == FASHION
    mine = replace(FASHION, name="mine", widths=(0.25, 0.5), stages=(StageChoices(16, 2, (1, 2), (2,), (3, 5)),))
    assert load_space(save_space(mine, tmp_path / f"mine{suffix}")) == mine


def test_a_malformed_space_file_is_refused_with_the_field(tmp_path):
    data = space_to_dict(FASHION)
    data["stages"][1]["kernels"] = [3, 4]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(SpaceError, match=r"stages\[1\]\.kernels.*odd"):
        load_space(tmp_path / "bad.json")
    (tmp_path / "extra.yaml").write_text("name: x\nresolutions: [8]\nstages: [{channels: 8, stride: 1, repeats: [1]}]\ndepth: 3\n")
    with pytest.raises(SpaceError, match="unknown field.*depth"):
        load_space(tmp_path / "extra.yaml")
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "none.yaml")
    with pytest.raises(SpaceError, match="unknown search space 'nope'"):
        load_space("nope")


def test_the_command_s_defaults_are_the_search_s():
    import nas.space
    import nas.space_opt
    import tinylab_cli.nas

    assert tinylab_cli.nas.DEFAULT_SPACE == nas.space.DEFAULT_SPACE
    assert tinylab_cli.nas.DEFAULT_MIN_FIT == nas.space_opt.DEFAULT_MIN_FIT


def test_byte_counts_for_memory_budgets():
    assert byte_count("48K") == 48 * 1024 and byte_count("1M") == 1 << 20 and byte_count("65536") == 65536
    with pytest.raises(argparse.ArgumentTypeError):
        byte_count("64Q")


def test_the_shape_only_footprint_equals_the_full_compiler_on_quantised_models():
    """The arena and int8 constants from shapes alone equal compile_graph's on the quantised torch model."""
    rng = random.Random(13)
    small = replace(FASHION, resolutions=(16, 20), widths=(0.2, 0.5))
    for index in range(4):
        config = small.sample(rng)
        graph = quantize_model(seeded_model(config, index), synthetic_images(config, 4, index + 100), pool="MEAN")
        compiled = compile_graph(graph, wide_budget=0)
        shape_only = network_graph(config)
        assert [op.kind for op in shape_only.ops] == [op.kind for op in graph.ops]
        assert [t.shape for t in shape_only.tensors] == [t.shape for t in graph.tensors]
        found = footprint(config)
        assert found.arena_bytes == compiled.plan.arena_bytes, config
        assert found.constant_bytes == compiled.generated.weight_bytes, config
        assert found.ops == len(compiled.graph.ops)


def _point(width, resolution, fitting, samples=10, macs=1.0):
    return GridPoint(width, resolution, samples, fitting, 0, macs, {50: 0}, {50: 0}, np.full(fitting, macs))


def test_the_choice_is_the_highest_mean_macs_among_the_spaces_that_fit_often_enough():
    points = [_point(0.5, 16, 10, macs=2e6), _point(0.5, 24, 6, macs=3e6), _point(1.0, 24, 2, macs=9e6),
              _point(1.0, 16, 5, macs=2.5e6)]
    assert (choose(points, 0.5).width, choose(points, 0.5).resolution) == (0.5, 24)  # 9e6 fits only 20 %
    assert choose(points, 0.1).macs_fitting[0] == 9e6  # unguarded: MCUNet's rule alone
    assert choose(points, 0.7).resolution == 16 and choose(points, 0.7).width == 0.5
    with pytest.raises(SpaceError, match=r"at least 100%.*at best 90.0% of the networks fit, at W=0.5, R=16"):
        choose([_point(0.5, 16, 9), _point(1.0, 16, 4)], 1.0)
    with pytest.raises(SpaceError, match="no sampled network fits"):
        choose([_point(0.5, 16, 0)], 0.5)


def test_a_grid_s_samples_are_kept_and_read_back_only_under_the_same_arguments_and_code(tmp_path, monkeypatch):
    import nas.sample_cache as sample_cache

    monkeypatch.setenv("TINYLAB_CACHE", str(tmp_path))
    space = replace(FASHION, name="small-grid", widths=(0.3,), resolutions=(16, 20))
    first = list(sample_grid(space, samples=4, seed=5))
    assert [s.from_cache for s in first] == [False, False]
    again = list(sample_grid(space, samples=4, seed=5))
    assert [s.from_cache for s in again] == [True, True]
    for kept, computed in zip(again, first):
        assert (kept.width, kept.resolution) == (computed.width, computed.resolution)
        for name in sample_cache.ARRAYS:
            assert np.array_equal(getattr(kept, name), getattr(computed, name)) if getattr(computed, name) is not None \
                else getattr(kept, name) is None
    # Another seed, another number of networks, another patch limit: sampled anew.
    assert not any(s.from_cache for s in sample_grid(space, samples=4, seed=6))
    assert not any(s.from_cache for s in sample_grid(space, samples=3, seed=5))
    assert not any(s.from_cache for s in sample_grid(space, samples=4, seed=5, patch_limit=4096))
    # A file that cannot be read is computed again and replaced.
    broken = sample_cache.sample_path(space, 0.3, 16, 4, 5, None)
    broken.write_bytes(b"not a sample")
    assert [s.from_cache for s in sample_grid(space, samples=4, seed=5)] == [False, True]
    assert sample_cache.load_sample(broken) is not None
    # Other code (the planner, the footprint, the space's sampling): sampled anew.
    monkeypatch.setattr(sample_cache, "sampling_code_digest", lambda: "0" * 16)
    assert not any(s.from_cache for s in sample_grid(space, samples=4, seed=5))
    assert not any(s.from_cache for s in sample_grid(space, samples=4, seed=5, cache=False))


@needs_arm_gcc
@needs_qemu
def test_nas_space_runs_end_to_end_on_qemu(tmp_path, capsys):
    space = replace(FASHION, name="small-grid", widths=(0.25, 1.0), resolutions=(16, 32))
    path = save_space(space, tmp_path / "small.yaml")
    figure = tmp_path / "cdf.png"
    args = ["nas", "space", "--board", "qemu-f412", "--space", str(path), "--sram", "64K", "--flash", "512K",
            "--samples", "8", "--jobs", "1", "--figure", str(figure)]
    assert main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"board", "space", "samples", "seed", "min_fit", "budget", "overhead", "grid", "choice", "figure",
            "timing"} <= set(result)
    assert result["budget"] == {"sram_bytes": 65536, "flash_bytes": 524288}
    assert [(p["width"], p["resolution"]) for p in result["grid"]] == space.grid
    assert all(0 <= p["fit_share"] <= 1 and p["samples"] == 8 for p in result["grid"])
    overhead = result["overhead"]
    assert overhead["board"] == "qemu-f412" and overhead["sram_bytes"] > 0 and overhead["code_per_op_bytes"] > 0
    assert result["overhead_measured_now"] is True
    best = max((p for p in result["grid"] if p["fit_share"] >= 0.5), key=lambda p: p["mean_macs_fitting"])
    assert (result["choice"]["width"], result["choice"]["resolution"]) == (best["width"], best["resolution"])
    assert figure.stat().st_size > 0
    assert result["timing"]["networks_sampled_now"] == 32
    # The table, from the cached overhead and samples; and a budget nothing fits is refused with the reason.
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "measured before, from the cache" in out and "<- chosen" in out
    assert "4 of 4 (W, R) sampled before" in out and "(0 sampled now)" in out
    assert main(args[:-6] + ["--sram", "2K", "--samples", "2", "--jobs", "1", "--figure", str(figure)]) == 2
    assert "no (W, R) of the grid has at least 50%" in capsys.readouterr().err
