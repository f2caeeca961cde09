"""`tinylab mlperf-dataset`: the folder MLPerf Tiny's runner reads for one benchmark (its
`DATASETS/ID/*.bin` files and `y_labels.csv`), from images, arrays or seeded synthetic inputs."""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.ir import Graph
from hil.commands.build import add_model_id_argument, model_id_for
from hil.destinations import add_output_argument
from hil.errors import LabError
from hil.experiments.mlperf import ANOMALY_LABELS, label_from_name
from hil.experiments.mlperf_ids import input_wire_for
from hil.experiments.models import resolve_model
from hil.experiments.npyfile import read_npy, user_file
from hil.firmware_build.inputwire import InputWire

IMAGE_SUFFIXES = (".bmp", ".png", ".jpg", ".jpeg")
PERFORMANCE_FILES = 5  # the runner's performance mode: loop 5 of (download the next file, infer)
AD_STRIDE_VALUES = 128
MAX_FILE_VALUES = 1 << 24  # a feature file of a whole recording is far smaller  # ad01: windows of 640 features (5 frames of 128) move one frame at a time

SUMMARY = "make MLPerf Tiny's runner dataset folder (ID/*.bin + y_labels.csv) for a model"
EXAMPLES = """\
  tinylab mlperf-dataset ../shared/models/vww_96_int8.tflite ../shared/data/person.bmp ../shared/data/no_person.bmp -o datasets
  tinylab mlperf-dataset ../shared/models/ad01_int8.tflite ../shared/data/ad01_normal_id_01_hist_librosa.bin -o datasets
  tinylab mlperf-dataset ../shared/models/kws_ref_model.tflite --synthetic 5 --seed 1 -o datasets

  Files are written as the runner sends them, in the model's MLPerf Tiny input form: vww01/ic01
  uint8 pixels (a .bmp, or a uint8 .npy; a gray image fills every channel); ad01 float32 features
  (.bin of float32, or a float .npy), of which the runner sends windows of the model's input size
  (y_labels.csv's bytes_to_send) every --stride values; kws01 and other models the int8 input.
  --synthetic makes seeded random inputs of that form. Labels: --label, else the file name's
  (normal/anomaly, or a last '_' number), else 0.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the model (a .tflite file or a built-in model)")
    parser.add_argument("inputs", nargs="*", type=Path, help="images (.bmp, .png, .jpg), .npy or .bin inputs")
    add_output_argument(parser, "-o", "--output", folder=True, required=True, help="the runner's dataset folder (its -s)")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N", help="add N seeded random inputs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic inputs (default: 0)")
    parser.add_argument("--label", help="the class of every input (default: from the file name, else 0)")
    parser.add_argument("--stride", type=int, default=AD_STRIDE_VALUES,
                        help=f"ad01: values between windows (default: {AD_STRIDE_VALUES})")
    add_model_id_argument(parser)


def wire_form(path: Path, graph: Graph, wire: InputWire) -> bytes:
    """One input file as the runner must send it."""
    tensor = graph.tensors[graph.inputs[0]]
    wire_bytes = tensor.elements * wire.bytes_per_value
    if path.suffix == ".bin":
        if user_file(path, "input").stat().st_size > MAX_FILE_VALUES * 4:
            raise LabError(f"input {path}: over {MAX_FILE_VALUES * 4:,} bytes")
        data = path.read_bytes()
        fits = len(data) >= wire_bytes and len(data) % wire.bytes_per_value == 0 if wire.kind == "float32" \
            else len(data) == wire_bytes
        if not fits:
            raise LabError(f"input {path}: {len(data)} bytes; the model takes {wire_bytes} per input"
                           + (" (or more: windows are cut from it)" if wire.kind == "float32" else ""))
        return data
    if path.suffix.lower() in IMAGE_SUFFIXES:
        if wire.kind != "uint8":
            raise LabError(f"input {path}: an image, but this model's runner input is {wire.kind}")
        try:
            with Image.open(path) as image:
                value = np.asarray(image.convert("RGB" if tensor.shape[-1] == 3 else "L"), dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as error:
            raise LabError(f"cannot read image {path}: {error}") from None
    elif path.suffix == ".npy":
        value = read_npy(path, MAX_FILE_VALUES, f"at most {MAX_FILE_VALUES:,} values", at_most=True)
    else:
        raise LabError(f"input {path}: not an image ({', '.join(IMAGE_SUFFIXES)}), .npy or .bin file")
    if wire.kind == "float32":
        flat = np.asarray(value, dtype="<f4").ravel()
        if flat.size < tensor.elements:
            raise LabError(f"input {path}: {flat.size} values; the model takes {tensor.elements}")
        return flat.tobytes()
    dtype = np.uint8 if wire.kind == "uint8" else np.int8
    if value.dtype != dtype:
        raise LabError(f"input {path}: {value.dtype}; this model's runner input is {np.dtype(dtype)}")
    if value.size * 3 == tensor.elements and tensor.shape[-1] == 3:
        value = np.repeat(value.reshape(-1, 1), 3, axis=1)  # a gray image for a colour input
    if value.size != tensor.elements:
        raise LabError(f"input {path}: {value.size} values; the model takes {tensor.shape} ({tensor.elements})")
    return value.astype(dtype).tobytes()


def synthetic(count: int, seed: int, graph: Graph, wire: InputWire) -> list[bytes]:
    """Seeded random inputs in the runner's form (float32 features are dequantised int8 values)."""
    rng = np.random.default_rng(seed)
    elements = graph.tensors[graph.inputs[0]].elements
    made = [rng.integers(-128, 128, elements).astype(np.int8).tobytes() for _ in range(count)]
    return [wire.encode(data) for data in made]


def runner_label(label: str, anomaly: bool, name: str) -> int:
    """The class the runner reads (an integer; 0 normal, 1 anomaly for an anomaly detector)."""
    if anomaly and label.lower() in ANOMALY_LABELS:
        return ANOMALY_LABELS[label.lower()]
    if not label.isdigit():
        raise LabError(f"input {name}: label {label!r} is not a class number" + (" or normal/anomaly" if anomaly else ""))
    return int(label)


def run(args: argparse.Namespace) -> int:
    source = resolve_model(args.model)
    graph = source.graph
    model_id = model_id_for(source, args.model_id)
    wire = input_wire_for(model_id, graph)
    if not args.inputs and args.synthetic <= 0:
        raise LabError("no inputs: name .bmp/.npy/.bin files, or --synthetic N")
    if args.stride <= 0:
        raise LabError(f"--stride {args.stride}: must be > 0")
    files = [(path.stem, wire_form(path, graph, wire), label_from_name(path)) for path in args.inputs]
    files += [(f"synthetic_{args.seed}_{i:04d}", data, None) for i, data in enumerate(synthetic(args.synthetic, args.seed, graph, wire))]
    folder = args.output / model_id
    folder.mkdir(parents=True, exist_ok=True)
    out_tensor = graph.tensors[graph.outputs[0]]
    classes = 2 if wire.anomaly_score else out_tensor.elements
    window = graph.tensors[graph.inputs[0]].elements * wire.bytes_per_value
    with open(folder / "y_labels.csv", "w", newline="") as stream:
        rows = csv.writer(stream)
        for stem, data, label in files:
            name = f"{stem}.bin"
            (folder / name).write_bytes(data)
            row = [name, classes, runner_label(args.label or label or "0", wire.anomaly_score, name)]
            rows.writerow(row + ([window, args.stride * 4] if wire.anomaly_score else []))
    print(f"{folder}: {len(files)} inputs for {model_id} ({wire.kind} form) and y_labels.csv; "
          f"pass -s {args.output} to the runner")
    if len(files) < PERFORMANCE_FILES:
        print(f"note: the runner's performance mode loads {PERFORMANCE_FILES} files in turn ('loop 5'); "
              f"add inputs (or --synthetic) for it")
    return 0
