"""The convolutions, CONV_2D and DEPTHWISE_CONV_2D: attributes (attributes.py), checks (checks.py),
TFLM's Prepare step (prepare.py) and the numpy reference (reference.py)."""
from __future__ import annotations

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from engine.ops.conv.attributes import read_conv, read_depthwise, write_conv, write_depthwise
from engine.ops.conv.checks import check_conv, check_depthwise
from engine.ops.conv.reference import conv_2d, depthwise_conv_2d
from engine.ops.spec import OpSpec
from engine.ops.weighted import WEIGHTED_ARITY, WEIGHTED_INPUT_TYPES

CONV_2D = OpSpec(
    kind="CONV_2D",
    builtin_code=schema.BuiltinOperator.CONV_2D,
    options_type=schema.BuiltinOptions.Conv2DOptions,
    options_optional=False,
    version=3,
    arity=WEIGHTED_ARITY,
    read_attributes=read_conv,
    write_options=write_conv,
    check=check_conv,
    reference=conv_2d,
    input_types=WEIGHTED_INPUT_TYPES,
)

DEPTHWISE_CONV_2D = OpSpec(
    kind="DEPTHWISE_CONV_2D",
    builtin_code=schema.BuiltinOperator.DEPTHWISE_CONV_2D,
    options_type=schema.BuiltinOptions.DepthwiseConv2DOptions,
    options_optional=False,
    version=3,
    arity=WEIGHTED_ARITY,
    read_attributes=read_depthwise,
    write_options=write_depthwise,
    check=check_depthwise,
    reference=depthwise_conv_2d,
    input_types=WEIGHTED_INPUT_TYPES,
)
