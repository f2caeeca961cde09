"""Opening a firmware with its input loaded, once or for each of several inputs, whatever the
runner (what the target holds across opens is hil.run.runners.target_state)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hil.firmware_build.firmware import Firmware
    from hil.run.protocol import DeviceLink
    from hil.run.runners.base import Runner


@contextmanager
def open_with_input(runner: Runner, firmware: Firmware, data: bytes) -> Iterator[DeviceLink]:
    """`firmware` booted with `data` loaded as its input: placed in memory before it starts
    where the runner can (`link.load_input(preloaded=True)` then only confirms it), else sent
    as `db` lines (in the firmware's wire form, hil.firmware_build.inputwire).
    `link.reload_input()` loads it again the same way."""
    preload = runner.can_preload and firmware.preloadable
    with runner.open(firmware, preload=data if preload else None) as link:
        link.load_input(data if preload else firmware.input_wire.encode(data), preloaded=preload)
        yield link


def each_input(runner: Runner, firmware: Firmware, inputs: Iterable[bytes]) -> Iterator[DeviceLink]:
    """A link with each input loaded in turn: one boot per input with the input preloaded where
    the runner can (much faster than `db` lines under QEMU; a board is flashed once and reset),
    else one boot and `db` lines for every input."""
    if runner.can_preload and firmware.preloadable:
        for data in inputs:
            with open_with_input(runner, firmware, data) as link:
                yield link
        return
    with runner.open(firmware) as link:
        for data in inputs:
            link.load_input(firmware.input_wire.encode(data))
            yield link
