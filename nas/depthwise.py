"""The supernet's depthwise convolution, with a faster weight gradient on the CPU.

Profiled on a supernet's training step (W 0.7, R 28, batch 64, 2 cores), torch's backward of the
5×5 and 7×7 depthwise convolutions took about 40 % of the step, two thirds of it in the weight
gradient, which a plain vectorised loop computes about 3 times faster. `depthwise_conv` keeps
torch's forward and input gradient and takes the weight gradient from
`kernels/depthwise_weight_grad.c`, compiled with the host's gcc into the cache on first use. It
runs on torch's own OpenMP threads (the library's libgomp.so.1 is the one torch has loaded), on
torch's thread count: threads of its own would compete with torch's, which spin for a while after
each parallel op. `scripts/bench_training_step.py` measures the gain per training step (1.28× at
W 0.7, R 28 on 2 cores; 1.15× when the kernel ran on Python threads of its own).

3×3 kernels keep torch's gradient (faster there), and so does everything when no C compiler is at
hand (with one warning). The two gradients agree to float rounding, not bit for bit, so a supernet
trained before this module existed is not reproduced to the last bit."""
from __future__ import annotations

import ctypes
import functools
import platform
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from engine.hostlib import HostLibraryError, host_library

SOURCE = Path(__file__).with_name("kernels") / "depthwise_weight_grad.c"
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
KERNELS = range(5, 12)  # square kernel sizes the C gradient takes (MAX_KERNEL is 11 in the source)

_settings = {"torch_gradient_only": False}


def _cpu_signature() -> bytes:
    """What -march=native depends on, so that a cache shared between machines holds one library each."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor().encode()
    return "".join(sorted({line for line in lines if line.startswith(("model name", "flags"))})).encode()


@functools.lru_cache(maxsize=None)
def weight_grad_library() -> ctypes.CDLL | None:
    """The compiled kernel (built into the cache on first use), or None where it cannot be built."""
    try:
        target = host_library("nas", "depthwise_weight_grad", SOURCE, FLAGS, key_extra=_cpu_signature())
    except (HostLibraryError, OSError) as error:
        warnings.warn(f"training uses torch's slower depthwise weight gradient: {error}", RuntimeWarning, stacklevel=2)
        return None
    library = ctypes.CDLL(str(target))
    library.tl_depthwise_weight_grad.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 9
    library.tl_depthwise_weight_grad.restype = ctypes.c_int
    return library


@contextmanager
def torch_gradient_only() -> Iterator[None]:
    """Within this block, every depthwise convolution takes torch's own gradient (for comparisons)."""
    before = _settings["torch_gradient_only"]
    _settings["torch_gradient_only"] = True
    try:
        yield
    finally:
        _settings["torch_gradient_only"] = before


def weight_grad(x: torch.Tensor, grad: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """The [C, 1, k, k] gradient of a depthwise convolution's weights, from its padded input `x`
    [N, C, H, W] and the gradient of its output."""
    library = weight_grad_library()
    assert library is not None, "weight_grad needs the compiled kernel"
    batch, channels, height, width = x.shape
    out_height, out_width = grad.shape[-2:]
    x_last = x.detach().permute(0, 2, 3, 1).contiguous()
    grad_last = grad.permute(0, 2, 3, 1).contiguous()
    result = torch.empty(channels, 1, kernel, kernel, dtype=torch.float32)
    code = library.tl_depthwise_weight_grad(x_last.data_ptr(), grad_last.data_ptr(), result.data_ptr(), batch, height,
                                            width, channels, out_height, out_width, kernel, stride,
                                            torch.get_num_threads())
    if code != 0:
        raise ValueError(f"depthwise weight gradient: shapes it cannot take: input {tuple(x.shape)}, "
                         f"output gradient {tuple(grad.shape)}, kernel {kernel}, stride {stride}")
    return result


def input_grad(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, stride: int) -> torch.Tensor:
    """The gradient of the padded input: torch's own at stride 1; at stride 2 and more the transposed
    convolution, which torch's CPU backward computes about 1.7 times slower (measured at 96 channels,
    28×28, 7×7, stride 2, batch 64)."""
    if stride == 1:
        return torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0],
                                                   x.shape[1], [True, False, False])[0]
    kernel_height, kernel_width = weight.shape[-2:]
    extra = (x.shape[-2] - kernel_height) % stride, (x.shape[-1] - kernel_width) % stride
    return F.conv_transpose2d(grad, weight, stride=stride, output_padding=extra, groups=x.shape[1])


class _DepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride = stride
        return F.conv2d(x, weight, stride=stride, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, weight = ctx.saved_tensors
        stride = ctx.stride
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = input_grad(x, weight, grad, stride)
        if ctx.needs_input_grad[1]:
            grad_weight = weight_grad(x, grad, weight.shape[-1], stride)
        return grad_x, grad_weight, None


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """F.conv2d(x, weight, stride=stride, groups=channels) on an already padded `x`, whose weight
    gradient comes from the C kernel where it is faster."""
    kernel = weight.shape[-1]
    if (weight.requires_grad and torch.is_grad_enabled() and not _settings["torch_gradient_only"]
            and kernel in KERNELS and weight.shape[-2] == kernel and x.device.type == "cpu"
            and x.dtype == weight.dtype == torch.float32 and weight_grad_library() is not None):
        return _DepthwiseConv.apply(x, weight, stride)
    return F.conv2d(x, weight, stride=stride, groups=x.shape[1])
