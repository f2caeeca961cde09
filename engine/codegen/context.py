"""The state the op emitters write into while one model is generated: its constant arrays, the
static functions of the optimised layers, and the pointers to tensors and scratch in the arena."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from engine.codegen.literals import CTYPES, ConstArray, c_float, c_int, comment_safe, shape_text
from engine.errors import UnsupportedOpError
from engine.ir import Graph, Op, Tensor
from engine.memory_plan import MemoryPlan

SCRATCH_ALIGNMENT = 8  # LDRD needs word-aligned operands; 8 keeps int64 views possible


class EmitContext:
    """One model's generation under one kernel set; `wide`: the positions of the layers whose
    weights the optimised kernels store as int16 (engine.codegen.widening)."""

    def __init__(self, graph: Graph, plan: MemoryPlan, prefix: str, kernels: str, wide: frozenset[int]) -> None:
        self.graph = graph
        self.plan = plan
        self.prefix = prefix
        self.kernels = kernels
        self.wide = wide
        self.arrays: list[ConstArray] = []
        self.array_of_tensor: dict[int, str] = {}
        self.uses_float = False
        self.functions: list[str] = []  # static per-layer functions (optimised kernels)
        # Identical bodies and constant arrays are emitted once (the patches of a stage share them).
        self._function_of_body: dict[str, str] = {}
        self._array_of_values: dict[tuple[str, tuple[str, ...]], str] = {}
        self.static_scratch = 0  # bytes of the scratch buffer outside the arena (0: none needed)
        self.overlaps = dict(getattr(plan, "overlaps", {}) or {})

    @property
    def optimized(self) -> bool:
        return self.kernels == "optimized"

    def function(self, position: int, body: list[str], args: Sequence[tuple[str, str]] = ()) -> str:
        """Define `static void {prefix}_op{position}(...)` with `body` (unless a function with the
        same parameters and body exists); the call to it. `args`: (parameter declaration, value),
        the tensors' and scratch's pointers, so that the patches of a stage, which differ only in
        where their tensors lie, share one function."""
        parameters = ", ".join(declaration for declaration, _ in args) or "void"
        key = parameters + "\n" + "\n".join(body)
        if key not in self._function_of_body:
            name = f"{self.prefix}_op{position}"
            text = "\n".join([f"static __attribute__((noinline)) void {name}({parameters})", "{"]
                             + [("    " + line) if line else "" for line in body] + ["}"])
            self.functions.append(text)
            self._function_of_body[key] = name
        return f"{self._function_of_body[key]}({', '.join(value for _, value in args)});"

    def tensor_args(self, op: Op) -> list[tuple[str, str]]:
        """`in` and `out` as function arguments: the op's first input and its output."""
        return [("const int8_t *in", self.ptr(op.inputs[0], const=True)), ("int8_t *out", self.ptr(op.outputs[0]))]

    def room(self, position: int, op: Op, needed: int) -> str:
        """A `uint8_t *` expression for `needed` bytes of scratch at this op, 8-byte aligned: the
        plan's scratch for the op if large enough, else arena bytes that no tensor alive at this
        step uses, else a static buffer outside the arena."""
        if needed <= 0:
            return "NULL"
        size = self.plan.scratch_sizes.get(position, 0)
        if size >= needed and self.plan.scratch_offsets[position] % SCRATCH_ALIGNMENT == 0:
            return f"&{self.prefix}_arena[{self.plan.scratch_offsets[position]}]"
        if position in self.overlaps and not self.optimized:
            raise UnsupportedOpError(
                f"{self.where(op)}: the plan overlaps its output with its input but gives its kernel {size} bytes "
                f"of scratch; it needs {needed}"
            )
        free = self.free_arena(position, needed)
        if free is not None:
            return f"&{self.prefix}_arena[{free}]"
        self.static_scratch = max(self.static_scratch, needed)
        return f"(uint8_t *){self.prefix}_scratch"

    def free_arena(self, position: int, needed: int) -> int | None:
        """The lowest aligned arena offset with `needed` bytes that nothing alive at this step uses."""
        busy = [(p.offset, p.offset + p.size) for p in self.plan.placements.values()
                if p.first_step <= position <= p.last_step and p.size > 0]
        if position in self.plan.scratch_offsets:
            start = self.plan.scratch_offsets[position]
            busy.append((start, start + self.plan.scratch_sizes[position]))
        candidate = 0
        for start, end in sorted(busy):
            if candidate + needed <= start:
                return candidate
            candidate = max(candidate, -(-end // SCRATCH_ALIGNMENT) * SCRATCH_ALIGNMENT)
        return candidate if candidate + needed <= self.plan.arena_bytes else None

    # -- naming and pointers --
    def where(self, op: Op) -> str:
        return f"model {self.graph.name}: op {op.index} ({op.kind})"

    def const_array(self, index: int) -> str:
        if index in self.array_of_tensor:
            return self.array_of_tensor[index]
        tensor = self.graph.tensors[index]
        ctype = CTYPES[tensor.dtype]
        data = np.asarray(tensor.data).ravel()
        if tensor.dtype == "float32":
            values = [c_float(v) for v in data]
            self.uses_float = True
        else:
            values = [c_int(v) for v in data.astype(np.int64)]
        name = f"{self.prefix}_t{index}"
        comment = f"tensor {index} '{comment_safe(tensor.name)}': {shape_text(tensor.shape)} {tensor.dtype}"
        self.arrays.append(ConstArray(name, ctype, values or ["0"], comment))
        self.array_of_tensor[index] = name
        return name

    def int32_array(self, name: str, values: Sequence[int], comment: str) -> str:
        literals = tuple(c_int(v) for v in values)
        if ("int32_t", literals) not in self._array_of_values:
            full = f"{self.prefix}_{name}"
            self.arrays.append(ConstArray(full, "int32_t", list(literals), comment))
            self._array_of_values[("int32_t", literals)] = full
        return self._array_of_values[("int32_t", literals)]

    def ptr(self, index: int, *, const: bool = False) -> str:
        """A C expression pointing at tensor `index`: its arena bytes, or its constant array."""
        if index < 0:
            return "NULL"
        tensor = self.graph.tensors[index]
        ctype = CTYPES[tensor.dtype]
        if tensor.dtype == "float32":
            self.uses_float = True
        if tensor.data is not None:
            return self.const_array(index)
        placement = self.plan.placements.get(index)
        if placement is None:
            raise UnsupportedOpError(f"model {self.graph.name}: tensor {index} '{tensor.name}' has no place in the memory plan")
        qualifier = "const " if const else ""
        return f"({qualifier}{ctype} *)&{self.prefix}_arena[{placement.offset}]"

    def scratch(self, position: int, op: Op, needed: int) -> str:
        """An `int32_t *` to the scratch the plan gives this op, refused if smaller than `needed`."""
        if needed <= 0:
            return "NULL"
        size = self.plan.scratch_sizes.get(position, 0)
        if size < needed:
            raise UnsupportedOpError(
                f"{self.where(op)}: the memory plan gives its kernel {size} bytes of scratch; it needs {needed} "
                "(plan with engine.codegen.kernel_sets.kernel_scratch)"
            )
        return f"(int32_t *)&{self.prefix}_arena[{self.plan.scratch_offsets[position]}]"

    def tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]
