"""The ops the engine supports, one family a module (or a sub-package where one file would be too
long: conv/), and the one table that registers them: OPS, kind -> OpSpec (engine/ops/spec.py).
The importer (engine.tflite), the exporter (engine.export), the validator (engine.validate), the
reference interpreter (engine.reference) and the code generator (engine.codegen) look an op up
here. The families: convolutions (conv/), fully_connected, elementwise (ADD), pooling (the pools
and MEAN), shape (PAD, RESHAPE, CONCATENATION), softmax, and quantize (QUANTIZE, DEQUANTIZE); and patch (PATCH_CROP, PATCH_PASTE), which only the patch
rewrite (engine.patches) makes.

Shared by several families: the window of the convolutions and pools (window.py), the weighted
ops' weights, bias and per-channel multipliers (weighted.py), TFLite options (options.py),
quantisation parameters (quant_params.py) and common checks (checks.py)."""
from __future__ import annotations

from engine.ops import conv, elementwise, fully_connected, patch, pooling, quantize, shape, softmax
from engine.ops.spec import OpSpec

_SPECS: tuple[OpSpec, ...] = (
    conv.CONV_2D,
    conv.DEPTHWISE_CONV_2D,
    fully_connected.FULLY_CONNECTED,
    elementwise.ADD,
    pooling.AVERAGE_POOL_2D,
    pooling.MAX_POOL_2D,
    pooling.MEAN,
    shape.PAD,
    shape.RESHAPE,
    softmax.SOFTMAX,
    shape.CONCATENATION,
    quantize.QUANTIZE,
    quantize.DEQUANTIZE,
    patch.PATCH_CROP,  # the patch rewrite's own (engine.patches), not TFLite's
    patch.PATCH_PASTE,
)
OPS: dict[str, OpSpec] = {spec.kind: spec for spec in _SPECS}
if len(OPS) != len(_SPECS):
    raise AssertionError("an op kind is registered twice in engine.ops")
# The ops the engine supports, by their TFLite names. Anything else is refused at import.
OP_KINDS: tuple[str, ...] = tuple(kind for kind, spec in OPS.items() if spec.tflite is not None)
