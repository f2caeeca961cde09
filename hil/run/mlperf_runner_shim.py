"""Runs MLPerf Tiny's runner (its own main.py, unchanged) with one more serial port in the list it
scans, so that it finds a device it cannot find by USB: a pseudo-terminal of `tinylab serve --pty`,
or a UART behind any adapter.

The runner matches devices by USB VID/PID among pyserial's `list_ports.comports()`. The port added
here carries the VID/PID of the DUT entry of the runner's device file. The runner also asks pyusb
for USB-only power monitors; where libusb has no backend that search would fail, and it finds
nothing instead (no such monitor can be behind a pty).

Usage (through `tinylab mlperf-runner`): python -m hil.run.mlperf_runner_shim RUNNER_DIR PORT VID PID
[RUNNER_ARGS...]; it runs RUNNER_DIR/main.py with RUNNER_ARGS in RUNNER_DIR."""
from __future__ import annotations

import os
import runpy
import sys

from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo


def add_port(device: str, vid: int, pid: int) -> None:
    """Make `list_ports.comports()` list `device` as a USB serial port with this VID/PID."""
    entry = ListPortInfo(device, skip_link_detection=True)
    entry.vid, entry.pid = vid, pid
    entry.description = f"tinylab serial port {device}"
    entry.hwid = f"USB VID:PID={vid:04X}:{pid:04X} (tinylab: {device})"
    listed = list_ports.comports

    def comports(include_links: bool = False) -> list[ListPortInfo]:
        return [*listed(include_links), entry]

    list_ports.comports = comports


def tolerate_missing_usb_backend() -> None:
    """pyusb's find() without a libusb backend: nothing found, rather than NoBackendError."""
    try:
        import usb.core
    except ImportError:
        return
    find = usb.core.find

    def find_or_nothing(*args: object, **kwargs: object) -> object:
        try:
            return find(*args, **kwargs)
        except usb.core.NoBackendError:
            return iter(()) if kwargs.get("find_all") else None

    usb.core.find = find_or_nothing


def main(argv: list[str]) -> None:
    runner_dir, device, vid, pid, *runner_args = argv
    add_port(device, int(vid, 0), int(pid, 0))
    tolerate_missing_usb_backend()
    os.chdir(runner_dir)
    sys.path.insert(0, runner_dir)
    sys.argv = ["main.py", *runner_args]
    runpy.run_path("main.py", run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
