"""The import graph of tinylab's packages, read statically (ast), and the layer rules it must keep.

Layers, bottom to top: engine < hil < nas < tinylab_cli. A module may import its own layer and
the layers below it, never one above. Inside hil, imports form no cycle, neither between modules
nor between sub-packages (hil.targets, hil.firmware_build, ...: each one module of the graph), and the
library never imports the command-line code (`hil.commands`).

An import is any `import`/`from ... import` statement (at module level or inside a function),
a string constant passed to `importlib.import_module` or `__import__`, or a string constant
that names a module of the project ("hil.commands.boards", "engine.zoo:default_model").
Imports under `if TYPE_CHECKING:` count too.

    python scripts/import_graph.py            # every cross-layer import and every cycle in hil
                                              # (between modules and between sub-packages)
    python scripts/import_graph.py --all      # every import between the project's modules
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("engine", "hil", "nas", "tinylab_cli")  # bottom to top
MODULE_STRING = re.compile(r"^(%s)(\.\w+)*(:\w+)?$" % "|".join(LAYERS))


@dataclass(frozen=True)
class Import:
    """One import of `target` by `source` (module names), at `line`, found as `how`."""

    source: str
    target: str
    line: int
    how: str  # "import", "importlib" or "string"


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Every module of the layers' packages: dotted name -> file."""
    modules = {}
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            modules[module_name(path, root)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The longest prefix of `name` that is a module of the project ("hil.report.X" -> "hil.report")."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return name


def _absolute(node: ast.ImportFrom, source: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".")
    drop = node.level - 1 if is_package else node.level
    base = base[: len(base) - drop] if drop else base
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(source: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import in one module, resolved to the project's module names where it can be."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(source, _resolve(a.name, modules), node.lineno, "import") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, source, path.name == "__init__.py")
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in modules else _resolve(base, modules)
                found.append(Import(source, target, node.lineno, "import"))
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append(Import(source, _resolve(first.value, modules), node.lineno, "importlib"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if MODULE_STRING.match(node.value) and "." in node.value.split(":")[0]:
                name = node.value.split(":")[0]
                found.append(Import(source, _resolve(name, modules), node.lineno, "string"))
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in ("__import__", "import_module")


def all_imports(root: Path = REPO_ROOT) -> list[Import]:
    """Every import between the project's modules (imports of other packages are left out)."""
    modules = project_modules(root)
    found: dict[tuple[str, str, int], Import] = {}
    for source, path in modules.items():
        for i in imports_of(source, path, modules):
            if i.target.split(".")[0] in LAYERS and i.target != source:
                found.setdefault((i.source, i.target, i.line), i)
    return list(found.values())


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def upward_imports(imports: list[Import]) -> list[Import]:
    """Imports of a module in a higher layer than the importer's."""
    return [i for i in imports if layer(i.target) > layer(i.source)]


def library_imports_of_commands(imports: list[Import], commands: str = "hil.commands") -> list[Import]:
    """Imports of the command-line modules by library modules of the same package."""
    package = commands.split(".")[0]
    return [i for i in imports
            if i.source.split(".")[0] == package and not _within(i.source, commands)
            and _within(i.target, commands)]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def cycles(imports: list[Import], package: str) -> list[list[str]]:
    """The import cycles among the modules of one package: each strongly connected component
    of more than one module (or a module importing itself), sorted."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        if i.source.split(".")[0] == package and i.target.split(".")[0] == package:
            graph.setdefault(i.source, set()).add(i.target)
            graph.setdefault(i.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def subpackage(module: str) -> str:
    """The sub-package a module is in, one level below its layer ("hil.run.runners.qemu" ->
    "hil.run"); a module at the layer's top stays itself ("hil.errors")."""
    return ".".join(module.split(".")[:2])


def subpackage_cycles(imports: list[Import], package: str) -> list[list[str]]:
    """The import cycles among the sub-packages of one package (and its top-level modules), each
    sub-package taken as one node: a cycle here means two parts of the flow point at each other
    even where no two modules do."""
    collapsed = [Import(subpackage(i.source), subpackage(i.target), i.line, i.how) for i in imports]
    return cycles([i for i in collapsed if i.source != i.target], package)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="list every import between the project's modules")
    args = parser.parse_args(argv)
    imports = all_imports()
    if args.all:
        for i in sorted(imports, key=lambda i: (i.source, i.line)):
            print(f"{i.source}:{i.line} -> {i.target} ({i.how})")
    upward = upward_imports(imports)
    hil_cycles = cycles(imports, "hil")
    package_cycles = subpackage_cycles(imports, "hil")
    into_commands = library_imports_of_commands(imports)
    for i in upward:
        print(f"UP    {i.source}:{i.line} -> {i.target} ({i.how})")
    for i in into_commands:
        print(f"CLI   {i.source}:{i.line} -> {i.target} ({i.how})")
    for cycle in hil_cycles:
        print("CYCLE " + " <-> ".join(cycle))
    for cycle in package_cycles:
        print("CYCLE of sub-packages " + " <-> ".join(cycle))
    print(f"{len(upward)} upward imports, {len(into_commands)} library imports of hil.commands, "
          f"{len(hil_cycles)} cycles in hil, {len(package_cycles)} cycles between hil's sub-packages")
    return 1 if upward or into_commands or hil_cycles or package_cycles else 0


if __name__ == "__main__":
    sys.exit(main())
