"""A device under test from plain Python: QEMU or a physical board behind one API.

```python
with Dut(load_board("qemu-f746")) as dut:      # boots the calibration firmware
    print(dut.command("name"))
    run = dut.run("mcunet-tiny")               # builds, runs and stores the model's figures
```
The pytest plugin's `dut` fixture is this class."""
from __future__ import annotations

import logging
import re
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from hil.errors import ProtocolError
from hil.targets.boardspec import BoardSpec
from hil.targets.hardware_map import HardwareMapEntry

if TYPE_CHECKING:  # imported when used: the pytest plugin imports this module in every run
    import numpy as np

    from hil.firmware_build.firmware import Firmware
    from hil.experiments.modelrun import ModelRun
    from hil.experiments.models import ModelSource
    from hil.run.protocol import DeviceLink
    from hil.run.runners import Runner

DEFAULT_MODEL = "mcunet-tiny"  # hil.experiments.models.DEFAULT_MODEL, without importing it here
DUT_TIMEOUT_S = 30.0

log = logging.getLogger(__name__)


class Dut:
    """A device under test: QEMU or a physical board, with the same API.

    `command`, `send` and `expect` talk to the firmware booted by `boot()` (the calibration
    firmware unless another is given; entering the context boots it); `run(model)` builds and
    runs the model's own firmware, stores its figures and returns them; the next `command`
    boots the default firmware again. Every line said goes to `transcript`."""

    def __init__(self, target: HardwareMapEntry | BoardSpec, *, test_id: str = "",
                 timeout_s: float = DUT_TIMEOUT_S, runner: Runner | None = None) -> None:
        """`runner`: one to share with other Duts of the same target (the pytest plugin keeps one
        per board for the session, so that a firmware is flashed once); else a new one."""
        from hil.run.runners import runner_for

        self.target = target if isinstance(target, HardwareMapEntry) else HardwareMapEntry(target)
        self.board = self.target.board
        self.test_id = test_id
        self.timeout_s = timeout_s
        self.runner: Runner = runner or runner_for(self.target, timeout_s=timeout_s)
        self.firmware: Firmware | None = None
        self._link: DeviceLink | None = None
        self._session = ExitStack()

    def __enter__(self) -> Dut:
        self.boot()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def transcript(self):  # -> hil.run.transcript.Transcript
        """What was sent to and received from the device (this run's)."""
        return self.runner.transcript

    def boot(self, firmware: Firmware | None = None) -> DeviceLink:
        """Boot (flash, on a physical board) `firmware` and wait for its `m-ready`."""
        self.close()
        if firmware is None:
            from hil.firmware_build.firmware import build_firmware
            from hil.experiments.calibration import CalibrationPlan

            firmware = build_firmware(self.board, CalibrationPlan().sources())
        self.firmware = firmware
        log.info("board %s: booting %s", self.board.name, firmware.elf)
        self._link = self._session.enter_context(self.runner.open(firmware))
        return self._link

    @property
    def link(self) -> DeviceLink:
        """The protocol link to the booted firmware (booting the default one when none is)."""
        return self._link if self._link is not None else self.boot()

    def close(self) -> None:
        """Stop talking to the device (QEMU is stopped; a board's port is closed)."""
        self._link = None
        self._session.close()

    def command(self, text: str, timeout: float | None = None) -> list[str]:
        """Send `text%` and return the reply's lines before `m-ready` (an `e-` line raises)."""
        return self.link.command(text, timeout)

    def send(self, text: str) -> None:
        """Send `text%` without reading the reply (read it with `expect`)."""
        self.link.send(text)

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]:
        """Read lines until one matches `pattern` (re.search); ProtocolError after `timeout` s."""
        regex = re.compile(pattern)
        link, seen = self.link, []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                line = link.read_line(f"expect {regex.pattern!r}", timeout_s=remaining)
            except (ProtocolError, TimeoutError) as error:
                if time.monotonic() < deadline:
                    raise  # the connection was lost, or the device stopped
                shown = "; ".join(seen)[-600:] or "nothing"
                raise ProtocolError(f"board {self.board.name}: no line matching {regex.pattern!r} "
                                    f"within {timeout:g} s; received: {shown}") from error
            seen.append(line)
            match = regex.search(line)
            if match:
                return match

    def run(self, model: str | Path | ModelSource = DEFAULT_MODEL,
            input: np.ndarray | None = None, *, store: bool = True,  # noqa: A002
            input_staging: bool | None = None) -> ModelRun:
        """Build `model` (a .tflite path or a built-in name) for this board, run it on its
        default input (or `input`), compare with TFLM, and store every figure. `input_staging`:
        with a staging copy of the input (True), loaded in place (False), or the first where the
        board has room (None)."""
        from hil.experiments.modelrun import engine_provenance, run_model
        from hil.experiments.models import ModelSource, default_input, resolve_model
        from hil.store.results import open_store

        self.close()  # the device now runs the model's own firmware
        source = model if isinstance(model, ModelSource) else resolve_model(str(model))
        value = default_input(source.graph) if input is None else input
        result = run_model(self.board, source, value, runner=self.runner, input_staging=input_staging)
        if store:
            provenance = engine_provenance(self.board, result.backend, test_id=self.test_id)
            with open_store() as results:
                results.add(result.measurements(provenance))
        return result
