"""The patch rewrite: a graph whose first ops run patch by patch, as an ordinary graph.

For a grid of rows x cols patches of the stage's output tensor, each patch gets its own copy of
the stage's ops on regions (engine.patches.regions): tensors as small as the region, EXPLICIT
padding only where the region meets the tensor's border, PATCH_CROP where an op reads less than
the region a tensor holds, and a PATCH_PASTE of the patch's output region into the stage's
output, which the pastes assemble in place. The rest of the graph is unchanged. The memory
planner then sees what is live at each step: the model's input until the last patch has read it,
the stage's output from the first paste on, and one patch's tensors at a time."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.patches.regions import READS_ANY_REGION, Region, check_patchable, graph_macs, input_regions, region_attrs, whole

_GRID_RE = re.compile(r"^(\d+)x(\d+)@(\d+)$")
# The layers whose patches share one function, their sizes read at run time (engine.codegen.geometry).
SHARED_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D")


@dataclass(frozen=True)
class PatchGrid:
    """The first `split` ops of the source model run on `rows` x `cols` patches."""

    rows: int
    cols: int
    split: int

    def __str__(self) -> str:
        return f"{self.rows}x{self.cols}@{self.split}"

    @classmethod
    def parse(cls, text: str) -> "PatchGrid":
        """`PxQ@N`: P rows by Q columns of patches for the first N ops."""
        found = _GRID_RE.match(text.strip())
        if not found:
            raise ValueError(f"patches {text!r}: expected PxQ@N, such as 4x4@6 (4 by 4 patches for the first 6 ops)")
        grid = cls(*(int(v) for v in found.groups()))
        if min(grid.rows, grid.cols, grid.split) < 1 or grid.rows * grid.cols < 2:
            raise ValueError(f"patches {text!r}: at least 2 patches and 1 op")
        return grid


@dataclass(frozen=True)
class PatchedGraph:
    graph: Graph  # the rewritten graph: the stage once per patch, then the rest
    grid: PatchGrid
    stage_ops: int  # ops of the (PAD-folded) graph in the stage
    stage_output: int  # tensor index of the stage's output, whole
    halo_macs: int  # what the patches compute beyond the stage's own MACs: their overlapping halos
    patch_ops: int = 0  # ops the patches run, all patches together (their crops and pastes included)


def stage_length(graph: Graph, split: int) -> int:
    """Ops of `graph` (PAD folded, so fewer than the source's) among the source's first `split`."""
    return sum(1 for op in graph.ops if op.index < split)


def stage_output(graph: Graph, length: int) -> int:
    """The one tensor that the first `length` ops pass to the rest of the graph; UnsupportedOpError
    naming why these ops cannot run by patches."""
    name = f"model {graph.name}"
    if not 1 <= length <= len(graph.ops):
        raise UnsupportedOpError(f"{name}: a patch stage of {length} ops; the graph has {len(graph.ops)}")
    if len(graph.inputs) != 1:
        raise UnsupportedOpError(f"{name}: patches take a model with one input; it has {len(graph.inputs)}")
    known = {graph.inputs[0]}
    lead = prologue_length(graph)
    if lead >= length:
        raise UnsupportedOpError(f"{name}: the first {length} ops only reshape or quantise the input; a patch stage needs more")
    known.update(op.outputs[0] for op in graph.ops[:lead])
    for op in graph.ops[lead:length]:
        where = f"{name}: op {op.index} ({op.kind})"
        check_patchable(graph, op, where)
        for t in op.inputs:
            if t >= 0 and graph.tensors[t].data is None and t not in known:
                raise UnsupportedOpError(f"{where}: reads tensor {t}, which the patch stage does not make")
        known.update(op.outputs)
    later = {t for op in graph.ops[length:] for t in op.inputs if t >= 0} | set(graph.outputs)
    crossing = sorted(t for op in graph.ops[:length] for t in op.outputs if t in later)
    if len(crossing) != 1:
        last = graph.ops[length - 1]
        raise UnsupportedOpError(f"{name}: after op {last.index} ({last.kind}), {len(crossing)} tensors pass to the rest "
                                 "of the graph; a patch stage must end where one does")
    return crossing[0]


# Ops that may lead the model and run once, whole, before the patches: they only reshape the input
# (micro_speech's flat features to an image) or quantise it (a float input); the patches read
# their output.
PROLOGUE_KINDS = ("RESHAPE", "QUANTIZE")


def prologue_length(graph: Graph) -> int:
    """How many ops at the start only reshape or quantise the input (PROLOGUE_KINDS)."""
    source, count = graph.inputs[0] if graph.inputs else -1, 0
    for op in graph.ops:
        if op.kind not in PROLOGUE_KINDS or op.inputs[0] != source:
            break
        source, count = op.outputs[0], count + 1
    return count


def stage_ends(graph: Graph) -> list[tuple[int, int]]:
    """(N, stage output tensor) for every source-op count N that is a stage able to run by patches."""
    found = []
    for length in range(1, len(graph.ops) + 1):
        try:
            output = stage_output(graph, length)
        except UnsupportedOpError:
            continue
        following = graph.ops[length].index if length < len(graph.ops) else graph.ops[-1].index + 1
        found.append((following, output))
    return found


def split_points(graph: Graph) -> list[int]:
    """Every source-op count N for which `PxQ@N` is a stage that can run by patches (PAD folded)."""
    return [point for point, _ in stage_ends(graph)]


def first_stage(graph: Graph) -> int | None:
    """The split of the network's first stage: the deepest split point whose output has the
    height and width of the first one's (None: no stage can run by patches)."""
    stages = stage_ends(graph)
    if not stages:
        return None
    size = graph.tensors[stages[0][1]].shape[1:3]
    return max(point for point, output in stages if graph.tensors[output].shape[1:3] == size)


def cells(height: int, width: int, grid: PatchGrid) -> list[Region]:
    """The output regions of the patches, row by row; sizes differ by at most one."""
    ys = [height * i // grid.rows for i in range(grid.rows + 1)]
    xs = [width * j // grid.cols for j in range(grid.cols + 1)]
    return [Region(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(grid.rows) for j in range(grid.cols)]


def patch_graph(graph: Graph, grid: PatchGrid) -> PatchedGraph:
    """`graph` (PAD folded) with its first `grid.split` source ops run patch by patch."""
    length = stage_length(graph, grid.split)
    output = stage_output(graph, length)
    lead = prologue_length(graph)
    stage = graph.ops[lead:length]
    _, height, width, _ = graph.tensors[output].shape
    if height < grid.rows or width < grid.cols:
        raise UnsupportedOpError(f"model {graph.name}: {grid.rows}x{grid.cols} patches of the stage's {height}x{width} "
                                 "output leave a patch empty")
    builder = _Builder(graph, graph.ops[lead - 1].outputs[0] if lead else graph.inputs[0])
    builder.ops += graph.ops[:lead]
    partial: int | None = None
    regions = cells(height, width, grid)
    for number, region in enumerate(regions):
        partial = builder.patch(stage, output, region, number, partial, last=number == len(regions) - 1)
    builder.mark_shared()
    patched = dataclasses.replace(graph, tensors=builder.tensors, ops=builder.ops + list(graph.ops[length:]))
    return PatchedGraph(patched, grid, length, output, graph_macs(patched, builder.ops) - graph_macs(graph, stage),
                        len(builder.ops) - lead)


class _Builder:
    """The rewritten graph's tensors and stage ops, a patch at a time."""

    def __init__(self, graph: Graph, source: int) -> None:
        self.graph = graph
        self.source = source  # the whole tensor the patches read: the input, or its reshape
        self.tensors: list[Tensor] = list(graph.tensors)
        self.ops: list[Op] = []

    def add_tensor(self, like: int, region: Region | None, suffix: str) -> int:
        """A tensor quantised as `like`, of `region`'s size (None: `like`'s whole size)."""
        tensor = self.graph.tensors[like]
        shape = tensor.shape if region is None else (1, region.height, region.width, tensor.shape[3])
        self.tensors.append(dataclasses.replace(tensor, name=f"{tensor.name}{suffix}", shape=tuple(shape), data=None))
        return len(self.tensors) - 1

    def patch(self, stage: list[Op], output: int, region: Region, number: int, partial: int | None, last: bool) -> int:
        """Append one patch's ops; the tensor its paste leaves (the stage output after the last)."""
        needed, reads = _needs(self.graph, stage, output, region)
        held: dict[int, tuple[int, Region]] = {self.source: (self.source, whole(self.graph, self.source))}
        crops: dict[tuple[int, Region], int] = {}

        def take(tensor: int, want: Region, index: int) -> int:
            """A tensor holding exactly `want` of `tensor`: the one held, or a crop of it."""
            source, have = held[tensor]
            if have == want:
                return source
            if (tensor, want) not in crops:
                cropped = self.add_tensor(tensor, want, f"@patch{number}:crop")
                self.ops.append(Op("PATCH_CROP", (source,), (cropped,), {"y0": want.y0 - have.y0, "x0": want.x0 - have.x0},
                                   index=index))
                crops[(tensor, want)] = cropped
            return crops[(tensor, want)]

        for position, op in enumerate(stage):
            wants = reads.get(position)
            if wants is None:
                continue  # nothing this patch needs
            out = needed[op.outputs[0]]
            where = f"model {self.graph.name}: op {op.index} ({op.kind})"
            if op.kind in READS_ANY_REGION:  # reads the region held, whatever its size
                source, have = held[op.inputs[0]]
                inputs, attrs = [source, *op.inputs[1:]], region_attrs(self.graph, op, out, have, where)
            else:
                inputs = [take(t, wants[k], op.index) if k in wants else t for k, t in enumerate(op.inputs)]
                attrs = region_attrs(self.graph, op, out, wants[0], where)
            if op.kind == "PAD" and len(inputs) > 1:
                inputs[1] = self._paddings_constant(op.inputs[1], attrs["paddings"])
            produced = self.add_tensor(op.outputs[0], out, f"@patch{number}")
            self.ops.append(dataclasses.replace(op, inputs=tuple(inputs), outputs=(produced,), attrs=attrs))
            held[op.outputs[0]] = (produced, out)
        source = take(output, region, stage[-1].index)
        into = output if last else self.add_tensor(output, None, f"@patch{number}:assembled")
        self.ops.append(Op("PATCH_PASTE", (source,) if partial is None else (source, partial), (into,),
                           {"y0": region.y0, "x0": region.x0}, index=stage[-1].index))
        return into

    def mark_shared(self) -> None:
        """Mark the convolutions of the patches `shared` with the largest output (height, width)
        among the patches of the same layer: code generation gives them one function, which reads
        each patch's sizes and paddings at run time (engine.codegen.geometry)."""
        largest: dict[tuple[int, str], tuple[int, int]] = {}
        for op in self.ops:
            if op.kind in SHARED_KINDS:
                _, oh, ow, _ = self.tensors[op.outputs[0]].shape
                h, w = largest.get((op.index, op.kind), (0, 0))
                largest[(op.index, op.kind)] = (max(h, oh), max(w, ow))
        self.ops = [dataclasses.replace(op, attrs={**op.attrs, "shared": largest[(op.index, op.kind)]})
                    if op.kind in SHARED_KINDS else op for op in self.ops]

    def _paddings_constant(self, like: int, paddings) -> int:
        tensor = self.graph.tensors[like]
        data = np.asarray(paddings, dtype=tensor.data.dtype).reshape(tensor.data.shape)
        self.tensors.append(dataclasses.replace(tensor, name=f"{tensor.name}@patch", data=data))
        return len(self.tensors) - 1


def _needs(graph: Graph, stage: list[Op], output: int, region: Region) -> tuple[dict[int, Region], dict[int, dict[int, Region]]]:
    """From the stage's output region back: the region of each tensor the patch needs (the union
    of what its readers need) and, by stage position, the region of each input each op reads."""
    needed: dict[int, Region] = {output: region}
    reads: dict[int, dict[int, Region]] = {}
    for position in reversed(range(len(stage))):
        op = stage[position]
        if op.outputs[0] not in needed:
            continue
        wants = input_regions(graph, op, needed[op.outputs[0]], f"model {graph.name}: op {op.index} ({op.kind})")
        reads[position] = wants
        for k, want in wants.items():
            t = op.inputs[k]
            needed[t] = want.union(needed.get(t))
    return needed, reads
