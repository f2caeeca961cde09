"""The search with patches (`--patches auto`, nas/patching.py): the plan a network that does not
fit whole gets, its arena equal to the compiler's for that grid on the quantised model, its halo
split by layer, and the constraints, the space optimisation and the latency prediction using it."""
from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from engine.compiler import compile_graph
from engine.fold import fold_pad
from engine.patches.choose import AUTO_MAX_EXTRA
from engine.patches.rewrite import patch_graph
from engine.quantize import quantize_model
from engine.zoo import seeded_model, synthetic_images
from nas.arch import sample_arch
from nas.constraints import Constraints
from nas.footprint import footprint
from nas.layers import network_layers
from nas.lut import LatencyTable, LutError
from nas.overhead import BoardOverhead
from nas.patching import layer_halo, patch_latency, plan_patches
from nas.shapegraph import network_graph
from nas.space import get_space
from nas.space_opt import Budget, sample_point, summarise

FASHION = get_space("fashion-mnist")
# Networks of the default space whose whole-tensor arena exceeds 60 KB (W=1, R=32).
LIMIT = 60_000
OVERHEAD = BoardOverhead("qemu-f412", "test", sram_bytes=500, stack_bytes=400, code_base_bytes=40_000,
                         code_per_op_bytes=1_100.0, patch_code_base_bytes=3_800, patch_code_per_op_bytes=32.0)


def _over_limit(count: int, seed: int = 3):
    rng = random.Random(seed)
    found = []
    while len(found) < count:
        config = FASHION.sample(rng, width=1.0, resolution=32)
        if footprint(config).arena_bytes > LIMIT:
            found.append(config)
    return found


def test_a_patch_plan_fits_the_limit_and_its_arena_is_the_compiler_s():
    """On quantised models: the plan's arena equals compile_graph's with that grid (the search's
    peak is the firmware's), it fits the limit, and its estimated extra compute is within the cap."""
    for index, config in enumerate(_over_limit(2)):
        plan = plan_patches(config, LIMIT)
        assert plan is not None, config
        assert plan.arena_bytes <= LIMIT < footprint(config).arena_bytes
        assert 0 < plan.estimated_extra <= AUTO_MAX_EXTRA
        graph = quantize_model(seeded_model(config, index), synthetic_images(config, 4, index + 100), pool="MEAN")
        compiled = compile_graph(graph, wide_budget=0, patches=plan.grid)
        assert compiled.plan.arena_bytes == plan.arena_bytes, (config, plan.grid)


def test_no_plan_when_the_limit_is_below_every_floor():
    config = _over_limit(1)[0]
    input_bytes = config.input_size ** 2 * config.input_channels
    assert plan_patches(config, input_bytes) is None  # the input alone fills it
    assert plan_patches(config, LIMIT, max_extra=0.0) is None  # every plan recomputes something


def test_the_halo_split_by_layer_adds_up_to_the_plan_s():
    config = _over_limit(1, seed=5)[0]
    plan = plan_patches(config, LIMIT)
    graph = fold_pad(network_graph(config))
    shares = layer_halo(graph, patch_graph(graph, plan.grid))
    assert shares == plan.layer_halo and set(shares) == set(range(len(shares)))  # stem, then blocks in order
    layers = network_layers(config)
    assert sum(layers[i].macs * share for i, share in shares.items()) == pytest.approx(plan.halo_macs, rel=1e-9)
    assert all(share >= 0 for share in shares.values())


def _table(config) -> LatencyTable:
    """A table with a made-up latency per layer (its MACs), for the arithmetic of the prediction."""
    from nas.lutkey import LatencyKey

    key = LatencyKey("qemu-f412", "optimized", "k", "g", "gcc", ())
    layers = {layer.key: float(layer.macs) for layer in network_layers(config)}
    return LatencyTable(key, "instructions", overhead=10_000.0, layers=layers, overhead_code=40_000,
                        code={k: 1_000 for k in layers},
                        patch_cost={FASHION.at(1.0, 32).name: (700.0, 1_500.0)})


def test_the_patched_latency_is_the_halo_s_share_of_the_layers_and_the_patch_ops():
    config = _over_limit(1, seed=5)[0]
    plan = plan_patches(config, LIMIT)
    table = _table(config)
    # With each layer's latency its MACs, the halo's part is the plan's halo MACs.
    space = FASHION.at(1.0, 32).name
    assert patch_latency(table, space, config, plan) == pytest.approx(plan.halo_macs + 700.0 + 1_500.0 * plan.patch_ops)
    with pytest.raises(LutError, match="no patch op cost measured for space fashion-mnist@w1r28.*--patches"):
        patch_latency(table, FASHION.at(1.0, 28).name, config, plan)  # measured for another (W, R)


def test_constraints_let_a_network_fit_with_patches_only_when_asked():
    rng = random.Random(11)
    budget = LIMIT + OVERHEAD.sram_bytes
    while True:
        arch = sample_arch(FASHION.stages, rng)
        config = FASHION.network(arch, 1.0, 32)
        if footprint(config).arena_bytes > LIMIT and plan_patches(config, LIMIT) is not None:
            break
    table = _table(config)
    whole = Constraints(FASHION, 1.0, 32, OVERHEAD, budget, 2_000_000, None, table)
    patched = Constraints(FASHION, 1.0, 32, OVERHEAD, budget, 2_000_000, None, table, patches=True)
    assert whole.violation(arch) == "sram" and whole.figures(arch).patches is None
    f, plain = patched.figures(arch), whole.figures(arch)
    plan = plan_patches(config, LIMIT)
    assert patched.violation(arch) is None and f.patches == str(plan.grid)
    assert f.peak_sram_bytes == plan.arena_bytes + OVERHEAD.sram_bytes <= budget
    assert f.flash_bytes == plain.flash_bytes + OVERHEAD.patch_code_bytes(plan.patch_ops)
    assert f.latency == pytest.approx(plain.latency + patch_latency(table, FASHION.at(1.0, 32).name, config, plan))
    assert "patches allowed" in patched.describe()


def test_the_space_optimisation_counts_networks_that_fit_with_patches():
    space = replace(FASHION, widths=(1.0,), resolutions=(32,))
    budget = Budget(LIMIT + OVERHEAD.sram_bytes, 2_000_000)
    plain = summarise(sample_point(space, 1.0, 32, 12, seed=0), OVERHEAD, budget)
    sample = sample_point(space, 1.0, 32, 12, seed=0, patch_limit=LIMIT)
    with_patches = summarise(sample, OVERHEAD, budget)
    assert plain.patched == 0 and with_patches.patched > 0
    assert with_patches.fitting == plain.fitting + with_patches.patched
    needed = sample.arena > LIMIT
    assert np.all(sample.patched_arena[~needed] == -1)
    assert np.all((sample.patched_arena[needed] == -1) | (sample.patched_arena[needed] <= LIMIT))
