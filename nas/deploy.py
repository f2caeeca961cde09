"""Deploying one subnet of a trained supernet (`tinylab nas deploy`): its weights out of the
supernet (`Supernet.subnet`), batch-norm statistics recomputed on training images, optionally
fine-tuned, quantised to int8 (`engine.quantize`, calibrated on training images), compiled with
the engine, built into firmware and measured on the board (`hil.experiments.modelrun.run_model`,
which compares the output with TFLite Micro's). The measured peak SRAM, flash and latency are set
beside what the search predicted (planner plus the board's overhead, the latency table); the
float accuracy is the subnet's on the test split, the int8 accuracy the quantised graph's on the
test split with its generated C built for the host, and a sample of test images is also run on
the target, whose outputs must equal the host's."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from engine.export import export_tflite
from engine.patches.rewrite import PatchGrid
from engine.ir import DTYPES
from engine.quantize import quantize_input, quantize_model
from engine.hostbuild import build_host_program, generate_for_host, run_host_program
from hil.cycles.estimated import ESTIMATED_UNIT
from hil.errors import LabError
from hil.experiments.modelrun import ModelRun, build_model_firmware, run_model
from hil.experiments.models import ModelSource
from hil.run.runners import runner_for
from hil.run.target import open_with_input
from hil.targets.boardspec import BoardSpec
from nas.arch import Arch
from nas.constraints import Constraints, Figures
from nas.data import Dataset, Split
from nas.lutkey import LUT_KERNELS
from nas.supernet import Supernet, recalibrate_bn
from nas.train import EVAL_BATCH, TrainConfig, recalibration_batches

CALIBRATION_IMAGES = 256


class DeployError(LabError):
    """A subnet that cannot be deployed as asked."""


@dataclass
class Deployment:
    architecture: str
    model: str
    predicted: Figures
    run: ModelRun
    float_accuracy: float
    int8_accuracy: float
    test_images: int
    target_images: int
    target_matches: bool  # every target image's output equals the reference's
    predicted_arena: int = 0  # the planner's arena of the network (the rest of the prediction is the overhead)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def measured_latency(self) -> tuple[float, str]:
        """The run's latency in the prediction's unit: its own, or, when the table holds estimated
        cycles, the estimate of the same timed window."""
        if self.predicted.latency_unit == ESTIMATED_UNIT and self.run.cycles is not None:
            return self.run.cycles.cycles, ESTIMATED_UNIT
        return self.run.latency, self.run.unit

    @property
    def latency_ratio(self) -> float | None:
        """Measured ÷ predicted latency, in one unit only (None when the units differ)."""
        p = self.predicted.latency
        latency, unit = self.measured_latency
        return None if not p or unit != self.predicted.latency_unit else latency / p

    def to_json(self, budget: dict) -> dict:
        r = self.run
        latency, unit = self.measured_latency
        return {
            "architecture": self.architecture, "model": self.model, "budget": budget,
            "predicted": {"latency": self.predicted.latency, "latency_unit": self.predicted.latency_unit,
                          "peak_sram_bytes": self.predicted.peak_sram_bytes, "flash_bytes": self.predicted.flash_bytes,
                          "arena_bytes": self.predicted_arena, "patches": self.predicted.patches or "off"},
            "measured": {"latency": latency, "latency_unit": unit, "peak_sram_bytes": r.peak_sram,
                         **({"run_latency": r.latency, "run_latency_unit": r.unit,
                             "cycle_model": r.cycles.model, "error_bar": r.cycles.error_bar} if unit != r.unit else {}),
                         "flash_bytes": r.flash, "arena_planned_bytes": r.arena_planned,
                         "patches": r.patches.to_json()["grid"] if r.patches else "off",
                         "model_static_bytes": r.model_static_ram, "stack_high_water_bytes": r.stack_high_water,
                         "widened_weights_bytes": r.flash_parts.widened if r.flash_parts else 0},
            "latency_ratio": self.latency_ratio,
            "matches_reference": bool(r.matches_reference and self.target_matches),
            "float_accuracy": self.float_accuracy, "int8_accuracy": self.int8_accuracy,
            "test_images": self.test_images, "target_images": self.target_images,
            "target_matches_host": self.target_matches,
            "timing": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def finetune(model: nn.Module, train: Split, config: TrainConfig, epochs: int) -> None:
    """Plain SGD with cross-entropy on the training split, `epochs` passes, seeded."""
    if epochs <= 0:
        return
    generator = np.random.default_rng([config.seed, 1 << 22])
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate * 0.1, momentum=0.9)
    model.train()
    for _ in range(epochs):
        order = generator.permutation(len(train))
        for i in range(0, len(order), config.batch_size):
            chosen = np.sort(order[i:i + config.batch_size])
            if len(chosen) < 2:
                continue
            loss = nn.functional.cross_entropy(model(torch.from_numpy(train.images[chosen])),
                                               torch.from_numpy(train.labels[chosen]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()


@torch.no_grad()
def float_accuracy(model: nn.Module, split: Split) -> float:
    correct = 0
    for i in range(0, len(split), EVAL_BATCH):
        logits = model(torch.from_numpy(split.images[i:i + EVAL_BATCH]))
        correct += int((logits.argmax(dim=1) == torch.from_numpy(split.labels[i:i + EVAL_BATCH])).sum())
    return correct / len(split)


def host_outputs(graph, inputs: np.ndarray, chunk: int = 2_000) -> np.ndarray:
    """The int8 graph's outputs for each input row: the generated C built for the host (one build,
    one process per `chunk` rows), the same code the target runs, checked against it on a sample."""
    shape = graph.tensors[graph.inputs[0]].shape
    program = build_host_program(generate_for_host(graph, kernels=LUT_KERNELS))
    rows = []
    for start in range(0, len(inputs), chunk):
        batches = [[x.reshape(shape)] for x in inputs[start:start + chunk]]
        rows += [out[0].reshape(-1) for out in run_host_program(program, graph, batches)]
    return np.stack(rows)


def target_outputs(board: BoardSpec, source: ModelSource, inputs: np.ndarray, flash_budget: int | None = None,
                   patches: PatchGrid | None = None) -> np.ndarray:
    """The outputs the firmware reports for each input row (one boot each, the firmware built once)."""
    built = build_model_firmware(board, source, kernels=LUT_KERNELS, flash_budget=flash_budget,
                                 patches=patches or "off")
    runner = runner_for(board)
    graph = built.compiled.graph
    dtype = graph.tensors[graph.outputs[0]].dtype
    rows = []
    for x in inputs:
        with open_with_input(runner, built.firmware, np.ascontiguousarray(x).tobytes()) as link:
            report = link.infer(count=1, warmup=0, timeout_s=max(runner.timeout_s, 600.0))
        if not report.output_of_loaded_input:
            raise DeployError(f"{source.name} on {board.name}: the firmware did not report the loaded input's output")
        rows.append(np.frombuffer(report.output, dtype=DTYPES[dtype]).copy())
    return np.stack(rows)


def deploy(net: Supernet, arch: Arch, data: Dataset, config: TrainConfig, board: BoardSpec,
           constraints: Constraints, *, finetune_epochs: int = 0, target_images: int = 50,
           test_images: int | None = None, progress=None, cycle_model: str | None = None) -> Deployment:
    """Extract, recalibrate, fine-tune, quantise, compile and measure subnet `arch` (see the module).
    `cycle_model` (auto, m4, m7): also estimate its cycles (default: as the constraints' table was)."""
    say = progress or (lambda line: None)
    arch.check(net.space.stages)
    if data.test is None or len(data.test) == 0:
        raise DeployError(f"data set {data.name} has no test split to score the deployed subnet on")
    seconds: dict[str, float] = {}
    started = time.monotonic()
    model = net.subnet(arch)
    recalibrate_bn(model, recalibration_batches(data.train, config))
    finetune(model, data.train, config, finetune_epochs)
    if finetune_epochs:
        recalibrate_bn(model, recalibration_batches(data.train, config))
    test = data.test if test_images is None else Split(data.test.images[:test_images], data.test.labels[:test_images])
    accuracy = float_accuracy(model, test)
    seconds["float"] = time.monotonic() - started
    say(f"float subnet: test accuracy {accuracy:.2%} on {len(test):,} images")

    started = time.monotonic()
    chosen = np.sort(np.random.default_rng([config.seed, 1 << 23]).permutation(len(data.train))[:CALIBRATION_IMAGES])
    name = f"nas-deploy:{arch}"
    graph = quantize_model(model, torch.from_numpy(data.train.images[chosen]), name=name, pool="MEAN")
    source = ModelSource(name=name, tflite=export_tflite(graph), _graph=graph)
    inputs = quantize_input(graph, test.images)
    outputs = host_outputs(graph, inputs)
    int8 = float(np.mean(outputs.argmax(axis=1) == test.labels))
    seconds["int8_host"] = time.monotonic() - started
    say(f"int8 network: test accuracy {int8:.2%} (its generated C built for the host)")

    started = time.monotonic()
    # Within the flash budget: the optimised kernels keep int16 copies of weights (faster) only
    # while the image stays within it. With the board's table the prediction holds them all, so a
    # network predicted within the budget keeps every copy, as the table's layers were measured.
    flash_budget = min(constraints.flash_bytes, board.flash_bytes)
    predicted = constraints.figures(arch)
    patches = PatchGrid.parse(predicted.patches) if predicted.patches else None  # the plan the search chose
    if patches is not None:
        say(f"built with the search's patch plan {patches}")
    table = constraints.table
    if cycle_model is None and table is not None and table.cycle_model is not None:
        cycle_model = table.cycle_model.choice
    run = run_model(board, source, inputs[0].reshape(graph.tensors[graph.inputs[0]].shape), kernels=LUT_KERNELS,
                    flash_budget=flash_budget, patches=patches or "off", cycle_model=cycle_model)
    seconds["build_and_measure"] = time.monotonic() - started
    started = time.monotonic()
    sample = min(target_images, len(test))
    on_target = target_outputs(board, source, inputs[:sample], flash_budget, patches) if sample else outputs[:0]
    seconds["target_images"] = time.monotonic() - started
    target_matches = bool(np.array_equal(on_target, outputs[:sample]))
    return Deployment(architecture=str(arch), model=name, predicted=predicted, run=run,
                      float_accuracy=accuracy, int8_accuracy=int8, test_images=len(test), target_images=sample,
                      target_matches=target_matches, seconds=seconds,
                      predicted_arena=predicted.peak_sram_bytes - constraints.overhead.sram_bytes)
