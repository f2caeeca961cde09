"""The YAML files the lab reads (board files, hardware maps): read with every problem named by the
file, line and column, and the values found described for the messages."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hil.errors import LabError


def read_yaml(path: Path, shown: str, error: type[LabError],
              loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """The document in `path`, parsed by `loader` (a SafeLoader); `error`, its message starting
    with `shown` (how messages name the file), when the file cannot be read or is not YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"{shown}: cannot read the file: {problem}") from None
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader or a subclass
    except yaml.YAMLError as problem:
        raise error(f"{shown}: {yaml_problem(problem)}") from None


def yaml_problem(error: yaml.YAMLError) -> str:
    """`line L, column C: invalid YAML: reason`, with the context's line where it differs."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    context_mark = getattr(error, "context_mark", None)
    if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
        context = f"{context} from line {context_mark.line + 1}"
    reason = f"{context}: {problem}" if context else problem
    return f"{where}invalid YAML: {reason}"


def describe(value: Any) -> str:
    """A value as a message names what was found: `nothing`, `a list`, `int 3`, ..."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return f"{type(value).__name__} {value!r}"
