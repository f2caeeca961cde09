"""Board files (`boards/<name>.yaml`): find them, and load them into `BoardSpec`s, refusing malformed
ones with every problem found (hil.targets.board_parser reads the fields, hil.targets.board_checks
checks them against each other).

A board file names a core, its memory budgets and linker regions, the UART the protocol runs on,
the timer, and how to reach the board: a QEMU machine (emulated) or a pyOCD target (real). Every
check names the file, the field (a dotted path such as `uart.base`) and the reason.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from hil import resources
from hil.errors import BoardError
from hil.targets.board_checks import check_board
from hil.targets.board_parser import BoardParser, BoardProblems
from hil.targets.boardspec import BoardSpec
from hil.targets.yamlfile import read_yaml


def boards_dir() -> Path:
    """The board files: the repository's `boards/` folder, or the installed copy (hil.resources)."""
    return resources.boards_dir()


def board_names() -> list[str]:
    return sorted(path.stem for path in boards_dir().glob("*.yaml"))


def load_board(name_or_path: str | Path) -> BoardSpec:
    """A board by name (looked up in boards/) or by the path of a .yaml file."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(name_or_path)
        if not path.is_file():
            raise BoardError(f"{_shown(path)}: no such board file")
        return _load_file(path)
    path = boards_dir() / f"{text}.yaml"
    if not path.is_file():
        names = board_names()
        close = difflib.get_close_matches(text, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise BoardError(f"unknown board '{text}'{hint}; available boards: "
                         f"{', '.join(names) or '(none)'}")
    return _load_file(path)


def list_boards() -> list[BoardSpec]:
    """Every board file in boards/, sorted by name."""
    return [_load_file(boards_dir() / f"{name}.yaml") for name in board_names()]


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"field '{key}' is given twice", key_node.start_mark)
            seen.add(key if isinstance(key, str) else repr(key))
        return super().construct_mapping(node, deep=deep)


def _shown(path: Path) -> str:
    """`boards/x.yaml` for the repository's own files, the path as given otherwise."""
    try:
        return f"boards/{path.resolve().relative_to(boards_dir().resolve())}"
    except ValueError:
        return str(path)


def _load_file(path: Path) -> BoardSpec:
    shown = _shown(path)
    data = read_yaml(path, shown, BoardError, _StrictLoader)
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise BoardError(f"{shown}: a board file must be a mapping of fields, but this one is "
                         f"{kind}")
    problems = BoardProblems(shown)
    board = BoardParser(problems, path).board(data)
    if board is not None:  # every field has the right type: check them against each other
        check_board(board, data, problems)
    problems.raise_if_any()
    assert board is not None
    return board
