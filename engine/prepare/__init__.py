"""TFLite Micro's Prepare step, once per op family: the constants a kernel needs (window padding,
per-channel multipliers, activation range, ...) computed from the graph as TFLM computes them.
Both the reference interpreter (engine.reference) and the code generator (engine.codegen) take
their constants from here, so the two cannot drift apart."""
from engine.prepare.add import ADD_LEFT_SHIFT, AddParams, prepare_add
from engine.prepare.common import output_range, scale_of, zero_point_of
from engine.prepare.conv import ConvParams, channel_multipliers, prepare_conv
from engine.prepare.fully_connected import FullyConnectedParams, prepare_fully_connected
from engine.prepare.pool import MeanParams, PoolParams, prepare_mean, prepare_pool
from engine.prepare.quantize import RequantizeParams, prepare_requantize
from engine.prepare.softmax import SoftmaxParams, prepare_softmax
from engine.prepare.window import Window, prepare_window

__all__ = [
    "ADD_LEFT_SHIFT", "AddParams", "ConvParams", "FullyConnectedParams", "MeanParams", "PoolParams",
    "RequantizeParams", "SoftmaxParams", "Window", "channel_multipliers", "output_range", "prepare_add",
    "prepare_conv", "prepare_fully_connected", "prepare_mean", "prepare_pool", "prepare_requantize",
    "prepare_softmax", "prepare_window", "scale_of", "zero_point_of",
]
