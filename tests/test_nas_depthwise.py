"""The supernet's depthwise convolution: its compiled weight gradient against torch's own."""
from __future__ import annotations

import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F

from nas.depthwise import depthwise_conv, torch_gradient_only, weight_grad, weight_grad_library
from nas.elastic import pad_same


def gradients(x: torch.Tensor, weight: torch.Tensor, stride: int, seed: int = 1) -> tuple[torch.Tensor, ...]:
    """Output, input gradient and weight gradient of depthwise_conv on SAME-padded `x`."""
    x, weight = x.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    out = depthwise_conv(pad_same(x, weight.shape[-1], stride), weight, stride)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    out.backward(upstream.contiguous(memory_format=torch.channels_last))
    return out.detach(), x.grad, weight.grad


def test_the_gradient_kernel_compiles_with_the_host_compiler():
    assert weight_grad_library() is not None, "gcc (installed by scripts/install.sh) should build the kernel"


@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels,size", [(13, 9), (72, 10), (130, 7)])
def test_gradients_equal_torchs_to_float_rounding(kernel, stride, channels, size):
    torch.manual_seed(channels + size)
    x = torch.randn(3, channels, size, size + 1).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(channels, 1, kernel, kernel)
    ours = gradients(x, weight, stride)
    with torch_gradient_only():
        theirs = gradients(x, weight, stride)
    assert torch.equal(ours[0], theirs[0])  # the same forward
    for name, mine, reference in zip(("input", "weight"), ours[1:], theirs[1:]):
        assert mine.shape == reference.shape
        scale = float(reference.abs().max())
        assert float((mine - reference).abs().max()) <= 1e-5 * scale, f"{name} gradient differs"


def test_weight_gradient_does_not_depend_on_the_thread_count():
    torch.manual_seed(0)
    x = torch.randn(4, 100, 12, 12)
    grad = torch.randn(4, 100, 6, 6)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = weight_grad(x, grad, 7, 1)
        torch.set_num_threads(max(threads, 2))
        several = weight_grad(x, grad, 7, 1)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single, several)
    assert float(single.abs().sum()) > 0


def test_shapes_the_kernel_cannot_take_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"output gradient \(1, 8, 9, 9\), kernel 7"):
        weight_grad(torch.zeros(1, 8, 10, 10), torch.zeros(1, 8, 9, 9), 7, 1)


def test_without_a_compiler_training_falls_back_to_torchs_gradient_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    weight_grad_library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="no host C compiler"):
            assert weight_grad_library() is None
        x, weight = torch.randn(2, 16, 8, 8), torch.randn(16, 1, 5, 5)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ours = gradients(x, weight, 1)
        reference = F.conv2d(pad_same(x, 5, 1), weight, groups=16)
        assert torch.equal(ours[0], reference)
        assert ours[2] is not None and not list(tmp_path.rglob("*.so"))
    finally:
        weight_grad_library.cache_clear()  # the next caller builds it again, with the real PATH
