"""MLPerf Tiny's performance and accuracy modes, run by the lab on its own firmware.

Performance, as the MLPerf Tiny runner does it: several windows (5), each a fresh input load then
`infer N W%`, with N chosen so that a window lasts at least `window_s` seconds of the board's clock
(10 s, as MLPerf Tiny asks; under QEMU, seconds of virtual time, where 1 µs is 1000 instructions);
the figure is the median over the windows of the time per inference, kept in the board's unit
(cycles on hardware, instructions under QEMU). The `m-lap-us-` timestamps are kept alongside.

Accuracy: one `infer 1 0%` per input file of a folder, read through the MLPerf `m-results-[...]`
numbers (the output dequantised by the firmware). A classifier is scored by top-1, an anomaly
detector (an autoencoder, or a model with one output) by the ROC AUC of its anomaly score; every
raw output is also compared with TFLite Micro's for the same input.

The input folder holds `.npy` or `.bin` files, taken in name order:
- `.npy`: an array in the model's input type, or a float array (quantised here with the model's
  input scale and zero point, as TFLite does: value / scale in float32, halves away from zero);
  its size must be the input tensor's.
- `.bin`: raw bytes, exactly the input tensor's bytes; or, for a quantised input, 4 bytes per
  element of little-endian float32, quantised as above.
Labels, in this order:
1. `labels.csv` in the folder: `file,label` rows (an optional `file,label` header);
2. MLPerf Tiny's truth file `y_labels.csv`: `file,classes,class` rows;
3. otherwise the file name: a `normal` or `anomaly` word between underscores
   (`normal_id_01_0003.npy`), or else the last `_`-separated word as a class index
   (`tst_000012_Stop_7.bin` is class 7).
A label is a class index for a classifier, and `normal`/`anomaly` (or 0/1) for an anomaly detector.
"""
from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.ir import DTYPES, Graph
from engine.oracle import run_tflm
from hil.firmware_build.firmware import Firmware
from hil.firmware_build.inputwire import QuantParams
from hil.errors import LabError
from hil.experiments.mlperf_ids import input_wire_for
from hil.experiments.modelrun import build_model_firmware
from hil.experiments.models import ModelSource, default_input
from hil.experiments.npyfile import read_npy, user_file
from hil.run.protocol import DeviceLink, InferenceReport
from hil.run.runners import Runner, runner_for
from hil.run.target import each_input, open_with_input
from hil.run.transcript import Transcript, kept_on_failure, save_for_run
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.targets.boardspec import BoardSpec

WINDOWS = 5  # the MLPerf Tiny runner's performance mode runs 5 windows
WINDOW_S = 10.0  # MLPerf Tiny: a timed window lasts at least 10 s (of virtual time under QEMU)
DEFAULT_WARMUP = 10
INPUT_SUFFIXES = (".npy", ".bin")
LABEL_FILES = ("labels.csv", "y_labels.csv")
ANOMALY_LABELS = {"normal": 0, "anomaly": 1, "0": 0, "1": 1}


# ---- inputs and labels ------------------------------------------------------------------------


@dataclass(frozen=True)
class LabeledInput:
    """One input file, in the model's input type and shape, with its label."""

    path: Path
    value: np.ndarray
    label: str


def quantize(values: np.ndarray, graph: Graph) -> np.ndarray:
    """Real values -> the model's quantised input, as TFLite rounds (half away from zero)."""
    tensor = graph.tensors[graph.inputs[0]]
    dtype = np.dtype(DTYPES[tensor.dtype])
    if not tensor.scale or dtype.kind not in "iu":
        raise LabError(f"model {graph.name}: its input {tensor.dtype} is not quantised; give inputs of that type")
    return QuantParams.of(tensor).quantize(values).astype(dtype)


def read_input_file(path: Path, graph: Graph) -> np.ndarray:
    """A `.npy` or `.bin` input file as the model's input tensor (see the module's docstring)."""
    tensor = graph.tensors[graph.inputs[0]]
    dtype = np.dtype(DTYPES[tensor.dtype])
    if path.suffix == ".npy":
        value = read_npy(path, tensor.elements, f"model {graph.name} takes {tensor.shape} ({tensor.elements:,} values)")
        if value.dtype.kind == "f" and dtype.kind in "iu":
            value = quantize(value, graph)
        elif value.dtype != dtype:
            raise LabError(f"input {path} is {value.dtype}; model {graph.name} takes {dtype} (or float values to quantise)")
    else:
        value = read_bin(path, graph)
    if value.size != tensor.elements:
        raise LabError(f"input {path} has {value.size} values; model {graph.name} takes {tensor.shape} ({tensor.elements})")
    return np.ascontiguousarray(value.reshape(tensor.shape))


def read_bin(path: Path, graph: Graph) -> np.ndarray:
    """A `.bin` input: the input tensor's bytes, or float32 values to quantise; its size is
    checked before it is read."""
    tensor = graph.tensors[graph.inputs[0]]
    dtype = np.dtype(DTYPES[tensor.dtype])
    exact, floats = tensor.elements * dtype.itemsize, tensor.elements * 4
    user_file(path, "input")
    try:
        size = path.stat().st_size
        raw = path.read_bytes() if size in (exact, floats) else b""
    except OSError as error:
        raise LabError(f"cannot read input {path}: {error.strerror or error}") from None
    if size == exact:
        return np.frombuffer(raw, dtype=dtype)
    if dtype.kind in "iu" and size == floats:
        return quantize(np.frombuffer(raw, dtype="<f4"), graph)
    raise LabError(
        f"input {path} has {size} bytes; model {graph.name} takes {exact} "
        f"({tensor.elements} x {dtype})" + (f" or {floats} (float32)" if dtype.kind in "iu" else "")
    )


def read_label_file(directory: Path) -> dict[str, str]:
    """file name -> label from `labels.csv` or `y_labels.csv` in the folder; {} when neither exists."""
    for name in LABEL_FILES:
        path = directory / name
        if not path.is_file():
            continue
        labels: dict[str, str] = {}
        with open(path, newline="") as stream:
            for number, row in enumerate(csv.reader(stream), start=1):
                cells = [cell.strip() for cell in row]
                if not cells or not any(cells) or cells[0].startswith("#"):
                    continue
                if number == 1 and cells[0].lower() == "file":
                    continue
                wanted = 2 if name == "labels.csv" else 3
                if len(cells) < wanted:
                    form = "file,label" if name == "labels.csv" else "file,classes,class"
                    raise LabError(f"{path}, line {number}: expected '{form}', got {','.join(row)!r}")
                labels[Path(cells[0]).name] = cells[wanted - 1]
        return labels
    return {}


def label_from_name(path: Path) -> str | None:
    words = path.stem.lower().split("_")
    for word in ("normal", "anomaly"):
        if word in words:
            return word
    return words[-1] if words[-1].lstrip("-").isdigit() else None


def read_inputs(directory: Path, graph: Graph) -> list[LabeledInput]:
    """Every `.npy`/`.bin` file of the folder, in name order, with its label."""
    if not directory.is_dir():
        raise LabError(f"input folder {directory} does not exist")
    files = sorted(p for p in directory.iterdir() if p.suffix in INPUT_SUFFIXES and p.is_file())
    if not files:
        raise LabError(f"input folder {directory} holds no .npy or .bin files")
    labels = read_label_file(directory)
    inputs = []
    for path in files:
        label = labels.get(path.name) if labels else label_from_name(path)
        if label is None:
            where = "has no row in the labels file" if labels else "has no label in its name (e.g. x_7.npy, normal_3.npy)"
            raise LabError(f"input {path} {where}")
        inputs.append(LabeledInput(path, read_input_file(path, graph), label))
    return inputs


# ---- scoring ----------------------------------------------------------------------------------


def is_anomaly_detector(graph: Graph) -> bool:
    """An autoencoder (output as large as the input) or a model with one output value."""
    inp, out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    return out.elements == 1 or out.elements == inp.elements


def dequantize_input(value: np.ndarray, graph: Graph) -> np.ndarray:
    tensor = graph.tensors[graph.inputs[0]]
    if not tensor.scale:
        return value.astype(np.float64).ravel()
    return (value.astype(np.float64).ravel() - tensor.zero_point[0]) * float(np.float32(tensor.scale[0]))


def anomaly_score(value: np.ndarray, results: tuple[float, ...], graph: Graph) -> float:
    """One output: that value. An autoencoder: the mean squared error of its reconstruction."""
    if len(results) == 1:
        return float(results[0])
    return float(np.mean((dequantize_input(value, graph) - np.asarray(results, dtype=np.float64)) ** 2))


def roc_auc(scores: list[float], anomalous: list[bool]) -> float:
    """The area under the ROC curve: the chance that an anomaly scores above a normal input
    (ties count one half). Needs both kinds."""
    positives = [s for s, a in zip(scores, anomalous) if a]
    negatives = [s for s, a in zip(scores, anomalous) if not a]
    if not positives or not negatives:
        raise LabError("the AUC needs both normal and anomaly inputs")
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


# ---- results ----------------------------------------------------------------------------------


@dataclass
class Performance:
    """MLPerf Tiny performance mode: per-window time per inference, in the board's unit."""

    unit: str
    resolution: float
    inferences: int  # N of `infer N W`
    warmup: int
    window_s: float
    virtual_time: bool  # whether the windows' seconds are QEMU's virtual time
    per_window: list[float]  # per inference, in `unit`
    lap_us_per_window: list[int]  # m-lap-us end - start, per window (µs of the lap clock)
    lap_clock: str  # what the firmware says m-lap-us counts

    @property
    def median(self) -> float:
        return float(statistics.median(self.per_window))


@dataclass
class Accuracy:
    """MLPerf Tiny accuracy mode over a folder of inputs."""

    task: str  # "classification" | "anomaly-detection"
    metric: str  # "top1" | "auc"
    value: float
    files: int
    matches_reference: int  # outputs equal to TFLM's, bit for bit
    predictions: list[dict[str, object]] = field(default_factory=list)


@dataclass
class MlperfRun:
    model: str
    model_sha256: str
    board: str
    backend: str
    performance: Performance
    accuracy: Accuracy | None = None
    transcript: Transcript | None = field(default=None, compare=False, repr=False)  # what the link said

    def summary(self) -> dict[str, object]:
        p = self.performance
        out: dict[str, object] = {
            "model": self.model,
            "model_sha256": self.model_sha256,
            "board": self.board,
            "backend": self.backend,
            "latency": p.median,
            "latency_unit": p.unit,
            "latency_resolution": p.resolution,
            "windows": len(p.per_window),
            "inferences_per_window": p.inferences,
            "warmup": p.warmup,
            "window_s": p.window_s,
            "window_time": "virtual" if p.virtual_time else "real",
            "latency_per_window": p.per_window,
            "lap_us_per_window": p.lap_us_per_window,
            "lap_clock": p.lap_clock,
        }
        if self.accuracy is not None:
            a = self.accuracy
            out.update(task=a.task, accuracy_metric=a.metric, accuracy=a.value, files=a.files,
                       outputs_matching_tflm=a.matches_reference, predictions=a.predictions)
        return out

    def measurements(self, provenance: Provenance) -> list[Measurement]:
        p = self.performance
        named = save_for_run(self.transcript, provenance.run_id)

        def row(metric: str, value: float, unit: str, extra: dict[str, object]) -> Measurement:
            return provenance.measurement(self.model, self.model_sha256, metric, value, unit, {**extra, **named})

        rows = [row("mlperf_latency", p.median, p.unit, {
            "windows": p.per_window, "inferences_per_window": p.inferences, "warmup": p.warmup,
            "window_s": p.window_s, "resolution": p.resolution, "lap_us_per_window": p.lap_us_per_window,
            "lap_clock": p.lap_clock, "statistic": "median over windows of the time per inference"})]
        if self.accuracy is not None:
            a = self.accuracy
            extra = {"task": a.task, "files": a.files, "outputs_matching_tflm": a.matches_reference}
            rows.append(row(f"mlperf_{a.metric}", a.value, "fraction", extra))
            rows.append(row("mlperf_matches_reference", float(a.matches_reference == a.files), "bool", extra))
        return rows


# ---- running ----------------------------------------------------------------------------------


def inferences_per_window(ticks_per_inference: int, clock_hz: float, window_s: float) -> int:
    """The smallest N whose N inferences last at least `window_s` seconds of a `clock_hz` timer."""
    return max(1, math.ceil(window_s * clock_hz / max(1, ticks_per_inference)))


def _lap_clock(link: DeviceLink) -> str:
    return link.profile().get("lap-clock", "")


def _lap_us(report: InferenceReport) -> int:
    return report.lap_us[1] - report.lap_us[0] if len(report.lap_us) >= 2 else 0


def measure_performance(runner: Runner, firmware: Firmware, value: np.ndarray, *, windows: int = WINDOWS,
                        window_s: float | None = None, warmup: int = DEFAULT_WARMUP) -> Performance:
    """The MLPerf Tiny performance mode: `windows` x (load the input, `infer N W%`)."""
    board = runner.board
    window_s = WINDOW_S if window_s is None else window_s
    data = value.tobytes()
    with open_with_input(runner, firmware, data) as link:
        lap_clock = _lap_clock(link)
        probe = link.infer(1, 1)
        count = inferences_per_window(probe.ticks_min, board.clock_hz, window_s)
        # Each window runs about window_s of the board's clock (virtual time under QEMU, which
        # runs faster than real time here); leave a wide margin before calling it a hang.
        timeout = max(runner.timeout_s, 60.0 + 10.0 * window_s * (1 + warmup / count))
        per_window, laps = [], []
        for _ in range(windows):
            if firmware.input_staged:
                link.reload_input()  # the runner's `download` step
            # Without a staging copy, the input slot held the input for one inference only (the
            # probe's); the windows run on the firmware's generated input, which times the same.
            report = link.infer(count, warmup, timeout_s=timeout)
            per_window.append(runner.latency(report.ticks_total / count).value)
            laps.append(_lap_us(report))
    latency = runner.latency(0)
    return Performance(unit=latency.unit, resolution=latency.resolution, inferences=count, warmup=warmup,
                       window_s=window_s, virtual_time=board.emulated, per_window=per_window,
                       lap_us_per_window=laps, lap_clock=lap_clock)


def _infer_each(runner: Runner, firmware: Firmware, inputs: list[LabeledInput]) -> list[InferenceReport]:
    """`infer 1 0%` on every input (preloaded where the runner can; a board is flashed once)."""
    return [link.infer(1, 0) for link in each_input(runner, firmware, (i.value.tobytes() for i in inputs))]


def measure_accuracy(runner: Runner, firmware: Firmware, source: ModelSource, inputs: list[LabeledInput]) -> Accuracy:
    graph = source.graph
    out_tensor = graph.tensors[graph.outputs[0]]
    anomaly = is_anomaly_detector(graph)
    for item in inputs:
        if anomaly and item.label.lower() not in ANOMALY_LABELS:
            raise LabError(f"input {item.path}: label {item.label!r} is not normal/anomaly (or 0/1), "
                           f"and model {graph.name} is an anomaly detector")
        if not anomaly and not (item.label.isdigit() and int(item.label) < out_tensor.elements):
            raise LabError(f"input {item.path}: label {item.label!r} is not a class index of model "
                           f"{graph.name} (0 to {out_tensor.elements - 1})")
    reports = _infer_each(runner, firmware, inputs)
    matches, predictions = 0, []
    for item, report in zip(inputs, reports):
        if not report.output_of_loaded_input:
            raise LabError(f"input {item.path}: the firmware reported the output of an inference on "
                           f"'{report.output_input}' input, not on the input loaded")
        reference = run_tflm(source.tflite, [item.value])[0]
        matches += report.output == np.ascontiguousarray(reference).tobytes()
        entry: dict[str, object] = {"file": item.path.name, "label": item.label}
        if anomaly:
            entry["score"] = anomaly_score(item.value, report.values, graph)
        else:
            entry["predicted"] = int(np.argmax(report.values))
        predictions.append(entry)
    if anomaly:
        value = roc_auc([float(p["score"]) for p in predictions],
                        [ANOMALY_LABELS[str(p["label"]).lower()] == 1 for p in predictions])
        return Accuracy("anomaly-detection", "auc", value, len(inputs), matches, predictions)
    correct = sum(p["predicted"] == int(str(p["label"])) for p in predictions)
    return Accuracy("classification", "top1", correct / len(inputs), len(inputs), matches, predictions)


def run_mlperf(board: BoardSpec, source: ModelSource, inputs_dir: Path | None = None, *,
               windows: int = WINDOWS, window_s: float | None = None, warmup: int = DEFAULT_WARMUP,
               runner: Runner | None = None, optimize: str | None = None,
               firmware: Firmware | None = None, model_id: str | None = None) -> MlperfRun:
    """Performance mode on the first input of `inputs_dir` (or the default input), then the
    accuracy pass over every input of `inputs_dir` when one is given. `model_id` names the
    workload and, for MLPerf Tiny's ids, converts `db` input as its reference does."""
    if windows < 1:
        raise LabError("the performance mode needs at least one window")
    inputs = read_inputs(inputs_dir, source.graph) if inputs_dir is not None else []
    built = firmware or build_model_firmware(board, source, optimize, name=model_id,
                                             input_wire=input_wire_for(model_id, source.graph)).firmware
    runner = runner or runner_for(board)
    transcript = runner.fresh_transcript()
    value = inputs[0].value if inputs else default_input(source.graph)
    with kept_on_failure(transcript):
        performance = measure_performance(runner, built, value, windows=windows, window_s=window_s, warmup=warmup)
        accuracy = measure_accuracy(runner, built, source, inputs) if inputs else None
    return MlperfRun(source.name, source.sha256, board.name, runner.backend, performance, accuracy, transcript)
