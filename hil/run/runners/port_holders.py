"""Which other processes hold a serial device open. pyserial's `exclusive` lock only keeps out
programs that take the same lock; a terminal or a script that opened the port without it would
read the board's replies. On Linux the holders are found in /proc/*/fd."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class PortHolder:
    pid: int
    name: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.name})"


def is_device_path(url: str) -> bool:
    """Whether a pyserial URL names a device file (not `socket://`, `loop://`, `rfc2217://`...)."""
    return "://" not in url


def port_holders(device: str) -> list[PortHolder]:
    """The processes other than this one with `device` open (its links resolved), by pid; none
    where /proc cannot tell (off Linux, or processes of other users when not root)."""
    wanted = os.path.realpath(device)
    own = os.getpid()
    holders = []
    try:
        entries = [entry for entry in PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return []
    for entry in entries:
        pid = int(entry.name)
        if pid == own or not _holds(entry, wanted):
            continue
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:
            name = "unknown"
        holders.append(PortHolder(pid, name))
    return sorted(holders, key=lambda holder: holder.pid)


def _holds(process: Path, device: str) -> bool:
    try:
        descriptors = list((process / "fd").iterdir())
    except OSError:  # gone, or not ours to look at
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(descriptor) == device:
                return True
        except OSError:
            continue
    return False
