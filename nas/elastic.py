"""The elastic layers of the supernet (Once-for-all's idea, written afresh): one inverted-residual
block holds the weights of its largest form (the stage's largest kernel and expand ratio), and a
smaller form takes a part of them:

- kernel k < K: the centre k×k of the K×K depthwise weights;
- expand e < E: the first in·e channels of the expanded layer (the expand conv's outputs, their
  BatchNorm, the depthwise conv, its BatchNorm, the projection's inputs); `sort_channels` puts the
  most important channels first (L1 norm of the projection's weights per input channel).

Padding is TFLite's SAME, as `engine.torch_models.ConvBNAct` pads, so that a block computes what
the extracted `InvertedResidual` (and its int8 graph) computes."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.torch_models import activation_module, same_padding
from nas.depthwise import depthwise_conv


class ElasticBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d over the first C channels of its largest form, C being the input's channels.
    Its running statistics are views of the full ones, so training and recalibration update them
    in place; momentum None averages over all batches, as nn.BatchNorm2d does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return F.batch_norm(x, self.running_mean[:channels], self.running_var[:channels], self.weight[:channels],
                            self.bias[:channels], self.training, factor, self.eps)


def centre(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centre kernel×kernel of [out, in, K, K] weights."""
    full = weight.shape[-1]
    start = (full - kernel) // 2
    return weight[:, :, start:start + kernel, start:start + kernel]


def pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    return F.pad(x, (left, right, top, bottom)) if top or bottom or left or right else x


class ElasticBlock(nn.Module):
    """An inverted-residual block whose kernel and expand ratio are chosen per forward call."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, max_kernel: int, max_expand: int,
                 activation: str) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.max_kernel, self.max_expand = max_kernel, max_expand
        hidden = in_channels * max_expand
        self.expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.expand_bn = ElasticBatchNorm(hidden)
        self.depthwise_conv = nn.Conv2d(hidden, hidden, max_kernel, stride, groups=hidden, bias=False)
        self.depthwise_bn = ElasticBatchNorm(hidden)
        self.project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels)
        self.act = activation_module(activation)
        self.use_residual = stride == 1 and in_channels == out_channels

    def weights(self, kernel: int, expand: int) -> dict[str, torch.Tensor]:
        """The conv weights of the block at (kernel, expand), views of the full ones."""
        hidden = self.in_channels * expand
        return {
            "expand": self.expand_conv.weight[:hidden],
            "depthwise": centre(self.depthwise_conv.weight[:hidden], kernel),
            "project": self.project_conv.weight[:, :hidden],
        }

    def forward(self, x: torch.Tensor, kernel: int, expand: int) -> torch.Tensor:
        w = self.weights(kernel, expand)
        y = self.act(self.expand_bn(F.conv2d(x, w["expand"])))
        y = depthwise_conv(pad_same(y, kernel, self.stride), w["depthwise"], self.stride)
        y = self.project_bn(F.conv2d(self.act(self.depthwise_bn(y)), w["project"]))
        return x + y if self.use_residual else y

    @torch.no_grad()
    def sort_channels(self) -> torch.Tensor:
        """Reorder the expanded channels by importance, most important first, in every layer that
        holds them, so that the largest form computes the same function; returns the importances
        in the new order (descending)."""
        importance = self.project_conv.weight.abs().sum(dim=(0, 2, 3))
        order = torch.argsort(importance, descending=True, stable=True)
        self.expand_conv.weight.copy_(self.expand_conv.weight[order])
        self.depthwise_conv.weight.copy_(self.depthwise_conv.weight[order])
        self.project_conv.weight.copy_(self.project_conv.weight[:, order])
        for bn in (self.expand_bn, self.depthwise_bn):
            for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                tensor.copy_(tensor[order])
        return importance[order]
