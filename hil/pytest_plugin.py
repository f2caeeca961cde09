"""The tinylab pytest plugin: one test file runs on QEMU or on a physical board by changing only
`--board`, or once per board of a `--hardware-map`.

Fixtures: `board` (the BoardSpec), `dut` (a booted device: `run`, `command`, `send`, `expect`;
hil.experiments.dut.Dut, which works without pytest too), `lab_target` (the board with its probe and port).
Markers: `@pytest.mark.board(name or core, ...)` and `@pytest.mark.hardware`. Every measurement `dut.run` takes goes to the results store,
tagged with the test's node id.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from hil.errors import LabError, RunnerError
from hil.experiments.dut import DUT_TIMEOUT_S, Dut
from hil.targets.boards import load_board
from hil.targets.hardware_map import HardwareMapEntry, load_hardware_map

if TYPE_CHECKING:  # the runners are imported when a test asks for a dut
    from hil.run.runners import Runner

DEFAULT_BOARD = "qemu-f746"
PROBE_LIST_TIMEOUT_S = 30.0

__all__ = ["Dut", "Lab", "DEFAULT_BOARD"]  # Dut lives in hil.experiments.dut; kept importable from here


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tinylab", "tinylab hardware-in-the-loop tests")
    group.addoption("--board", metavar="NAME", default=None,
                    help=f"the board to test: a board file's name or path (default: {DEFAULT_BOARD}); "
                    "with --hardware-map, only that board of the map")
    group.addoption("--port", metavar="PORT", default=None,
                    help="the board's serial port (default: the port of its debug probe)")
    group.addoption("--probe", metavar="ID", default=None,
                    help="the unique id of the board's debug probe, when several are attached")
    group.addoption("--hardware-map", metavar="FILE", default=None,
                    help="a YAML list of boards with their probes and ports (`tinylab boards "
                    "--write-map FILE` writes one); each test runs once per board")


class Lab:
    """The boards of this pytest session, and the debug probes attached (looked up once)."""

    def __init__(self, targets: list[HardwareMapEntry], map_path: Path | None = None) -> None:
        self.targets = targets
        self.map_path = map_path
        self._probes: list[Any] | None = None
        self._probe_error: str | None = None
        self._runners: dict[tuple[str, str | None, str | None], Runner] = {}

    def runner(self, target: HardwareMapEntry) -> Runner:
        """The one runner of `target` in this session: it remembers what the board holds, so a
        firmware is flashed once per session, not once per test."""
        from hil.run.runners import runner_for

        key = (target.board.name, target.probe, target.port)
        if key not in self._runners:
            self._runners[key] = runner_for(target, timeout_s=DUT_TIMEOUT_S)
        return self._runners[key]

    @classmethod
    def from_options(cls, config: pytest.Config) -> Lab:
        name, port, probe = (config.getoption(o) for o in ("board", "port", "probe"))
        map_option = config.getoption("hardware_map")
        try:
            if map_option:
                if port or probe:
                    raise LabError("--port and --probe are for one board; a hardware map gives "
                                   "each board's probe and port")
                hardware_map = load_hardware_map(map_option)
                targets = list(hardware_map.entries)
                if name:
                    wanted = load_board(name).name
                    targets = [t for t in targets if t.board.name == wanted]
                    if not targets:
                        raise LabError(f"--board {name}: the hardware map {map_option} does not "
                                       f"list that board")
                return cls(targets, Path(map_option))
            board = load_board(name or DEFAULT_BOARD)
            if board.emulated and (port or probe):
                raise LabError(f"board {board.name} is emulated (QEMU): --port and --probe are "
                               f"for physical boards")
            return cls([HardwareMapEntry(board, probe, port)])
        except LabError as error:
            raise pytest.UsageError(f"tinylab: {error}") from None

    def ids(self) -> list[str]:
        names = [t.board.name for t in self.targets]
        return [t.board.name if names.count(t.board.name) == 1 else f"{t.board.name}-{t.probe}"
                for t in self.targets]

    def attached_probes(self) -> list[Any]:
        if self._probes is None:
            from hil.run.runners.board import with_deadline
            from hil.targets.boards import list_boards
            from hil.targets.probes import find_attached_probes

            try:
                self._probes = with_deadline(None, "listing debug probes", PROBE_LIST_TIMEOUT_S,
                                             lambda: find_attached_probes(list_boards()))
            except RunnerError as error:
                self._probes, self._probe_error = [], str(error)
        return self._probes

    def probe_problem(self, target: HardwareMapEntry) -> str | None:
        """Why `target` cannot be reached now; None when it can (or is emulated)."""
        if target.board.emulated:
            return None
        probes = self.attached_probes()
        if self._probe_error:
            return f"board {target.board.name}: {self._probe_error}"
        seen = ", ".join(p.unique_id for p in probes) or "none"
        if target.probe:
            if not any(p.unique_id.lower() == target.probe.lower() for p in probes):
                return (f"board {target.board.name}: its debug probe {target.probe} is not attached "
                        f"(pyOCD sees: {seen})")
            return None
        if not probes:
            return (f"board {target.board.name}: no debug probe attached (pyOCD sees none); connect "
                    f"the board's debug USB port, or test an emulated board with --board "
                    f"{DEFAULT_BOARD}")
        return None

    def target_of(self, item: pytest.Item) -> HardwareMapEntry | None:
        """The board `item` runs on; None when it is not parametrised over a map's boards."""
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "lab_target" in callspec.params:
            return callspec.params["lab_target"]
        return self.targets[0] if len(self.targets) == 1 and self.map_path is None else None

    def skip_reason(self, item: pytest.Item) -> str | None:
        target = self.target_of(item)
        candidates = [target] if target is not None else self.targets
        names = [str(arg) for mark in item.iter_markers("board") for arg in mark.args]
        if any(True for _ in item.iter_markers("board")):
            candidates = [t for t in candidates if t.board.name in names or t.board.core in names]
            if not candidates:
                shown = (f"board {target.board.name} ({target.board.core}) is" if target
                         else "no board of this session is")
                return f"runs only on {', '.join(names) or '(no board named)'}; {shown} not one of them"
        if any(True for _ in item.iter_markers("hardware")):
            physical = [t for t in candidates if not t.board.emulated]
            if not physical:
                shown = f"{target.board.name} is" if target else "the boards of this session are"
                return f"needs a physical board; {shown} emulated (QEMU)"
            problems = [self.probe_problem(t) for t in physical]
            if all(problems):
                return problems[0]
        return None


_LAB = pytest.StashKey[Lab]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "board(*names): run only on boards with one of these names or cores "
        "(e.g. 'qemu-f746', 'cortex-m7'); skip on others")
    config.addinivalue_line(
        "markers", "hardware: needs a physical board with its debug probe attached; skip on "
        "emulated boards or when no probe is attached")
    config.stash[_LAB] = Lab.from_options(config)


def pytest_report_header(config: pytest.Config) -> str:
    lab = config.stash[_LAB]
    boards = ", ".join(t.board.name for t in lab.targets) or "none"
    if lab.map_path is not None:
        return f"tinylab: hardware map {lab.map_path}: {boards}"
    return f"tinylab: board {boards} ({lab.targets[0].board.backend})"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With a hardware map, every test that uses `board` or `dut` runs once per board."""
    lab = metafunc.config.stash[_LAB]
    if lab.map_path is None or "lab_target" not in metafunc.fixturenames:
        return
    if any("board" in _argnames(mark) for mark in metafunc.definition.iter_markers("parametrize")):
        return  # the test chooses its boards itself
    if not lab.targets:
        skip = pytest.mark.skip(reason=f"the hardware map {lab.map_path} lists no boards")
        metafunc.parametrize("lab_target", [pytest.param(None, marks=skip, id="no-boards")],
                             indirect=True)
        return
    metafunc.parametrize("lab_target", lab.targets, ids=lab.ids(), indirect=True)


def _argnames(mark: pytest.Mark) -> list[str]:
    names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
    return [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)


TRANSCRIPT_TAIL_LINES = 40


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A failed test that used `dut` shows the tail of the device transcript in its report."""
    outcome = yield
    report = outcome.get_result()
    device = getattr(item, "funcargs", {}).get("dut")
    if report.failed and device is not None:
        tail = device.transcript.tail(TRANSCRIPT_TAIL_LINES)
        if tail:
            report.sections.append(("tinylab device transcript (last lines)", tail))


def pytest_runtest_setup(item: pytest.Item) -> None:
    reason = item.config.stash[_LAB].skip_reason(item)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def lab_target(request: pytest.FixtureRequest) -> HardwareMapEntry:
    """The board this test runs on, with its probe and port (from the options or the map)."""
    param = getattr(request, "param", None)
    if param is not None:
        return param
    lab = request.config.stash[_LAB]
    if not lab.targets:
        pytest.skip(f"the hardware map {lab.map_path} lists no boards")
    return lab.targets[0]


@pytest.fixture
def board(lab_target: HardwareMapEntry):  # -> BoardSpec
    """The BoardSpec of the board this test runs on."""
    return lab_target.board


@pytest.fixture
def dut(request: pytest.FixtureRequest, lab_target: HardwareMapEntry) -> Iterator[Dut]:
    """The device under test, booted with the calibration firmware; skipped when its probe is
    not attached."""
    problem = request.config.stash[_LAB].probe_problem(lab_target)
    if problem:
        pytest.skip(problem)
    runner = request.config.stash[_LAB].runner(lab_target)
    runner.fresh_transcript()  # this test's lines only
    device = Dut(lab_target, test_id=request.node.nodeid, runner=runner)
    try:
        device.boot()
        yield device
    finally:
        device.close()
