"""The differential test of the kernels (engine.differential): seeded random graphs, compiled with
the optimised kernels (int8 and int16 weights) and the portable ones, give TFLite Micro's output
bit for bit on the host build; every kernel variant code generation can choose is reached by some
graph; and a sample of the graphs chosen to reach every variant of the optimised kernels (the
SIMD and assembly paths run only on the target) gives TFLM's output under QEMU on a Cortex-M7 and
a Cortex-M4.

`--graphs N` runs N random graphs instead of the default (more for a deeper search)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine.codegen.kernel_sets import KERNEL_VARIANTS
from engine.differential import Case, inputs_for, make_cases, mismatches, run_cases_on_host, tflm_outputs
from engine.hostbuild import HOST_CC

needs_gcc = pytest.mark.skipif(shutil.which(HOST_CC) is None, reason=f"{HOST_CC} is not installed")
needs_target = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc and qemu-system-arm are needed (scripts/install.sh installs them)",
)
MINIMUM_GRAPHS = 300


@pytest.fixture(scope="module")
def cases(request: pytest.FixtureRequest) -> list[Case]:
    count = request.config.getoption("--graphs")
    assert count >= 1
    return make_cases(range(count))


@needs_gcc
def test_random_graphs_match_tflm_on_the_host(cases: list[Case], request: pytest.FixtureRequest):
    graphs = len({c.seed for c in cases})
    if request.config.getoption("--graphs") >= MINIMUM_GRAPHS:
        assert graphs >= MINIMUM_GRAPHS
    found = mismatches(cases, run_cases_on_host(cases))
    assert not found, f"{len(found)} of {len(cases)} compiled graphs differ from TFLM:\n" + "\n".join(map(str, found[:10]))


@pytest.mark.parametrize("kernels", sorted(KERNEL_VARIANTS))
def test_every_kernel_variant_is_reached(cases: list[Case], kernels: str):
    reached = set().union(*(c.variants for c in cases if c.kernels == kernels))
    missing = KERNEL_VARIANTS[kernels] - reached
    assert not missing, f"no random graph reaches these {kernels} variants: {sorted(missing)}"


def covering_sample(cases: list[Case], kernels: str = "optimized") -> list[Case]:
    """A few cases that together reach every variant of `kernels`, greedily, smallest arenas first."""
    pool = sorted((c for c in cases if c.kernels == kernels), key=lambda c: (c.compiled.plan.arena_bytes, c.seed))
    left, chosen = set(KERNEL_VARIANTS[kernels]), []
    while left:
        best = max(pool, key=lambda c: len(c.variants & left))
        if not best.variants & left:
            break
        chosen.append(best)
        left -= best.variants
    return chosen


@needs_target
@pytest.mark.parametrize("board_name", ["qemu-f746", "qemu-f412"])
def test_a_sample_reaching_every_variant_matches_tflm_under_qemu(cases: list[Case], board_name: str):
    from hil.firmware_build.firmware import build_firmware
    from hil.firmware_build.model_workload import models_workload
    from hil.run.runners import runner_for
    from hil.targets.boards import load_board

    sample = covering_sample(cases)
    assert set().union(*(c.variants for c in sample)) == KERNEL_VARIANTS["optimized"]
    board = load_board(board_name)
    firmware = build_firmware(board, models_workload([(c.compiled, f"seed{c.seed}") for c in sample]))
    wrong = []
    with runner_for(board).open(firmware) as link:
        for case in sample:
            link.select(f"seed{case.seed}")
            for value, want in zip(inputs_for(case), tflm_outputs(case)):
                link.load_input(np.ascontiguousarray(value).tobytes())
                got = np.frombuffer(link.infer(count=1, warmup=0).output, dtype=np.asarray(want).dtype)
                if not np.array_equal(got, np.asarray(want).ravel()):
                    wrong.append(f"{case.describe()}: {int((got != np.asarray(want).ravel()).sum())} values differ")
    assert not wrong, f"{len(wrong)} runs on {board_name} differ from TFLM: " + "; ".join(wrong[:5])
