"""Measurements as text: the aligned table and the CSV export that `tinylab results` prints, and
the value and commit spellings the report shares with it."""
from __future__ import annotations

import csv
from dataclasses import asdict
from typing import TextIO

from hil.store.measurement import COLUMNS, Measurement

TABLE_COLUMNS = ("timestamp", "model", "board", "backend", "metric", "value", "unit", "engine",
                 "commit")


def write_csv(rows: list[Measurement], stream: TextIO) -> None:
    """Rows as CSV, one column per field of `Measurement`, with a header line."""
    writer = csv.DictWriter(stream, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**asdict(row), "value": repr(row.value)})


def value_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"


def commit_text(commit: str) -> str:
    sha, plus, rest = commit.partition("+")
    return sha[:10] + plus + rest


def format_table(rows: list[Measurement]) -> str:
    """An aligned text table of rows: one line each, numbers right-aligned."""
    cells = [TABLE_COLUMNS] + [
        (row.timestamp[:19].replace("T", " "), row.model, row.board, row.backend, row.metric,
         value_text(row.value), row.unit, f"{row.engine} {row.engine_version}".strip(),
         commit_text(row.git_commit))
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(TABLE_COLUMNS))]
    value_column = TABLE_COLUMNS.index("value")
    lines = []
    for line in cells:
        padded = [cell.rjust(width) if i == value_column else cell.ljust(width)
                  for i, (cell, width) in enumerate(zip(line, widths))]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)
