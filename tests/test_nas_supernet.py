"""The supernet: elastic kernel, expand and depth, channel sorting, batch-norm recalibration,
and extraction of a subnet that equals the supernet and goes through engine.quantize and
engine.compiler; the architecture encoding."""
from __future__ import annotations

import random

import pytest
import torch

from engine.compiler import compile_graph
from engine.quantize import quantize_model
from engine.torch_models import TinyMobileNet
from nas.arch import Arch, ArchError, Block, sample_arch
from nas.elastic import ElasticBlock
from nas.space import SearchSpace, SpaceError, StageChoices
from nas.supernet import Supernet, recalibrate_bn

SMALL = SearchSpace(
    name="small", resolutions=(12,), input_channels=1, stem_channels=8, stem_stride=1, first_block_channels=8,
    stages=(StageChoices(channels=16, stride=2, repeats=(2, 3, 4)),
            StageChoices(channels=24, stride=2, repeats=(2, 3, 4))),
)


def supernet(seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    net = Supernet(SMALL, 1.0, 12)
    images = torch.rand(64, 1, 12, 12)
    for arch in (net.largest(), net.smallest()):  # BN statistics that are not the defaults
        recalibrate_bn(net, [images], arch)
    recalibrate_bn(net, [images])
    return net.eval()


def test_arch_string_vector_and_checks():
    arch = Arch(((Block(3, 4), Block(5, 6)), (Block(7, 3), Block(3, 3), Block(5, 4))))
    assert str(arch) == "k3e4-k5e6 | k7e3-k3e3-k5e4"
    assert Arch.parse(str(arch)) == arch
    vector = arch.encode(SMALL.stages)
    assert len(vector) == 2 * 4 * 6 and sum(vector) == 2 * 5
    assert vector[:6] == [1, 0, 0, 0, 1, 0]  # k3 of (3, 5, 7), e4 of (3, 4, 6)
    with pytest.raises(ArchError, match="depth 1"):
        Arch(((Block(3, 4),), arch.stages[1])).check(SMALL.stages)
    with pytest.raises(ArchError, match="k9e4"):
        Arch.parse("k9e4-k3e3 | k3e3-k3e3").check(SMALL.stages)
    with pytest.raises(ArchError, match="kKeE"):
        Arch.parse("k3x4")
    config = SMALL.network(arch, 1.0, 12)  # one Stage per block, after the fixed first block
    assert [(s.kernel, s.expand) for s in config.stages[1:]] == [(3, 4), (5, 6), (7, 3), (3, 3), (5, 4)]


def test_expand_one_is_refused():
    space = SearchSpace(name="e1", resolutions=(8,), stages=(StageChoices(channels=8, stride=1, repeats=(1,),
                                                                           expands=(1, 3)),))
    with pytest.raises(SpaceError, match="expands holds 1"):
        Supernet(space, 1.0, 8)


def test_kernel_takes_the_centre_and_expand_the_first_channels():
    net = supernet()
    arch = Arch(((Block(3, 3), Block(5, 4)), (Block(7, 6), Block(3, 6))))
    model = net.subnet(arch)
    full = net.stages[0][0].depthwise_conv.weight  # 48 x 1 x 7 x 7
    small = model.blocks[1].depthwise.conv.weight  # 8 * 3 = 24 channels, 3 x 3
    assert small.shape == (24, 1, 3, 3)
    assert torch.equal(small, full[:24, :, 2:5, 2:5])
    assert torch.equal(model.blocks[2].depthwise.conv.weight, net.stages[0][1].depthwise_conv.weight[:64, :, 1:6, 1:6])
    assert torch.equal(model.blocks[1].project.conv.weight, net.stages[0][0].project_conv.weight[:, :24])


def test_depth_keeps_the_first_blocks():
    net = supernet()
    arch = Arch(((Block(7, 6),) * 2, (Block(7, 6),) * 3))
    model = net.subnet(arch)
    assert len(model.blocks) == 1 + 2 + 3
    assert torch.equal(model.blocks[3].expand.conv.weight, net.stages[1][0].expand_conv.weight)
    assert torch.equal(model.blocks[5].expand.conv.weight, net.stages[1][2].expand_conv.weight)
    x = torch.rand(4, 1, 12, 12)
    with torch.no_grad():  # the dropped blocks (stage 0's 3rd and 4th, stage 1's 4th) change nothing
        before = net(x, arch)
        for block in (net.stages[0][2], net.stages[0][3], net.stages[1][3]):
            block.expand_conv.weight.add_(1.0)
        assert torch.equal(net(x, arch), before)


def test_sort_channels_keeps_the_largest_and_reorders():
    net = supernet()
    x = torch.rand(8, 1, 12, 12)
    with torch.no_grad():
        before = net(x)
        first = net.stages[0][0]
        old = first.project_conv.weight.abs().sum(dim=(0, 2, 3)).clone()
        assert not torch.all(old[:-1] >= old[1:])  # random weights start unsorted
        net.sort_channels()
        new = first.project_conv.weight.abs().sum(dim=(0, 2, 3))
        assert torch.all(new[:-1] >= new[1:])
        assert torch.allclose(torch.sort(old).values, torch.sort(new).values)
        assert torch.allclose(net(x), before, atol=1e-5)
        # a smaller expand now keeps the most important channels
        assert torch.equal(net.subnet(net.smallest()).blocks[1].project.conv.weight, first.project_conv.weight[:, :24])


def test_elastic_block_sort_returns_descending_importance():
    torch.manual_seed(1)
    block = ElasticBlock(8, 8, 1, 7, 6, "relu6")
    importance = block.sort_channels()
    assert importance.shape == (48,) and torch.all(importance[:-1] >= importance[1:])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_extraction_equals_the_supernet(seed):
    net = supernet()
    arch = sample_arch(SMALL.stages, random.Random(seed))
    model = net.subnet(arch).eval()
    assert isinstance(model, TinyMobileNet)
    x = torch.rand(6, 1, 12, 12)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x, arch), atol=1e-5)


def test_recalibration_of_supernet_and_subnet_agree():
    net = supernet()
    arch = sample_arch(SMALL.stages, random.Random(7))
    images = [torch.rand(32, 1, 12, 12), torch.rand(32, 1, 12, 12)]
    model = net.subnet(arch)
    recalibrate_bn(model, images)
    recalibrate_bn(net, images, arch)
    assert not net.training and not model.training
    x = torch.rand(5, 1, 12, 12)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x, arch), atol=1e-4)
    block = model.blocks[1].expand.bn  # statistics averaged over both batches, not the defaults
    assert not torch.allclose(block.running_mean, torch.zeros_like(block.running_mean))


def test_extracted_subnet_quantises_and_compiles():
    net = supernet()
    arch = sample_arch(SMALL.stages, random.Random(11))
    model = net.subnet(arch).eval()
    graph = quantize_model(model, torch.rand(16, 1, 12, 12), name="subnet")
    compiled = compile_graph(graph)
    kinds = [op.kind for op in graph.ops]
    assert kinds.count("DEPTHWISE_CONV_2D") == 1 + sum(arch.depths)
    assert compiled.plan.arena_bytes > 0
