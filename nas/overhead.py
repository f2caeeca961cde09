"""A board's fixed overhead, measured: what a network's firmware takes beyond its planned arena
(SRAM: the model's statics outside the arena and the stack high-water) and beyond its int8
constants (flash: the generated code, the kernel library and the lab's harness).

Two networks of the space are built and run on the board (`hil.experiments.modelrun.run_model`):
the smallest (least depth, first choices, at the least width and resolution) and the deepest
(greatest depth, the choices in turn). The flash of code is fitted as a line in the number of
layers through the two; the SRAM overhead is the larger of the two. The result is cached per
board, per latency key (`nas.lutkey.current_key`: kernels, code generator, toolchain, flags),
and per space (whose networks they are), so it is measured again only when one of them changes."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from itertools import cycle
from pathlib import Path

from engine.cache import cache_root, write_text_atomically
from engine.torch_models import Stage, TinyMobileNetConfig
from hil.errors import LabError
from hil.experiments.modelrun import ModelRun
from hil.targets.boardspec import BoardSpec
from nas.footprint import constant_bytes
from nas.lutkey import LatencyKey, current_key
from nas.shapegraph import network_graph
from nas.space import SearchSpace, scale_channels


@dataclass(frozen=True)
class BoardOverhead:
    """What a board adds to a network's planned arena and int8 constants."""

    board: str
    key: str  # the latency key's short digest it was measured under
    sram_bytes: int  # model statics outside the arena + stack high-water (the larger of the two networks)
    stack_bytes: int  # of which the stack high-water
    code_base_bytes: int  # flash of code and harness for a network of no layers (the line's intercept)
    code_per_op_bytes: float  # flash of code per layer of the firmware's graph (the line's slope)
    measured: tuple[dict, ...] = ()  # each reference network's figures, as measured
    # The code patches add (engine.patches), a line in the ops they run: the shared functions'
    # run-time geometry, then each op's call and geometry. None until measured (`measure_patch_code`).
    patch_code_base_bytes: int | None = None
    patch_code_per_op_bytes: float | None = None

    def flash_bytes(self, constants: int, ops: int) -> int:
        """A network's flash: its int8 constants plus the code and harness for `ops` layers."""
        return constants + int(round(self.code_base_bytes + self.code_per_op_bytes * ops))

    def patch_code_bytes(self, patch_ops: int) -> int:
        """The code a patch plan of `patch_ops` ops adds to a network's image."""
        if self.patch_code_base_bytes is None or self.patch_code_per_op_bytes is None:
            raise LabError(f"{self.board}'s overhead has no patch code measured (nas.overhead.board_overhead with "
                           "patches=True measures it)")
        return int(round(self.patch_code_base_bytes + self.patch_code_per_op_bytes * patch_ops))

    def to_json(self) -> dict:
        return {**asdict(self), "measured": list(self.measured)}

    @classmethod
    def from_json(cls, data: dict) -> BoardOverhead:
        return cls(**{**data, "measured": tuple(data.get("measured", ()))})


def overhead_path(key: LatencyKey, space: SearchSpace) -> Path:
    """`nas/overhead/BOARD/KERNELS-SHORTKEY-SPACE.json` in the cache (the space gives the reference networks)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in space.name)
    return cache_root() / "nas" / "overhead" / key.board / f"{key.kernels}-{key.short}-{safe}.json"


def reference_networks(space: SearchSpace) -> tuple[TinyMobileNetConfig, TinyMobileNetConfig]:
    """The smallest and the deepest network of the space at its least width and resolution."""
    width, resolution = min(space.widths), min(space.resolutions)
    expands, kernels = cycle(sorted({e for s in space.stages for e in s.expands})), cycle(
        sorted({k for s in space.stages for k in s.kernels}))

    def blocks(deepest: bool) -> tuple[Stage, ...]:
        found = [Stage(1, scale_channels(space.first_block_channels, width), 1, 1, 3)] if space.first_block_channels else []
        for stage in space.stages:
            for index in range(max(stage.repeats) if deepest else min(stage.repeats)):
                expand = next(e for e in expands if e in stage.expands) if deepest else stage.expands[0]
                kernel = next(k for k in kernels if k in stage.kernels) if deepest else stage.kernels[0]
                found.append(Stage(expand, scale_channels(stage.channels, width), 1, stage.stride if index == 0 else 1,
                                   kernel))
        return tuple(found)

    return space.config(resolution, blocks(False), width), space.config(resolution, blocks(True), width)


def measure_overhead(board: BoardSpec, space: SearchSpace, progress=None) -> BoardOverhead:
    """Build and run the space's two reference networks on the board; the overhead from their figures."""
    from nas.measure import measure_network

    key = current_key(board)
    rows = []
    for label, config in zip(("smallest", "deepest"), reference_networks(space)):
        run: ModelRun = measure_network(board, config, f"nas-overhead:{space.name}:{label}", seed=7)
        graph = network_graph(config)
        code = code_and_harness(run)
        rows.append({"network": label, "ops": len(graph.ops), "arena_planned_bytes": run.arena_planned,
                     "peak_sram_bytes": run.peak_sram, "stack_high_water_bytes": run.stack_high_water,
                     "model_static_bytes": run.model_static_ram, "flash_bytes": run.flash,
                     "constant_bytes": constant_bytes(graph), "code_and_harness_bytes": code,
                     "lab_static_bytes": run.lab_overhead})
        if progress is not None:
            progress(f"{label} network ({len(graph.ops)} layers): peak SRAM {run.peak_sram:,} B = arena "
                     f"{run.arena_planned:,} B + {run.peak_sram - run.arena_planned:,} B; code and harness {code:,} B")
    small, deep = rows
    slope = ((deep["code_and_harness_bytes"] - small["code_and_harness_bytes"]) / (deep["ops"] - small["ops"])
             if deep["ops"] != small["ops"] else 0.0)
    worst = max(rows, key=lambda r: r["peak_sram_bytes"] - r["arena_planned_bytes"])
    return BoardOverhead(
        board=board.name, key=key.short, sram_bytes=worst["peak_sram_bytes"] - worst["arena_planned_bytes"],
        stack_bytes=worst["stack_high_water_bytes"],
        code_base_bytes=int(round(small["code_and_harness_bytes"] - slope * small["ops"])),
        code_per_op_bytes=round(slope, 2), measured=tuple(rows))


# The grids the patch code is measured on: the deepest reference network's first stage
# (engine.patches.rewrite.first_stage) on each.
PATCH_CODE_GRIDS = (2, 4)


def measure_patch_code(board: BoardSpec, space: SearchSpace, overhead: BoardOverhead, progress=None) -> BoardOverhead:
    """`overhead` with the patch code measured: the deepest reference network on each of
    PATCH_CODE_GRIDS, its code less the whole network's (measured with `overhead`), as a line in
    the patch ops."""
    from nas.measure import first_stage_grids, measure_network
    from nas.patching import grid_plan

    config = reference_networks(space)[1]
    whole = next(r for r in overhead.measured if r["network"] == "deepest")["code_and_harness_bytes"]
    points = []
    for grid in first_stage_grids(config, PATCH_CODE_GRIDS, f"the deepest network of {space.name}"):
        run = measure_network(board, config, f"nas-overhead:{space.name}:deepest@{grid}", seed=7, patches=grid)
        code = code_and_harness(run)
        points.append((grid_plan(config, grid).patch_ops, code - whole))
        if progress is not None:
            progress(f"deepest network at {grid} patches ({points[-1][0]} patch ops): code +{code - whole:,} B")
    (ops_a, code_a), (ops_b, code_b) = points
    slope = (code_b - code_a) / (ops_b - ops_a)
    return replace(overhead, patch_code_base_bytes=int(round(code_a - slope * ops_a)),
                   patch_code_per_op_bytes=round(slope, 2))


def code_and_harness(run: ModelRun) -> int:
    """A run's flash less its int8 weights: the generated code, the kernel library and the harness."""
    parts = run.flash_parts
    return (parts.code + parts.lab) if parts is not None else run.flash - run.weights_bytes


def board_overhead(board: BoardSpec, space: SearchSpace, progress=None, refresh: bool = False,
                   patches: bool = False) -> tuple[BoardOverhead, bool]:
    """The board's overhead from the cache, else measured and cached, with the patch code when
    `patches` (measured if missing); and whether any of it was measured now."""
    path = overhead_path(current_key(board), space)
    measured = refresh or not path.is_file()
    overhead = (measure_overhead(board, space, progress) if measured
                else BoardOverhead.from_json(json.loads(path.read_text(encoding="utf-8"))))
    if patches and overhead.patch_code_per_op_bytes is None:
        overhead, measured = measure_patch_code(board, space, overhead, progress), True
    if measured:
        write_text_atomically(path, json.dumps(overhead.to_json(), indent=2) + "\n")
    return overhead, measured
