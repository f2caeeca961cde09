"""Memory sizes as the command line takes them: 65536, 65,536, 64K, 64KB, 64KiB, 1M (K and M are
1024 and 1024^2). One parser for every flag that takes a memory budget (`--flash-budget`, and
`--sram` / `--flash` of `tinylab nas space`)."""
from __future__ import annotations

import argparse
import re

_UNITS = {"": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024 * 1024, "MB": 1024 * 1024, "MIB": 1024 * 1024}


def byte_count(text: str) -> int:
    """A size in bytes: 1048576, 1,048,576, 1024K or 1M; more than 0. An argparse `type`."""
    match = re.fullmatch(r"\s*([0-9][0-9,_]*)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a byte count (for example 1048576, 1024K or 1M)")
    value = int(match.group(1).replace(",", "").replace("_", "")) * _UNITS[unit]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a memory budget must be more than 0 bytes")
    return value
