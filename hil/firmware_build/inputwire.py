"""How the bytes of `db` lines become a model's input in the firmware, and what `results%` prints.

MLPerf Tiny's reference submissions convert what the runner sends (their `th_load_tensor`):
image models (vww01, ic01) get uint8 pixels, stored minus 128 in the int8 input; the anomaly
detector (ad01) gets little-endian float32 features, quantised on the device with the input's
scale and zero point; keyword spotting (kws01) gets the int8 input as it is. ad01 also prints one
anomaly score, the mean squared error between its input and its reconstruction, instead of the
reconstruction itself.

The firmware here quantises each float as it arrives (no 4x buffer), with TFLite's rule:
round(value / scale) in float32, halves away from zero, plus the zero point, clamped. The score
uses the quantised input, dequantised, since the floats are not kept."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.ir import DTYPES, Tensor
from hil.errors import LabError

WIRE_KINDS = {"raw": 0, "uint8": 1, "float32": 2}  # the firmware's INPUT_WIRE codes


@dataclass(frozen=True)
class QuantParams:
    """A tensor's single scale (float32) and zero point, and its integer range."""

    scale: float
    zero_point: int
    qmin: int = -128
    qmax: int = 127

    @classmethod
    def of(cls, tensor: Tensor) -> QuantParams:
        """A quantised integer tensor's first scale and zero point, and its type's range."""
        info = np.iinfo(DTYPES[tensor.dtype])
        zero_point = int(tensor.zero_point[0]) if tensor.zero_point else 0
        return cls(float(tensor.scale[0]), zero_point, int(info.min), int(info.max))

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """(q - zero_point) * scale in float32, as the firmware computes it."""
        return (q.astype(np.int32) - self.zero_point).astype(np.float32) * np.float32(self.scale)

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """TFLite's float -> integer rule, as the firmware applies it: value / scale in float32,
        rounded half away from zero, plus the zero point, clamped to the type's range."""
        scaled = np.asarray(values, dtype=np.float32) / np.float32(self.scale)
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=1e9, neginf=-1e9)
        rounded = np.sign(scaled) * np.floor(np.abs(scaled).astype(np.float64) + 0.5)
        return np.clip(rounded + self.zero_point, self.qmin, self.qmax).astype(np.int64)


@dataclass(frozen=True)
class InputWire:
    """What the firmware does with `db` bytes (`kind`: raw, uint8 or float32, with the input's
    quantisation for float32), and whether `results%` prints the anomaly score (with the output's
    quantisation)."""

    kind: str = "raw"
    input: QuantParams | None = None
    anomaly_score: bool = False
    output: QuantParams | None = None

    def __post_init__(self) -> None:
        if self.kind not in WIRE_KINDS:
            raise LabError(f"input conversion {self.kind!r}: not one of {', '.join(WIRE_KINDS)}")
        if (self.kind == "float32" or self.anomaly_score) and self.input is None:
            raise LabError(f"input conversion {self.kind}: needs the input's scale and zero point")
        if self.anomaly_score and self.output is None:
            raise LabError("the anomaly score needs the output's scale and zero point")

    @property
    def code(self) -> int:
        return WIRE_KINDS[self.kind]

    @property
    def bytes_per_value(self) -> int:
        """Wire bytes per byte of the model's input."""
        return 4 if self.kind == "float32" else 1

    def encode(self, data: bytes) -> bytes:
        """The wire bytes that the firmware turns into `data`, the model's int8 input."""
        values = np.frombuffer(data, dtype=np.int8)
        if self.kind == "uint8":
            return (values.astype(np.int16) + 128).astype(np.uint8).tobytes()
        if self.kind == "float32":
            assert self.input is not None
            return self.input.dequantize(values).astype("<f4").tobytes()
        return data

    def decode(self, wire: bytes) -> bytes:
        """The model's int8 input that the firmware makes of `wire`."""
        if self.kind == "uint8":
            return (np.frombuffer(wire, dtype=np.uint8).astype(np.int16) - 128).astype(np.int8).tobytes()
        if self.kind == "float32":
            assert self.input is not None
            return self.input.quantize(np.frombuffer(wire, dtype="<f4")).astype(np.int8).tobytes()
        return wire

    def score(self, model_input: bytes, model_output: bytes) -> float:
        """The anomaly score the firmware prints: the mean squared error between the dequantised
        input and output, summed in order in float32 (the firmware does not fuse multiply-adds)."""
        assert self.input is not None and self.output is not None
        x = self.input.dequantize(np.frombuffer(model_input, dtype=np.int8))
        y = self.output.dequantize(np.frombuffer(model_output, dtype=np.int8))
        total = np.float32(0.0)
        for d in (y - x):
            total = np.float32(total + np.float32(d * d))
        return float(np.float32(total / np.float32(len(x))))

    def c_defines(self) -> dict[str, object]:
        """The template's values: hex float literals for the scales (exact float32)."""
        def c_float(value: float) -> str:
            return float(np.float32(value)).hex() + "f"

        params = {"code": self.code, "bytes_per_value": self.bytes_per_value, "anomaly_score": int(self.anomaly_score)}
        if self.input is not None:
            params.update(input_scale=c_float(self.input.scale), input_zero_point=self.input.zero_point,
                          input_qmin=self.input.qmin, input_qmax=self.input.qmax)
        if self.output is not None:
            params.update(output_scale=c_float(self.output.scale), output_zero_point=self.output.zero_point)
        return params


RAW = InputWire()
