"""Debug probes attached to this host, found through pyOCD, and the board file each one matches."""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from hil.errors import RunnerError
from hil.targets.boardspec import BoardSpec

_BOARD_ID = re.compile(r"^[0-9A-Fa-f]{4}$")


@dataclass(frozen=True)
class AttachedProbe:
    unique_id: str
    description: str
    vendor: str
    board_id: str | None  # the Mbed/pyOCD 4-hex-digit board id, when the probe tells it
    board: str | None     # the name of the board file with that board id, if any


def find_attached_probes(boards: Iterable[BoardSpec]) -> list[AttachedProbe]:
    """Every probe pyOCD sees now, matched to `boards` by board id.

    Raises RunnerError when pyOCD cannot enumerate probes (no USB backend, permissions, ...).
    """
    by_id: dict[str, str] = {}
    for board in sorted(boards, key=lambda b: b.name):
        for board_id in board.pyocd_board_ids:
            by_id.setdefault(board_id.upper(), board.name)
    try:
        from pyocd.core.helpers import ConnectHelper

        probes = ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    except Exception as error:  # noqa: BLE001 - pyOCD raises many kinds; report any in one line
        raise RunnerError(f"pyOCD could not list debug probes: {type(error).__name__}: "
                          f"{error}") from None
    found = []
    for probe in probes:
        unique_id = str(_attribute(probe, "unique_id") or "")
        board_id = _board_id(probe, unique_id, by_id)
        found.append(AttachedProbe(
            unique_id=unique_id,
            description=str(_attribute(probe, "description") or ""),
            vendor=str(_attribute(probe, "vendor_name") or ""),
            board_id=board_id,
            board=by_id.get(board_id) if board_id else None,
        ))
    return found


def _board_id(probe: object, unique_id: str, known: dict[str, str]) -> str | None:
    """pyOCD's own board id for the probe (a DAPLink's is the first 4 characters of its unique id;
    an ST-LINK is asked, since its unique id is its USB serial number), else the first 4
    characters of the unique id when they are a board id that a board file lists."""
    board_id = _attribute(probe, "board_id")
    if isinstance(board_id, str) and _BOARD_ID.match(board_id):
        return board_id.upper()
    prefix = unique_id[:4].upper()
    return prefix if prefix in known else None


def _attribute(probe: object, name: str) -> object:
    """A probe property, or None where reading it fails (some open the USB device to answer)."""
    try:
        return getattr(probe, name, None)
    except Exception:  # noqa: BLE001 - a probe that cannot answer is listed without the value
        return None
