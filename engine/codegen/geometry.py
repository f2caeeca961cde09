"""A layer's sizes and paddings as its function's body writes them: literals, or, where the
patches of a stage share one function (engine.patches marks their ops `shared`), names read at
run time from a constant array passed to it. Everything else (channels, kernel, stride,
weights) stays baked in either way."""
from __future__ import annotations

import re
from dataclasses import dataclass

from engine.codegen.context import EmitContext
from engine.ir import Op


@dataclass(frozen=True)
class Geometry:
    values: dict[str, int]  # name -> this layer's value
    shared: bool

    def __getitem__(self, name: str) -> str:
        """The C expression of `name`: its name when shared, else its value."""
        return name if self.shared else str(self.values[name])

    def when(self, holds: bool, condition: str, lines: list[str]) -> list[str]:
        """`lines` where they are needed: always, guarded by `condition`, when shared (another
        patch may need them); else only if `holds` for this layer."""
        if self.shared:
            return [f"if ({condition}) {{", *("    " + line for line in lines), "}"]
        return list(lines) if holds else []

    def bind(self, g: EmitContext, position: int, op: Op, body: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
        """The body reading the names it uses from the array `geo`, and the argument passing it."""
        if not self.shared:
            return body, []
        text = "\n".join(body)
        names = [name for name in self.values if re.search(rf"\b{name}\b", text)]
        array = g.int32_array(f"op{position}_geo", [self.values[name] for name in names],
                              f"op {op.index}: this patch's {', '.join(names)}")
        return [f"const int {name} = geo[{i}];" for i, name in enumerate(names)] + body, [("const int32_t *geo", array)]
