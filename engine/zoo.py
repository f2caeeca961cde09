"""Built-in models. `default_model()` is "mcunet-tiny": a small MCUNet-like int8 network, built from
seeded weights and calibrated on seeded synthetic images, the same bytes on every call.
"mcunet-tiny-176" is its 176x176 form with a wider first stage: its whole-tensor plan needs more
SRAM than the F746 has, and it runs there only patch by patch (engine.patches)."""
from __future__ import annotations

import dataclasses

import torch

from engine.ir import Graph
from engine.quantize import quantize_model
from engine.torch_models import Stage, TinyMobileNet, TinyMobileNetConfig

DEFAULT_MODEL_NAME = "mcunet-tiny"
SEED = 20240601

MCUNET_TINY = TinyMobileNetConfig(
    input_size=48,
    input_channels=3,
    stem_channels=8,
    stages=(
        Stage(expand=1, channels=8, repeats=1, stride=1, kernel=3),
        Stage(expand=3, channels=16, repeats=2, stride=2, kernel=5),
        Stage(expand=4, channels=24, repeats=2, stride=2, kernel=3),
        Stage(expand=4, channels=32, repeats=1, stride=2, kernel=7),
    ),
    head_channels=64,
    num_classes=10,
    activation="relu6",
    softmax=True,
)

# Its first blocks at 88x88: the expansion to 48 channels alone is 371,712 B, past qemu-f746's
# 320 KB of SRAM, while the first stage's output at 44x44x16 is 30,976 B.
MCUNET_TINY_176 = dataclasses.replace(
    MCUNET_TINY,
    input_size=176,
    stem_channels=16,
    stages=(Stage(expand=1, channels=16, repeats=1, stride=1, kernel=3), *MCUNET_TINY.stages[1:]),
)
LARGE_MODEL_NAME = "mcunet-tiny-176"


def synthetic_images(config: TinyMobileNetConfig, count: int, seed: int) -> torch.Tensor:
    """Seeded image-like NCHW float64 data in about [-1, 1]: smooth random fields plus a little noise."""
    generator = torch.Generator().manual_seed(seed)
    c, h, w = config.input_shape
    coarse = torch.rand(count, c, max(h // 8, 2), max(w // 8, 2), generator=generator, dtype=torch.float64) * 2 - 1
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    noise = torch.randn(count, c, h, w, generator=generator, dtype=torch.float64) * 0.1
    return (smooth + noise).clamp(-1.0, 1.0)


def seeded_model(config: TinyMobileNetConfig = MCUNET_TINY, seed: int = SEED) -> TinyMobileNet:
    """A float64 TinyMobileNet in eval mode with seeded weights and non-trivial BatchNorm statistics
    (a few seeded batches run in train mode). Leaves torch's global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyMobileNet(config).double()
        generator = torch.Generator().manual_seed(seed + 1)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.data.uniform_(0.5, 1.5, generator=generator)
                module.bias.data.normal_(0.0, 0.2, generator=generator)
                module.momentum = None  # a plain average over the statistics batches
    model.train()
    with torch.no_grad():
        for batch in range(4):
            model(synthetic_images(config, 16, seed + 100 + batch))
    return model.eval()


def calibration_images(config: TinyMobileNetConfig = MCUNET_TINY, count: int = 32, seed: int = SEED + 1000) -> torch.Tensor:
    return synthetic_images(config, count, seed)


def default_model() -> Graph:
    """mcunet-tiny as an int8 Graph: 48x48x3 input, 10 classes, softmax output."""
    model = seeded_model()
    return quantize_model(model, calibration_images(), name=DEFAULT_MODEL_NAME, pool="MEAN")


def large_model() -> Graph:
    """mcunet-tiny-176 as an int8 Graph: 176x176x3 input, 10 classes, softmax output."""
    model = seeded_model(MCUNET_TINY_176)
    return quantize_model(model, calibration_images(MCUNET_TINY_176), name=LARGE_MODEL_NAME, pool="MEAN")
