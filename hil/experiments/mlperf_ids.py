"""MLPerf Tiny's model ids (what `profile%` reports as `m-model-[ID]`, by which the official runner
picks its test), the input conversion each implies (hil.firmware_build.inputwire), and the ids of
the reference models the lab knows by their file names."""
from __future__ import annotations

from dataclasses import dataclass

from engine.ir import Graph
from hil.errors import LabError
from hil.firmware_build.inputwire import RAW, InputWire, QuantParams


@dataclass(frozen=True)
class MlperfModel:
    """What the reference submissions do for one benchmark: how `db` bytes become the input, and
    whether the result is one anomaly score."""

    task: str
    wire: str  # an InputWire kind
    anomaly_score: bool = False


MLPERF_MODELS = {
    "kws01": MlperfModel("keyword spotting", "raw"),
    "vww01": MlperfModel("visual wake words", "uint8"),
    "ic01": MlperfModel("image classification", "uint8"),
    "ad01": MlperfModel("anomaly detection", "float32", anomaly_score=True),
}

# The reference models by file name (mlcommons/tiny's trained_models/), so that `serve` and
# `mlperf` give them their id without --model-id.
KNOWN_MODEL_IDS = {
    "kws_ref_model": "kws01",
    "vww_96_int8": "vww01",
    "pretrainedResnet_large_int8": "ic01",
    "pretrainedResnet_quant": "ic01",
    "ad01_int8": "ad01",
}


def infer_model_id(model_name: str) -> str | None:
    """The MLPerf Tiny id of a reference model, by its name; None for any other model."""
    return KNOWN_MODEL_IDS.get(model_name)


def _quant(graph: Graph, index: int, what: str, model_id: str) -> QuantParams:
    tensor = graph.tensors[index]
    if tensor.dtype != "int8" or len(tensor.scale) != 1 or not tensor.scale[0] > 0:
        raise LabError(f"model id {model_id}: model {graph.name}'s {what} is {tensor.dtype} "
                       f"with {len(tensor.scale)} scales; the {model_id} conversion takes one int8 tensor with one scale")
    return QuantParams.of(tensor)


def input_wire_for(model_id: str | None, graph: Graph) -> InputWire:
    """The conversion MLPerf Tiny's reference does for `model_id` on this model; none (raw bytes)
    for an id that is not one of MLPerf Tiny's."""
    spec = MLPERF_MODELS.get(model_id or "")
    if spec is None:
        return RAW
    model_id = str(model_id)
    inp = _quant(graph, graph.inputs[0], "input", model_id)
    if not spec.anomaly_score:
        return InputWire(spec.wire, inp)
    out = _quant(graph, graph.outputs[0], "output", model_id)
    inputs, outputs = graph.tensors[graph.inputs[0]].elements, graph.tensors[graph.outputs[0]].elements
    if inputs != outputs:
        raise LabError(f"model id {model_id}: the anomaly score compares the input with its reconstruction, "
                       f"but model {graph.name} has {inputs} input and {outputs} output values")
    return InputWire(spec.wire, inp, anomaly_score=True, output=out)
