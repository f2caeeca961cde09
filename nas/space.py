"""MCUNet/ProxylessNAS-style search spaces as plain data: a grid of input resolutions R and width
multipliers W, a stem, stages of inverted-residual blocks with a per-stage depth and per-block
choices of expand ratio and kernel, and a head.

An architecture of a space (per-stage depth, per-block kernel and expand) is a `nas.arch.Arch`;
its network is an `engine.torch_models.TinyMobileNetConfig` with one `Stage` of one
block per inverted-residual block, so that every block may pick its own expand ratio and kernel.
The width multiplier scales every layer's channel count (stem, first block, stages, head; not the
input channels nor the classes) and rounds it to a multiple of 8 (`make_divisible`).

A space is data: `SPACES` names the built-in ones, and `load_space` also reads a user's own from
a JSON or YAML file whose keys are `SearchSpace`'s fields (`stages` a list of `StageChoices`'
fields); `space_to_dict` writes one back."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, fields, replace
from pathlib import Path

from engine.torch_models import ACTIVATIONS, Stage, TinyMobileNetConfig
from hil.errors import LabError
from nas.arch import Arch, sample_arch

CHANNEL_DIVISOR = 8


class SpaceError(LabError):
    """An unknown search space, or a space file that is malformed."""


def make_divisible(value: float, divisor: int = CHANNEL_DIVISOR, minimum: int | None = None) -> int:
    """`value` rounded to the nearest multiple of `divisor`, at least `minimum` (default: the
    divisor), and never more than 10 % below `value` (MobileNetV2's rule for scaled channels)."""
    minimum = divisor if minimum is None else minimum
    rounded = max(minimum, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def scale_channels(channels: int, width: float) -> int:
    """A layer's channel count under width multiplier `width` (0 stays 0: a layer the space leaves out)."""
    return make_divisible(channels * width) if channels else 0


@dataclass(frozen=True)
class StageChoices:
    """One stage: `channels` out (at width 1), the first block has `stride`; its depth is one of
    `repeats`, and each block picks an expand ratio from `expands` and a kernel from `kernels`."""

    channels: int
    stride: int
    repeats: tuple[int, ...]
    expands: tuple[int, ...] = (3, 4, 6)
    kernels: tuple[int, ...] = (3, 5, 7)


@dataclass(frozen=True)
class SearchSpace:
    name: str
    resolutions: tuple[int, ...]
    stages: tuple[StageChoices, ...]
    stem_channels: int = 16
    stem_kernel: int = 3
    stem_stride: int = 2
    first_block_channels: int = 8  # the fixed expand-1, kernel-3 block after the stem (0: none)
    head_channels: int = 0  # the final 1x1 conv before pooling (0: none)
    num_classes: int = 10
    input_channels: int = 3
    activation: str = "relu6"
    widths: tuple[float, ...] = (1.0,)  # the width multipliers of the grid

    @property
    def grid(self) -> list[tuple[float, int]]:
        """Every (width, resolution) of the space, width-major."""
        return [(w, r) for w in self.widths for r in self.resolutions]

    def at(self, width: float, resolution: int | None = None) -> SearchSpace:
        """The sub-space of one width (channels scaled, `widths` that one) and, if given, one resolution."""
        return replace(
            self, name=f"{self.name}@w{width:g}" + (f"r{resolution}" if resolution else ""),
            stages=tuple(replace(s, channels=scale_channels(s.channels, width)) for s in self.stages),
            stem_channels=scale_channels(self.stem_channels, width),
            first_block_channels=scale_channels(self.first_block_channels, width),
            head_channels=scale_channels(self.head_channels, width), widths=(1.0,),
            resolutions=(resolution,) if resolution else self.resolutions,
        )

    def sample(self, rng: random.Random, width: float | None = None, resolution: int | None = None) -> TinyMobileNetConfig:
        """A random network of the space: at `width` and `resolution` where given, else at random
        ones of the grid. Each stage draws its depth, then each block its expand and kernel."""
        arch = sample_arch(self.stages, rng)
        resolution = rng.choice(self.resolutions) if resolution is None else resolution
        if width is None:
            width = rng.choice(self.widths) if len(self.widths) > 1 else self.widths[0]
        return self.network(arch, width, resolution)

    def network(self, arch: Arch, width: float, resolution: int) -> TinyMobileNetConfig:
        """The network of architecture `arch` at `width` and `resolution`: one `Stage` per block."""
        arch.check(self.stages)
        blocks: list[Stage] = []
        if self.first_block_channels:
            blocks.append(Stage(expand=1, channels=scale_channels(self.first_block_channels, width), repeats=1,
                                stride=1, kernel=3))
        for stage, chosen in zip(self.stages, arch.stages):
            for index, block in enumerate(chosen):
                blocks.append(Stage(expand=block.expand, channels=scale_channels(stage.channels, width), repeats=1,
                                    stride=stage.stride if index == 0 else 1, kernel=block.kernel))
        return self.config(resolution, tuple(blocks), width)

    def config(self, resolution: int, blocks: tuple[Stage, ...], width: float = 1.0) -> TinyMobileNetConfig:
        """The network of `blocks` (channels already scaled) at `resolution`, stem and head at `width`."""
        return TinyMobileNetConfig(
            stages=blocks, input_size=resolution, input_channels=self.input_channels,
            stem_channels=scale_channels(self.stem_channels, width), stem_kernel=self.stem_kernel,
            stem_stride=self.stem_stride, head_channels=scale_channels(self.head_channels, width),
            num_classes=self.num_classes, activation=self.activation, softmax=False,
        )


# The one table of named spaces.
SPACES: dict[str, SearchSpace] = {
    # For tests and quick checks: 14 layer keys.
    "tiny": SearchSpace(
        name="tiny",
        resolutions=(32,),
        stem_channels=8,
        first_block_channels=0,
        stages=(
            StageChoices(channels=16, stride=2, repeats=(1, 2), expands=(3, 6), kernels=(3, 5)),
            StageChoices(channels=24, stride=2, repeats=(1,), expands=(4,), kernels=(3, 5)),
        ),
        head_channels=32,
    ),
    # MCUNet-like for the 320 KB SRAM of an STM32F746.
    "mcunet-f746": SearchSpace(
        name="mcunet-f746",
        resolutions=(48, 64, 80),
        stem_channels=16,
        first_block_channels=8,
        stages=(
            StageChoices(channels=16, stride=2, repeats=(1, 2)),
            StageChoices(channels=24, stride=2, repeats=(1, 2, 3)),
            StageChoices(channels=40, stride=2, repeats=(1, 2, 3)),
            StageChoices(channels=48, stride=1, repeats=(1, 2)),
            StageChoices(channels=96, stride=2, repeats=(1, 2)),
        ),
        head_channels=0,
    ),
    # Fashion-MNIST (28x28 grey images, 10 classes) resized to R: MobileNetV2's channels from the
    # stem to 96, the stem at full resolution and three stride-2 stages (R/8 at the last stage), so
    # that the first blocks' activations make SRAM bind; per-block kernel 3/5/7 and expand 3/4/6,
    # per-stage depth 2/3/4, on the grid of W and R for such images.
    "fashion-mnist": SearchSpace(
        name="fashion-mnist",
        resolutions=(16, 20, 24, 28, 32),
        widths=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
        input_channels=1,
        num_classes=10,
        stem_channels=32,
        stem_stride=1,
        first_block_channels=16,
        stages=(
            StageChoices(channels=24, stride=2, repeats=(2, 3, 4)),
            StageChoices(channels=40, stride=2, repeats=(2, 3, 4)),
            StageChoices(channels=80, stride=2, repeats=(2, 3, 4)),
            StageChoices(channels=96, stride=1, repeats=(2, 3, 4)),
        ),
        head_channels=0,
    ),
}
DEFAULT_SPACE = "fashion-mnist"


def get_space(name: str) -> SearchSpace:
    """A named space of SPACES."""
    if name not in SPACES:
        raise SpaceError(f"unknown search space {name!r}: one of {', '.join(SPACES)}, or a JSON/YAML space file")
    return SPACES[name]


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A named space of SPACES, or the space in a .json / .yaml / .yml file."""
    text = str(name_or_path)
    if text in SPACES:
        return SPACES[text]
    path = Path(text)
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        return get_space(text)
    if not path.is_file():
        raise SpaceError(f"space file {path} does not exist (a space is one of {', '.join(SPACES)}, or a file)")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            import yaml

            data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception as error:  # OSError, json.JSONDecodeError, yaml.YAMLError
        raise SpaceError(f"space file {path}: cannot be read: {error}") from None
    return space_from_dict(data, source=str(path))


def save_space(space: SearchSpace, path: str | Path) -> Path:
    """Write `space` as JSON (.json) or YAML (otherwise)."""
    path = Path(path)
    data = space_to_dict(space)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    else:
        import yaml

        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def space_to_dict(space: SearchSpace) -> dict:
    """The space as JSON-ready data (lists for tuples), in field order."""
    data: dict = {}
    for f in fields(space):
        value = getattr(space, f.name)
        if f.name == "stages":
            value = [{g.name: _plain(getattr(stage, g.name)) for g in fields(stage)} for stage in value]
        data[f.name] = _plain(value)
    return data


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


_STAGE_REQUIRED = ("channels", "stride", "repeats")
_SPACE_REQUIRED = ("name", "resolutions", "stages")
_TUPLE_FIELDS = {"resolutions", "widths", "repeats", "expands", "kernels"}


def space_from_dict(data: object, source: str = "space") -> SearchSpace:
    """A SearchSpace from data such as `space_to_dict` writes; a malformed one is refused with
    the field and the reason."""
    if not isinstance(data, dict):
        raise SpaceError(f"{source}: a space is a mapping of its fields, not {type(data).__name__}")
    values = _fields_of(SearchSpace, data, _SPACE_REQUIRED, source)
    stages = values["stages"]
    if not isinstance(stages, list) or not stages:
        raise SpaceError(f"{source}: 'stages' must be a non-empty list of stages")
    values["stages"] = tuple(
        StageChoices(**_fields_of(StageChoices, stage, _STAGE_REQUIRED, f"{source}: stages[{i}]"))
        for i, stage in enumerate(stages))
    space = SearchSpace(**values)
    check_space(space, source)
    return space


def _fields_of(cls, data: object, required: tuple[str, ...], where: str) -> dict:
    if not isinstance(data, dict):
        raise SpaceError(f"{where}: must be a mapping of fields, not {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpaceError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    missing = [name for name in required if name not in data]
    if missing:
        raise SpaceError(f"{where}: missing field(s) {', '.join(missing)}")
    values = {}
    for name, value in data.items():
        if name in _TUPLE_FIELDS:
            if not isinstance(value, list) or not value:
                raise SpaceError(f"{where}: '{name}' must be a non-empty list, not {value!r}")
            value = tuple(value)
        values[name] = value
    return values


def check_space(space: SearchSpace, source: str = "space") -> None:
    """Refuse values no network can be built from, naming the field."""
    def need(ok: bool, field_name: str, why: str) -> None:
        if not ok:
            raise SpaceError(f"{source}: '{field_name}' {why}")

    def ints(values, low: int) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in values)

    need(isinstance(space.name, str) and bool(space.name), "name", "must be a non-empty string")
    need(ints(space.resolutions, 1), "resolutions", f"must be whole numbers of pixels, not {list(space.resolutions)}")
    need(all(isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in space.widths), "widths",
         f"must be positive numbers, not {list(space.widths)}")
    for name in ("stem_channels", "num_classes", "input_channels", "stem_kernel"):
        need(ints([getattr(space, name)], 1), name, f"must be a whole number of at least 1, not {getattr(space, name)!r}")
    for name in ("first_block_channels", "head_channels"):
        need(ints([getattr(space, name)], 0), name, f"must be a whole number (0: none), not {getattr(space, name)!r}")
    need(space.stem_stride in (1, 2), "stem_stride", f"must be 1 or 2, not {space.stem_stride!r}")
    need(space.stem_kernel % 2 == 1, "stem_kernel", f"must be odd, not {space.stem_kernel}")
    need(space.activation in ACTIVATIONS and space.activation != "none", "activation",
         f"must be relu or relu6, not {space.activation!r}")
    for i, stage in enumerate(space.stages):
        where = f"stages[{i}]."
        need(ints([stage.channels], 1), where + "channels", f"must be a whole number of at least 1, not {stage.channels!r}")
        need(stage.stride in (1, 2), where + "stride", f"must be 1 or 2, not {stage.stride!r}")
        need(ints(stage.repeats, 1), where + "repeats", f"must be depths of at least 1, not {list(stage.repeats)}")
        need(ints(stage.expands, 1), where + "expands", f"must be expand ratios of at least 1, not {list(stage.expands)}")
        need(ints(stage.kernels, 1) and all(k % 2 for k in stage.kernels), where + "kernels",
             f"must be odd kernel sizes, not {list(stage.kernels)}")
