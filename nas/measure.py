"""Measuring the latency table and validating it: tiny one-layer networks and whole random networks
of a search space, built through the engine and run on a board (or QEMU)."""
from __future__ import annotations

import math
import os
import random
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from engine.export import export_tflite
from engine.fold import fold_pad
from engine.patches.rewrite import PatchGrid, first_stage
from engine.quantize import quantize_model
from engine.torch_models import TinyMobileNetConfig
from engine.zoo import seeded_model, synthetic_images
from hil.experiments.modelrun import ModelRun, engine_provenance, run_model
from hil.experiments.models import ModelSource, default_input
from hil.store.provenance import Provenance
from hil.targets.boardspec import BoardSpec
from nas.layers import Layer, network_layers, network_macs
from nas.footprint import footprint
from nas.lut import LatencyTable, LutError, predict_flash, save_table
from nas.lutkey import LUT_KERNELS
from nas.lutunit import table_metric
from nas.patching import SearchPatchPlan, grid_plan, halo_latency, patch_latency
from nas.shapegraph import network_graph
from nas.space import SearchSpace
from nas.workers import process_pool

SEED = 7
OVERHEAD_KEY = "overhead"
# The "empty" network for the fixed overhead: one 1x1 conv on a 1x1x1 input.
OVERHEAD_LAYER = Layer("conv", 1, 1, 1, 1)


def seeded_module(build: Callable[[], nn.Module], input_shape: tuple[int, int, int], seed: int = SEED) -> nn.Module:
    """`build()` with seeded weights and non-trivial BatchNorm statistics, as `engine.zoo.seeded_model`
    does. The module is built after seeding, so its weights never depend on the caller's random state."""
    shape = SimpleNamespace(input_shape=input_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build().double()
        generator = torch.Generator().manual_seed(seed + 1)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.data.uniform_(0.5, 1.5, generator=generator)
                m.bias.data.normal_(0.0, 0.2, generator=generator)
                m.momentum = None
        module.train()
        with torch.no_grad():
            for batch in range(2):
                module(synthetic_images(shape, 8, seed + 100 + batch))
    return module.eval()


def layer_source(layer: Layer, name: str) -> ModelSource:
    module = seeded_module(layer.module, layer.input_shape)
    calibration = synthetic_images(SimpleNamespace(input_shape=layer.input_shape), 8, SEED + 1000)
    graph = quantize_model(module, calibration, name=name, pool="MEAN")
    return ModelSource(name=name, tflite=export_tflite(graph), _graph=graph)


def network_source(config: TinyMobileNetConfig, name: str, seed: int = SEED) -> ModelSource:
    graph = quantize_model(seeded_model(config, seed), synthetic_images(config, 8, seed + 1000), name=name, pool="MEAN")
    return ModelSource(name=name, tflite=export_tflite(graph), _graph=graph)


def measure(board: BoardSpec, source: ModelSource, flash_budget: int | None = None,
            patches: PatchGrid | None = None, cycle_model: str | None = None) -> ModelRun:
    """One run of `source`; with `cycle_model` (auto, m4, m7), profiled and its timed window estimated."""
    run = run_model(board, source, default_input(source.graph), kernels=LUT_KERNELS, flash_budget=flash_budget,
                    patches=patches or "off", cycle_model=cycle_model)
    if not run.matches_reference:
        raise LutError(f"{source.name} on {board.name}: output differs from TFLite Micro's; not measuring it")
    return run


def measure_layer(board: BoardSpec, layer: Layer, name: str, cycle_model: str | None = None) -> ModelRun:
    """One layer alone, as a tiny network (a worker process runs this)."""
    return measure(board, layer_source(layer, name), cycle_model=cycle_model)


def measure_network(board: BoardSpec, config: TinyMobileNetConfig, name: str, seed: int,
                    flash_budget: int | None = None, patches: PatchGrid | None = None,
                    cycle_model: str | None = None) -> ModelRun:
    """A network of the space (a worker process runs this), built within `flash_budget` (default:
    the board's flash), whole or with its first ops on `patches`."""
    return measure(board, network_source(config, name, seed), flash_budget, patches, cycle_model)


def cycle_model_choice(table: LatencyTable) -> str | None:
    """What the runs of `table` pass as run_model's cycle_model: None unless it is estimated."""
    return table.cycle_model.choice if table.cycle_model else None


def table_latency(table: LatencyTable, label: str, run: ModelRun) -> float:
    """The run's latency in the table's unit: what it measured, or for a table in estimated cycles,
    the estimate of the same timed window (never one in place of the other)."""
    model = table.cycle_model
    if model is None:
        if table.unit and run.unit != table.unit:
            raise LutError(f"{label}: measured in {run.unit}, but the table holds {table.unit}")
        return run.latency
    if run.cycles is None or run.cycles.model != model.name:
        raise LutError(f"{label}: the run has {'no estimate' if run.cycles is None else run.cycles.model + ' estimates'}"
                       f", but the table holds estimated_cycles of {model.name}")
    return run.cycles.cycles


@dataclass(frozen=True)
class Job:
    """One measurement to make: `function(*args)`, a module-level function so that a worker
    process can run it."""

    label: str
    function: Callable[..., ModelRun]
    args: tuple


def default_jobs() -> int:
    """One QEMU instance per core."""
    return max(1, os.cpu_count() or 1)


def run_jobs(jobs: list[Job], workers: int) -> Iterator[tuple[Job, ModelRun]]:
    """Run `jobs` on `workers` processes (each with its own QEMU), yielding each as it finishes.
    An error or an interruption cancels the jobs not yet started and waits for the running ones."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield job, job.function(*job.args)
        return
    pool = process_pool(min(workers, len(jobs)))
    try:
        futures = {pool.submit(job.function, *job.args): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def missing_keys(space: SearchSpace, table: LatencyTable) -> list[str]:
    """The entries of `space` the table lacks, the fixed overhead first."""
    from nas.layers import space_layers

    return (([OVERHEAD_KEY] if table.overhead is None or table.overhead_code is None else [])
            + [k for k in space_layers(space) if k not in table.layers or k not in table.code])


@dataclass
class BuildReport:
    measured: list[str]
    total_keys: int


Progress = Callable[[str], None]


def build_table(board: BoardSpec, space: SearchSpace, table: LatencyTable, path, store=None,
                progress: Progress | None = None, jobs: int = 1) -> BuildReport:
    """Measure the overhead and every key of `space` missing from `table` on `jobs` QEMU instances
    at once, writing the table after each one (so an interrupted build resumes where it stopped).
    `progress` is called once per measured key."""
    from nas.layers import space_layers

    progress = progress or (lambda line: None)
    provenance: Provenance | None = None
    wanted = space_layers(space)
    missing = missing_keys(space, table)
    measured: list[str] = []
    if OVERHEAD_KEY in missing:  # every layer's figure is its network's latency less this overhead
        missing.remove(OVERHEAD_KEY)
        overhead_run = measure_layer(board, OVERHEAD_LAYER, f"lut:{OVERHEAD_KEY}", cycle_model_choice(table))
        provenance = _record(table, path, store, provenance, board, OVERHEAD_KEY, overhead_run)
        measured.append(OVERHEAD_KEY)
        progress(f"{OVERHEAD_KEY}: {table.overhead:,.0f} {table.unit}")
    work = [Job(key, measure_layer, (board, wanted[key], f"lut:{key}", cycle_model_choice(table))) for key in missing]
    for job, run in run_jobs(work, jobs):
        provenance = _record(table, path, store, provenance, board, job.label, run)
        measured.append(job.label)
        progress(f"{job.label}: {table.layers[job.label]:,.0f} {table.unit}")
    return BuildReport(measured=measured, total_keys=len(wanted) + 1)


def _record(table: LatencyTable, path, store, provenance: Provenance | None, board: BoardSpec, key: str,
            run: ModelRun) -> Provenance | None:
    """Put one measured key into the table (saved at once) and its figures into the store. A
    layer's figure is its network's less the overhead network's: for a table in estimated cycles,
    the difference of the two runs' estimates."""
    latency = table_latency(table, key, run)
    if run.flash_parts is None:
        raise LutError(f"{key}: the build reported no flash breakdown; its code size is unknown")
    table.unit = table.unit or run.unit
    code = run.flash - run.flash_parts.weights  # code, harness and int16 weight copies
    if key == OVERHEAD_KEY:
        table.overhead = value = latency
        table.overhead_code = code
    else:
        value = table.layers[key] = latency - table.overhead
        table.code[key] = code - table.overhead_code
    save_table(table, path)
    if store is not None:
        provenance = provenance or engine_provenance(board, run.backend)
        metric = table_metric("overhead_latency" if key == OVERHEAD_KEY else "layer_latency", table.cycle_model)
        model = {"cycle_model": table.cycle_model.name} if table.cycle_model else {}
        store.add(run.measurements(provenance) + [provenance.measurement(
            run.model, run.model_sha256, metric, value, table.unit, {"key": key, "overhead": table.overhead, **model})])
    return provenance


# --- patches ----------------------------------------------------------------------------------

# The networks and grids one patch op's cost is measured on: seeded networks of the space at its
# largest width and resolution, their first stage (engine.patches.rewrite.first_stage) on square grids.
PATCH_COST_NETWORKS = 2
PATCH_COST_GRIDS = (2, 4)


@dataclass(frozen=True)
class PatchCost:
    network: str
    grid: str
    patch_ops: int
    whole: float  # measured latency of the network with whole tensors
    patched: float  # measured latency with the patches
    halo: float  # the table's latency of the MACs the patches compute again
    own: float  # patched - whole - halo: what the patches cost beyond their MACs


def measure_patch_cost(board: BoardSpec, space: SearchSpace, table: LatencyTable, path, store=None,
                       progress: Progress | None = None, jobs: int = 1) -> list[PatchCost]:
    """Measure what patches cost beyond the MACs they compute again on networks of `space`
    (`LatencyTable.patch_cost[space.name]`) and save it in the table: for each of
    PATCH_COST_NETWORKS networks, the network whole and on each of PATCH_COST_GRIDS, one run each;
    a least-squares line through the pairs in the number of patch ops gives a base and a cost per
    op. The table needs the networks' layers (build it for `space` first)."""
    progress = progress or (lambda line: None)
    rng = random.Random(f"{SEED}:patch-cost")
    estimating = cycle_model_choice(table)
    work: list[Job] = []
    plans: dict[str, tuple[TinyMobileNetConfig, str, SearchPatchPlan]] = {}
    for index in range(PATCH_COST_NETWORKS):
        config = space.sample(rng, width=max(space.widths), resolution=max(space.resolutions))
        name = f"lut:patch-cost:{space.name}:{index}"
        predicted = predict_checked(table, config)  # a missing layer fails before anything runs
        work.append(Job(name, measure_network, (board, config, name, SEED + index, None, None, estimating)))
        for grid in first_stage_grids(config, PATCH_COST_GRIDS, name):
            label = f"{name}@{grid}"
            plans[label] = (config, name, grid_plan(config, grid))
            work.append(Job(label, measure_network, (board, config, label, SEED + index, None, grid, estimating)))
        progress(f"{name}: predicted {predicted:,.0f} {table.unit} whole")
    runs: dict[str, float] = {}  # label -> latency in the table's unit
    provenance = None
    for job, run in run_jobs(work, jobs):
        runs[job.label] = table_latency(table, job.label, run)
        if store is not None:
            provenance = provenance or engine_provenance(board, run.backend)
            store.add(run.measurements(provenance))
        progress(f"{job.label}: {runs[job.label]:,.0f} {table.unit}")
    costs = []
    for label, (config, name, plan) in plans.items():
        whole, patched = runs[name], runs[label]
        halo = halo_latency(table, config, plan)
        costs.append(PatchCost(name, str(plan.grid), plan.patch_ops, whole, patched, halo, patched - whole - halo))
    per_op, base = np.linalg.lstsq(np.column_stack([[c.patch_ops for c in costs], np.ones(len(costs))]).astype(float),
                                   np.array([c.own for c in costs]), rcond=None)[0]
    table.patch_cost[space.name] = (float(base), float(per_op))
    save_table(table, path)
    if store is not None and provenance is not None:
        extra = {"space": space.name, "pairs": [asdict(c) for c in costs],
                 **({"cycle_model": table.cycle_model.name} if table.cycle_model else {})}
        store.add([provenance.measurement(f"lut:patch-cost:{space.name}", "", table_metric("patch_op_latency",
                                          table.cycle_model), float(per_op), table.unit, extra),
                   provenance.measurement(f"lut:patch-cost:{space.name}", "", table_metric("patch_base_latency",
                                          table.cycle_model), float(base), table.unit, extra)])
    return costs


def first_stage_grids(config: TinyMobileNetConfig, sides: tuple[int, ...], name: str) -> list[PatchGrid]:
    """Square grids of `sides` on the network's first stage (engine.patches.rewrite.first_stage)."""
    split = first_stage(fold_pad(network_graph(config)))
    if split is None:
        raise LutError(f"{name}: no stage of the network can run by patches")
    return [PatchGrid(side, side, split) for side in sides]


# --- validation -------------------------------------------------------------------------------


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    result = np.empty(len(values))
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        result[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return result


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def error_figures(measured: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    measured, predicted = np.asarray(measured, float), np.asarray(predicted, float)
    relative = np.abs(predicted - measured) / measured
    return {
        "rmse": float(np.sqrt(np.mean((predicted - measured) ** 2))),
        "mape": float(np.mean(relative) * 100),
        "within_5pct": float(np.mean(relative <= 0.05) * 100),
        "within_10pct": float(np.mean(relative <= 0.10) * 100),
        "spearman": spearman(measured, predicted),
    }


def macs_fit(macs: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """Least-squares latency = a * MACs + b."""
    a, b = np.linalg.lstsq(np.column_stack([macs, np.ones(len(macs))]).astype(float),
                           np.asarray(measured, float), rcond=None)[0]
    return float(a), float(b)


def macs_held_out(macs: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Each network's latency as predicted by a MACs-linear fit to the other networks (leave one
    out), so that the baseline, like the table, never predicts a network it was fitted to."""
    macs, measured = np.asarray(macs, float), np.asarray(measured, float)
    predicted = np.empty(len(macs))
    for i in range(len(macs)):
        others = np.arange(len(macs)) != i
        a, b = macs_fit(macs[others], measured[others])
        predicted[i] = a * macs[i] + b
    return predicted


@dataclass
class Validation:
    unit: str
    samples: list[dict]
    lut: dict[str, float]
    macs_linear: dict[str, float]
    fit: tuple[float, float]  # the MACs-linear fit to all the networks (for the record)
    flash: dict[str, float]  # the table's flash prediction against the measured flash


def validate_table(board: BoardSpec, space: SearchSpace, table: LatencyTable, samples: int, seed: int = 0,
                   store=None, progress: Progress | None = None, jobs: int = 1,
                   patches: tuple[int, Callable[[int], int]] | None = None) -> Validation:
    """Measure `samples` random networks of the space, on `jobs` QEMU instances at once, whole or,
    with `patches` (a grid side and the board's patch code per patch ops), with their first stage on
    that grid; compare with the table's prediction and with a MACs-linear fit scored on held-out
    networks."""
    progress = progress or (lambda line: None)
    rng = random.Random(seed)
    work: list[Job] = []
    predicted: dict[str, float] = {}
    flash_predicted: dict[str, int] = {}
    macs: dict[str, int] = {}
    for index in range(samples):
        config = space.sample(rng)
        name = f"lut-validate:{space.name}:{seed}:{index}"
        predicted[name] = predict_checked(table, config)  # a missing key fails before anything runs
        flash_predicted[name] = predict_flash(table, config, footprint(config).constant_bytes)
        macs[name] = network_macs(config)
        grid = None
        if patches is not None:
            side, patch_code = patches
            grid = first_stage_grids(config, (side,), name)[0]
            plan = grid_plan(config, grid)
            predicted[name] += patch_latency(table, space.name, config, plan)
            flash_predicted[name] += patch_code(plan.patch_ops)
        work.append(Job(name, measure_network, (board, config, name, SEED + index, None, grid,
                                                cycle_model_choice(table))))
    measured: dict[str, float] = {}
    flash_measured: dict[str, int] = {}
    model_extra = {"cycle_model": table.cycle_model.name} if table.cycle_model else {}
    provenance = None
    for job, run in run_jobs(work, jobs):
        name = job.label
        latency = measured[name] = table_latency(table, name, run)
        flash_measured[name] = run.flash
        if store is not None:
            provenance = provenance or engine_provenance(board, run.backend)
            store.add(run.measurements(provenance) + [provenance.measurement(
                name, run.model_sha256, table_metric("latency_predicted", table.cycle_model), predicted[name],
                table.unit, {"space": space.name, **model_extra})])
        progress(f"{name}: {'estimated' if table.cycle_model else 'measured'} {latency:,.0f}, predicted {predicted[name]:,.0f} {table.unit} "
                 f"({(predicted[name] - latency) / latency * 100:+.2f}%)")
    names = [job.label for job in work]
    rows = [{"name": n, "measured": measured[n], "predicted": predicted[n], "macs": macs[n],
             "flash_measured_bytes": flash_measured[n], "flash_predicted_bytes": flash_predicted[n]} for n in names]
    measured_values = np.array([measured[n] for n in names])
    macs_values = np.array([macs[n] for n in names], float)
    held_out = macs_held_out(macs_values, measured_values)
    for row, value in zip(rows, held_out):
        row["predicted_macs_linear"] = float(value)
    a, b = macs_fit(macs_values, measured_values)
    result = Validation(unit=table.unit, samples=rows,
                        lut=error_figures(measured_values, np.array([predicted[n] for n in names])),
                        macs_linear=error_figures(measured_values, held_out), fit=(a, b),
                        flash=error_figures(np.array([flash_measured[n] for n in names], float),
                                            np.array([flash_predicted[n] for n in names], float)))
    if store is not None and provenance is not None:
        model = f"lut-validate:{space.name}:{seed}"
        extra = {"samples": samples, "space": space.name, "macs_fit": [a, b], "macs_scored": "leave-one-out",
                 **model_extra}
        for method, figures in (("lut", result.lut), ("macs_linear", result.macs_linear)):
            for metric, value in figures.items():
                if math.isfinite(value):
                    unit = table.unit if metric == "rmse" else ("ratio" if metric == "spearman" else "percent")
                    metric_name = f"{method}.{metric}" if metric != "rmse" else f"latency_rmse.{method}"
                    metric_name = table_metric(metric_name, table.cycle_model)
                    store.add([provenance.measurement(model, "", metric_name, value, unit, extra)])
    return result


def predict_checked(table: LatencyTable, config: TinyMobileNetConfig) -> float:
    from nas.lut import predict

    return predict(table, config)
