"""Measuring the latency table and validating it: tiny one-layer networks and whole random networks
of a search space, built through the engine and run on a board (or QEMU)."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch
from torch import nn

from engine.export import export_tflite
from engine.quantize import quantize_model
from engine.torch_models import TinyMobileNetConfig
from engine.zoo import seeded_model, synthetic_images
from hil.boards import BoardSpec
from hil.modelrun import ModelRun, engine_provenance, run_model
from hil.models import ModelSource, default_input
from hil.results import Provenance
from nas.layers import Layer, network_macs
from nas.lut import LatencyTable, LutError, save_table
from nas.space import SearchSpace

SEED = 7
OVERHEAD_KEY = "overhead"
# The "empty" network for the fixed overhead: one 1x1 conv on a 1x1x1 input.
OVERHEAD_LAYER = Layer("conv", 1, 1, 1, 1)


def seeded_module(module: nn.Module, input_shape: tuple[int, int, int], seed: int = SEED) -> nn.Module:
    """Seeded weights and non-trivial BatchNorm statistics, as `engine.zoo.seeded_model` does."""
    shape = SimpleNamespace(input_shape=input_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = module.double()
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
    module = seeded_module(layer.module(), layer.input_shape)
    calibration = synthetic_images(SimpleNamespace(input_shape=layer.input_shape), 8, SEED + 1000)
    graph = quantize_model(module, calibration, name=name, pool="MEAN")
    return ModelSource(name=name, tflite=export_tflite(graph), _graph=graph)


def network_source(config: TinyMobileNetConfig, name: str, seed: int = SEED) -> ModelSource:
    graph = quantize_model(seeded_model(config, seed), synthetic_images(config, 8, seed + 1000), name=name, pool="MEAN")
    return ModelSource(name=name, tflite=export_tflite(graph), _graph=graph)


def measure(board: BoardSpec, source: ModelSource) -> ModelRun:
    run = run_model(board, source, default_input(source.graph))
    if not run.matches_reference:
        raise LutError(f"{source.name} on {board.name}: output differs from TFLite Micro's; not measuring it")
    return run


@dataclass
class BuildReport:
    measured: list[str]
    total_keys: int


def build_table(board: BoardSpec, space: SearchSpace, table: LatencyTable, path, store=None,
                progress: Callable[[str], None] | None = None) -> BuildReport:
    """Measure the overhead and every key of `space` missing from `table`, writing the table after
    each one (so an interrupted build resumes where it stopped)."""
    from nas.layers import space_layers

    progress = progress or (lambda line: None)
    provenance: Provenance | None = None
    wanted = space_layers(space)
    missing = ([OVERHEAD_KEY] if table.overhead is None else []) + [k for k in wanted if k not in table.layers]
    measured: list[str] = []
    for index, key in enumerate(missing, 1):
        layer = OVERHEAD_LAYER if key == OVERHEAD_KEY else wanted[key]
        run = measure(board, layer_source(layer, f"lut:{key}"))
        if table.unit and run.unit != table.unit:
            raise LutError(f"{key}: measured in {run.unit}, but the table holds {table.unit}")
        table.unit = run.unit
        if key == OVERHEAD_KEY:
            table.overhead = run.latency
            value = run.latency
        else:
            value = run.latency - table.overhead
            table.layers[key] = value
        save_table(table, path)
        if store is not None:
            provenance = provenance or engine_provenance(board, run.backend)
            store.add(run.measurements(provenance) + [provenance.measurement(
                run.model, run.model_sha256, "overhead_latency" if key == OVERHEAD_KEY else "layer_latency", value, run.unit,
                {"key": key, "overhead": table.overhead})])
        measured.append(key)
        progress(f"[{index}/{len(missing)}] {key}: {value:,.0f} {run.unit}")
    return BuildReport(measured=measured, total_keys=len(wanted) + 1)


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


@dataclass
class Validation:
    unit: str
    samples: list[dict]
    lut: dict[str, float]
    macs_linear: dict[str, float]
    fit: tuple[float, float]


def validate_table(board: BoardSpec, space: SearchSpace, table: LatencyTable, samples: int, seed: int = 0,
                   store=None, progress: Callable[[str], None] | None = None) -> Validation:
    """Measure `samples` random networks of the space whole; compare with the table's prediction
    and with a MACs-linear fit on the same networks."""
    progress = progress or (lambda line: None)
    rng = random.Random(seed)
    rows: list[dict] = []
    provenance = None
    for index in range(samples):
        config = space.sample(rng)
        predicted = predict_checked(table, config)
        name = f"lut-validate:{space.name}:{seed}:{index}"
        run = measure(board, network_source(config, name, SEED + index))
        if run.unit != table.unit:
            raise LutError(f"{name}: measured in {run.unit}, but the table holds {table.unit}")
        rows.append({"name": name, "measured": run.latency, "predicted": predicted, "macs": network_macs(config)})
        if store is not None:
            provenance = provenance or engine_provenance(board, run.backend)
            store.add(run.measurements(provenance) + [provenance.measurement(
                name, run.model_sha256, "latency_predicted", predicted, run.unit, {"space": space.name})])
        progress(f"[{index + 1}/{samples}] {name}: measured {run.latency:,.0f}, predicted {predicted:,.0f} "
                 f"{run.unit} ({(predicted - run.latency) / run.latency * 100:+.2f}%)")
    measured = np.array([r["measured"] for r in rows])
    predicted = np.array([r["predicted"] for r in rows])
    macs = np.array([r["macs"] for r in rows], float)
    a, b = macs_fit(macs, measured)
    result = Validation(unit=table.unit, samples=rows, lut=error_figures(measured, predicted),
                        macs_linear=error_figures(measured, a * macs + b), fit=(a, b))
    if store is not None and provenance is not None:
        model = f"lut-validate:{space.name}:{seed}"
        extra = {"samples": samples, "space": space.name, "macs_fit": [a, b]}
        for method, figures in (("lut", result.lut), ("macs_linear", result.macs_linear)):
            for metric, value in figures.items():
                if math.isfinite(value):
                    unit = table.unit if metric == "rmse" else ("ratio" if metric == "spearman" else "percent")
                    metric_name = f"{method}.{metric}" if metric != "rmse" else f"latency_rmse.{method}"
                    store.add([provenance.measurement(model, "", metric_name, value, unit, extra)])
    return result


def predict_checked(table: LatencyTable, config: TinyMobileNetConfig) -> float:
    from nas.lut import predict

    return predict(table, config)
