"""The convolutions, CONV_2D and DEPTHWISE_CONV_2D: attributes (attributes.py), checks (checks.py),
TFLM's Prepare step (prepare.py), the numpy reference (reference.py), the layer geometry and
scratch (shapes.py), and the C: the library kernels' parameters (calls.py), the choice between
them and the optimised kernels (emit.py), and the optimised kernels (emit_optimized.py)."""
from __future__ import annotations

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.ops.conv.attributes import read_conv, read_depthwise, write_conv, write_depthwise
from engine.ops.conv.calls import Conv1x1StreamCall, ConvCall, DepthwiseConvCall, DepthwiseConvInplaceCall
from engine.ops.conv.checks import check_conv, check_depthwise
from engine.ops.conv.emit import CONV_VARIANTS, DEPTHWISE_VARIANTS, emit_conv, emit_depthwise
from engine.ops.conv.emit_optimized import conv_wide_weights
from engine.ops.conv.reference import conv_2d, depthwise_conv_2d
from engine.ops.conv.shapes import conv_scratch, depthwise_scratch
from engine.ops.spec import CForm, OpSpec, TfliteForm
from engine.ops.weighted import INPUT_LABELS, WEIGHTED_ARITY, WEIGHTED_INPUT_TYPES

CONV_2D = OpSpec(
    "CONV_2D", WEIGHTED_ARITY, check_conv, conv_2d, input_types=WEIGHTED_INPUT_TYPES,
    tflite=TfliteForm(schema.BuiltinOptions.Conv2DOptions, version=3, read=read_conv, write=write_conv),
    c=CForm(emit_conv, CONV_VARIANTS, scratch=conv_scratch, wide_weights=conv_wide_weights, input_labels=INPUT_LABELS,
            library_calls=(ConvCall, Conv1x1StreamCall)),
)
DEPTHWISE_CONV_2D = OpSpec(
    "DEPTHWISE_CONV_2D", WEIGHTED_ARITY, check_depthwise, depthwise_conv_2d, input_types=WEIGHTED_INPUT_TYPES,
    tflite=TfliteForm(schema.BuiltinOptions.DepthwiseConv2DOptions, version=3, read=read_depthwise, write=write_depthwise),
    c=CForm(emit_depthwise, DEPTHWISE_VARIANTS, scratch=depthwise_scratch, input_labels=INPUT_LABELS,
            library_calls=(DepthwiseConvCall, DepthwiseConvInplaceCall)),
)
