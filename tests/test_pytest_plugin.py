"""The tinylab pytest plugin, run inside pytest with pytester; and the hardware map it reads."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy  # noqa: F401 - imported before pytester's in-process runs, which cannot re-import it
import pytest

import hil.run.runners  # noqa: F401 - likewise (it imports numpy)
from hil.store.results import open_store
from hil.targets.boards import list_boards, load_board
from hil.targets.hardware_map import HardwareMapError, load_hardware_map, map_from_probes
from hil.targets.probes import AttachedProbe, find_attached_probes
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def lab(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project that loads the plugin once, whether or not tinylab's pytest11 entry
    point is installed (`-p no:tinylab` keeps the entry point out)."""
    pytester.makeconftest('pytest_plugins = ["hil.pytest_plugin"]')
    return pytester


def run(pytester: pytest.Pytester, *args: str, subprocess: bool = False) -> pytest.RunResult:
    """Run pytest in `pytester`'s folder: in this process, or in a fresh one (for runs that
    import torch and TFLM, which cannot be imported a second time in one process)."""
    options = ("-p", "no:tinylab", "-p", "no:cacheprovider", "-rs", *args)
    if subprocess:
        return pytester.runpytest_subprocess(*options, timeout=120)
    return pytester.runpytest(*options)


@pytest.fixture(scope="module")
def no_probes() -> None:
    if find_attached_probes(list_boards()):
        pytest.skip("debug probes are attached to this host")


def write_map(pytester: pytest.Pytester, text: str, name: str = "lab.yaml") -> Path:
    path = pytester.path / name
    path.write_text(text)
    return path


# --- options ------------------------------------------------------------------------------------

def test_the_options_choose_the_board_probe_and_port(lab):
    lab.makepyfile("""
        def test_options(board, lab_target, pytestconfig):
            assert board.name == "nucleo-f746zg" and board.core == "cortex-m7"
            assert (lab_target.probe, lab_target.port) == ("0670FF31", "/dev/ttyACM3")
            assert pytestconfig.getoption("board") == "nucleo-f746zg"
    """)
    result = run(lab, "--board", "nucleo-f746zg", "--probe", "0670FF31", "--port", "/dev/ttyACM3")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["tinylab: board nucleo-f746zg (hardware)"])


def test_the_default_board_is_qemu_f746(lab):
    lab.makepyfile("def test_default(board):\n    assert board.name == 'qemu-f746'\n")
    run(lab).assert_outcomes(passed=1)


def test_an_unknown_board_is_a_usage_error(lab):
    lab.makepyfile("def test_nothing():\n    pass\n")
    result = run(lab, "--board", "nucleo-f746")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*tinylab: unknown board 'nucleo-f746' (did you mean 'nucleo-f746zg'?)*"])


def test_a_probe_for_an_emulated_board_is_a_usage_error(lab):
    lab.makepyfile("def test_nothing():\n    pass\n")
    result = run(lab, "--board", "qemu-f412", "--probe", "ABC")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*board qemu-f412 is emulated (QEMU): --port and --probe are for physical boards*"])


# --- markers ------------------------------------------------------------------------------------

MARKED = """
    import pytest

    @pytest.mark.board("qemu-f746")
    def test_only_f746():
        pass

    @pytest.mark.board("cortex-m4")
    def test_any_m4():
        pass

    @pytest.mark.board("cortex-m7", "qemu-f412")
    def test_m7_or_f412():
        pass

    @pytest.mark.hardware
    def test_needs_a_board():
        pass

    def test_anywhere():
        pass
"""


def test_board_markers_select_by_name_or_core(lab):
    lab.makepyfile(MARKED)
    result = run(lab, "--board", "qemu-f412", "-v")
    result.assert_outcomes(passed=3, skipped=2)
    result.stdout.fnmatch_lines_random([
        "*::test_any_m4 PASSED*", "*::test_m7_or_f412 PASSED*", "*::test_anywhere PASSED*",
        "SKIPPED * runs only on qemu-f746; board qemu-f412 (cortex-m4) is not one of them",
        "SKIPPED * needs a physical board; qemu-f412 is emulated (QEMU)",
    ])
    result = run(lab, "--board", "qemu-f746", "-v")
    result.assert_outcomes(passed=3, skipped=2)
    result.stdout.fnmatch_lines_random(["*::test_only_f746 PASSED*", "*::test_m7_or_f412 PASSED*",
                                        "SKIPPED * runs only on cortex-m4; board qemu-f746 (cortex-m7)*"])


def test_hardware_tests_skip_when_no_probe_is_attached(lab, no_probes):
    lab.makepyfile(MARKED + """
    def test_with_dut(dut):
        raise AssertionError("not reached: there is no probe")
    """)
    result = run(lab, "--board", "nucleo-f746zg")
    result.assert_outcomes(passed=2, skipped=4)
    result.stdout.fnmatch_lines([
        "SKIPPED * board nucleo-f746zg: no debug probe attached (pyOCD sees none); connect the "
        "board's debug USB port, or test an emulated board with --board qemu-f746",
    ])


# --- measurements, and the hardware map ---------------------------------------------------------

@needs_arm_gcc
@needs_qemu
def test_every_board_of_a_map_runs_the_test_and_stores_rows_with_the_node_id(lab, private_store, no_probes):
    write_map(lab, """
        boards:
          - board: qemu-f746
          - board: netduinoplus2
          - board: nucleo-f746zg
            probe: 0670FF3136
    """.replace("\n        ", "\n"))
    lab.makepyfile(test_store="""
        def test_run(dut, board):
            run = dut.run("mcunet-tiny")
            assert run.matches_reference and run.board == board.name
    """)
    result = run(lab, "--hardware-map", "lab.yaml", "-v", subprocess=True)
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines_random([
        "test_store.py::test_run?qemu-f746? PASSED*", "test_store.py::test_run?netduinoplus2? PASSED*",
        "SKIPPED * board nucleo-f746zg: its debug probe 0670FF3136 is not attached (pyOCD sees: none)",
        "tinylab: hardware map lab.yaml: qemu-f746, netduinoplus2, nucleo-f746zg",
    ])
    with open_store(private_store) as store:
        rows = store.query(metric="latency")
    assert {(row.board, row.test_id) for row in rows} == {
        ("qemu-f746", "test_store.py::test_run[qemu-f746]"),
        ("netduinoplus2", "test_store.py::test_run[netduinoplus2]"),
    }
    assert {row.unit for row in rows} == {"instructions"} and {r.backend for r in rows} == {"qemu"}


@needs_arm_gcc
@needs_qemu
def test_a_failed_dut_test_shows_the_tail_of_the_device_transcript(lab):
    lab.makepyfile(test_fails="""
        def test_name(dut):
            assert dut.command("name") == ["m-name-dut-[someone else]"]
    """)
    result = run(lab)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*tinylab device transcript (last lines)*",
        "* > name%", "* < m-name-dut-?tinylab qemu-f746?", "* < m-ready",
    ])


@needs_arm_gcc
@needs_qemu
def test_the_tests_of_a_session_share_one_runner_per_board_each_with_its_own_transcript(lab):
    """One runner per board for the session: it knows what the board holds, so a physical board
    is flashed once (tests/test_board_runner.py counts the flashes of one runner)."""
    lab.makepyfile(test_share="""
        SEEN = []

        def test_first(dut):
            SEEN.append(dut.runner)
            assert dut.command("profile")

        def test_second(dut):
            SEEN.append(dut.runner)
            assert SEEN[0] is SEEN[1]
            # profile%, which a boot never sends (a slow one sends name%)
            assert not any("profile%" in line.text for line in dut.transcript.lines)
    """)
    run(lab).assert_outcomes(passed=2)


def test_a_map_parametrises_board_and_the_markers_pick_among_its_boards(lab):
    write_map(lab, "boards:\n  - board: qemu-f746\n  - board: qemu-f412\n"
                   "  - {board: nucleo-f746zg, probe: '0670FF3136', port: /dev/ttyACM0}\n")
    lab.makepyfile("""
        import pytest

        def test_board(board):
            pass

        @pytest.mark.board("cortex-m4")
        def test_m4(board):
            pass

        def test_no_fixture():
            pass

        @pytest.mark.parametrize("board", ["chosen-by-the-test"])
        def test_own_boards(board):
            assert board == "chosen-by-the-test"
    """)
    result = run(lab, "--hardware-map", "lab.yaml", "-v")
    result.assert_outcomes(passed=6, skipped=2)
    result.stdout.fnmatch_lines_random([
        "*::test_board?qemu-f746? PASSED*", "*::test_board?qemu-f412? PASSED*",
        "*::test_board?nucleo-f746zg? PASSED*", "*::test_m4?qemu-f412? PASSED*",
        "*::test_no_fixture PASSED*", "*::test_own_boards?chosen-by-the-test? PASSED*",
    ])
    # --board keeps one board of the map
    result = run(lab, "--hardware-map", "lab.yaml", "--board", "qemu-f412", "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines_random(["*::test_board?qemu-f412? PASSED*"])


def test_two_boards_of_one_kind_get_distinct_ids(lab):
    write_map(lab, "boards:\n  - {board: nucleo-f746zg, probe: AAA1}\n  - {board: nucleo-f746zg, probe: BBB2}\n")
    lab.makepyfile("def test_board(board, lab_target):\n    assert lab_target.probe in ('AAA1', 'BBB2')\n")
    result = run(lab, "--hardware-map", "lab.yaml", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(["*::test_board?nucleo-f746zg-AAA1? PASSED*",
                                        "*::test_board?nucleo-f746zg-BBB2? PASSED*"])


def test_an_empty_map_skips_with_the_reason(lab):
    write_map(lab, "boards: []\n")
    lab.makepyfile("def test_board(board):\n    pass\n")
    result = run(lab, "--hardware-map", "lab.yaml")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * the hardware map lab.yaml lists no boards"])


def test_a_malformed_map_is_a_usage_error_naming_the_field(lab):
    write_map(lab, "boards:\n  - {board: qemu-f746}\n  - {board: nucleo-f746zg, prob: X}\n")
    lab.makepyfile("def test_nothing():\n    pass\n")
    result = run(lab, "--hardware-map", "lab.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("ERROR: tinylab: hardware map lab.yaml: field 'boards[1].prob': unknown field (did you "
            "mean 'probe'?)") in result.stderr.str()


@pytest.mark.parametrize("text, message", [
    ("- board: qemu-f746\n", "expected a mapping with a 'boards' list, not a list"),
    ("boards: {board: qemu-f746}\n", "field 'boards': expected a list of boards, not a mapping"),
    ("boards:\n  - {probe: X}\n", "field 'boards[0].board': required field is missing"),
    ("boards:\n  - {board: nucleo-f746}\n", "field 'boards[0].board': unknown board 'nucleo-f746' (did you mean 'nucleo-f746zg'?)"),
    ("boards:\n  - {board: nucleo-f746zg}\n", "field 'boards[0].probe': required for the physical board nucleo-f746zg"),
    ("boards:\n  - {board: nucleo-f746zg, probe: 12345678}\n", "field 'boards[0].probe': expected a non-empty string, not int 12345678 (write it in quotes"),
    ("boards:\n  - {board: qemu-f746, port: /dev/ttyACM0}\n", "field 'boards[0].port': board qemu-f746 is emulated (QEMU): it takes no port"),
    ("boards:\n  - {board: nucleo-f746zg, probe: A}\n  - {board: nucleo-f412zg, probe: a}\n", "field 'boards[1].probe': probe a is already given to boards[0]"),
    ("boards:\n  - {board: qemu-f746}\n  - {board: qemu-f746}\n", "field 'boards[1].board': emulated board qemu-f746 is already listed at boards[0]"),
    ("boards: [\n", "line 2, column 1: invalid YAML"),
])
def test_hardware_map_problems_name_the_field(tmp_path, text, message):
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(HardwareMapError) as caught:
        load_hardware_map(path)
    assert str(caught.value).startswith(f"hardware map {path}: ") and message in str(caught.value)


def test_a_map_names_board_files_beside_it(tmp_path):
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "my-f746.yaml").write_text(
        load_board("qemu-f746").path.read_text().replace("name: qemu-f746", "name: my-f746"))
    (tmp_path / "lab.yaml").write_text("boards:\n  - board: boards/my-f746.yaml\n")
    entry, = load_hardware_map(tmp_path / "lab.yaml").entries
    assert entry.board.name == "my-f746" and entry.probe is None


def test_a_map_of_attached_probes_round_trips(tmp_path):
    probes = [AttachedProbe("066DFF535155", "STM32 STLink", "ST", "0816", "nucleo-f746zg"),
              AttachedProbe("0240000034", "DAPLink CMSIS-DAP", "ARM", "9999", None)]
    hardware_map, unmatched = map_from_probes(probes, list_boards(), lambda uid: "/dev/ttyACM0")
    assert [p.unique_id for p in unmatched] == ["0240000034"]
    (tmp_path / "lab.yaml").write_text(hardware_map.text())
    entry, = load_hardware_map(tmp_path / "lab.yaml").entries
    assert (entry.board.name, entry.probe, entry.port) == ("nucleo-f746zg", "066DFF535155", "/dev/ttyACM0")


def test_write_map_with_no_probe_attached_writes_an_empty_map(tmp_path, capsys, no_probes):
    path = tmp_path / "maps" / "lab.yaml"
    assert main(["boards", "--write-map", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"No debug probes attached: wrote an empty hardware map to {path}"
    assert load_hardware_map(path).entries == ()
    assert main(["boards", "--write-map", str(path), "--no-probes"]) == 2
    assert "--write-map maps every attached probe" in capsys.readouterr().err


# --- registration ------------------------------------------------------------------------------

@pytest.mark.parametrize("setup", ["entry-point", "autoload-off", "as-installed"])
def test_the_repository_registers_the_plugin_once(setup, tmp_path):
    """The root conftest.py registers the plugin unless tinylab's pytest11 entry point has (an
    installed tinylab; here a dist-info on PYTHONPATH that declares it): never twice."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONPATH")}
    if setup == "entry-point":
        info = tmp_path / "tinylab_entry-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinylab-entry\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[pytest11]\ntinylab = hil.pytest_plugin\n")
        env["PYTHONPATH"] = str(tmp_path)
    elif setup == "autoload-off":
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--board", "netduinoplus2", "tests/hil/test_device.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests/hil/test_device.py::test_the_device_boots_and_names_itself" in result.stdout
