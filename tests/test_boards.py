"""Board files: the real ones in boards/ load, broken ones are refused with the field and the
reason, `tinylab boards` lists them, and each SoC template compiles for its board."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import jinja2
import pytest
import yaml

import tinylab_cli.main
from hil.errors import BoardError
from hil.targets.boards import boards_dir, list_boards, load_board
from hil.targets.boardspec import BoardSpec
from hil.targets.chips import STM32_APB_DIVIDERS

REPO = Path(__file__).resolve().parent.parent
SOC_TEMPLATES = REPO / "firmware_templates" / "soc"
EXPECTED_BOARDS = {
    "qemu-f746", "qemu-f412", "qemu-h743", "qemu-l4r5", "netduinoplus2",
    "disco-f746ng", "nucleo-f746zg", "nucleo-f412zg", "nucleo-f767zi", "nucleo-h743zi", "nucleo-l4r5zi",
}


# --- the repository's board files ---------------------------------------------------------------

def test_every_board_file_loads():
    boards = list_boards()
    assert {board.name for board in boards} == EXPECTED_BOARDS
    assert [board.name for board in boards] == sorted(board.name for board in boards)
    for board in boards:
        assert board.path == (boards_dir() / f"{board.name}.yaml").resolve()
        assert load_board(board.name) == board


@pytest.mark.parametrize("name", sorted(EXPECTED_BOARDS))
def test_memory_regions_match_the_budgets(name):
    board = load_board(name)
    assert board.ram.length == board.sram_bytes
    assert board.flash.length == board.flash_bytes
    assert board.flash.end <= board.ram.origin or board.ram.end <= board.flash.origin
    assert board.min_stack_bytes < board.sram_bytes


def test_emulated_boards_run_on_qemu_with_systick():
    emulated = [board for board in list_boards() if board.emulated]
    assert {board.name for board in emulated} == {"qemu-f746", "qemu-f412", "qemu-h743", "qemu-l4r5",
                                                  "netduinoplus2"}
    for board in emulated:
        assert board.qemu is not None and board.qemu.cpu == board.core
        assert board.timer == "systick"
        assert board.backend == "qemu"
        assert board.pyocd_target is None and board.pyocd_board_ids == ()


def test_emulated_boards_keep_the_real_budgets():
    pairs = {"qemu-f746": "nucleo-f746zg", "qemu-f412": "nucleo-f412zg",
             "qemu-h743": "nucleo-h743zi", "qemu-l4r5": "nucleo-l4r5zi"}
    for emulated, real in pairs.items():
        e, r = load_board(emulated), load_board(real)
        assert (e.sram_bytes, e.flash_bytes, e.core, e.fpu) == \
            (r.sram_bytes, r.flash_bytes, r.core, r.fpu)
        assert (e.flash.origin, e.ram.origin, e.uart.base) == (0x00000000, 0x20000000, 0x40004000)
        assert e.clock_hz == 25_000_000


def test_real_boards_name_a_probe_target_and_their_clocks():
    real = {board.name: board for board in list_boards() if not board.emulated}
    assert set(real) == {"disco-f746ng", "nucleo-f746zg", "nucleo-f412zg", "nucleo-f767zi",
                         "nucleo-h743zi", "nucleo-l4r5zi"}
    for board in real.values():
        assert board.backend == "hardware" and board.timer == "dwt"
        assert board.pyocd_target and board.pyocd_board_ids
        assert board.pll is not None and board.pll.output_hz == board.clock_hz
        usart = board.uart.stm32
        assert usart is not None
        assert board.uart.clock_hz == board.clock_hz // STM32_APB_DIVIDERS[board.soc][usart.bus]
    assert real["nucleo-f746zg"].pyocd_board_ids == ("0816",)
    assert real["disco-f746ng"].pyocd_board_ids == ("0815",)
    assert real["nucleo-f767zi"].pyocd_board_ids == ("0818",)
    assert real["nucleo-f412zg"].pyocd_board_ids == ("0826",)
    assert "0813" in real["nucleo-h743zi"].pyocd_board_ids
    assert {name: board.clock_hz for name, board in real.items()} == {
        "disco-f746ng": 216_000_000, "nucleo-f746zg": 216_000_000, "nucleo-f767zi": 216_000_000,
        "nucleo-f412zg": 100_000_000, "nucleo-h743zi": 400_000_000, "nucleo-l4r5zi": 120_000_000}
    assert real["nucleo-l4r5zi"].pyocd_board_ids == ("0776",)
    assert real["nucleo-l4r5zi"].uart.stm32.name == "LPUART1"
    assert real["nucleo-h743zi"].ram.origin == 0x24000000


# --- broken board files ---------------------------------------------------------------------------

def _board_data(name: str) -> dict[str, Any]:
    return yaml.safe_load((boards_dir() / f"{name}.yaml").read_text())


def _write(tmp_path: Path, name: str, data: dict[str, Any] | str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _emulated(change: Callable[[dict], None]) -> dict[str, Any]:
    data = copy.deepcopy(_board_data("qemu-f746"))
    data["name"] = "broken"
    change(data)
    return data


def _real(change: Callable[[dict], None]) -> dict[str, Any]:
    data = copy.deepcopy(_board_data("nucleo-f746zg"))
    data["name"] = "broken"
    change(data)
    return data


BROKEN = {
    "missing field": (
        _emulated(lambda d: d.pop("timer")), "field 'timer'", "required field is missing"),
    "unknown field": (
        _emulated(lambda d: d.update(clok_hz=d.pop("clock_hz"))),
        "field 'clok_hz'", "unknown field (did you mean 'clock_hz'?)"),
    "bad uart kind": (
        _emulated(lambda d: d["uart"].update(kind="pl011")),
        "field 'uart.kind'", "'pl011' is not one of cmsdk, stm32-usart-v1, stm32-usart-v2"),
    "mismatched sram": (
        _emulated(lambda d: d.update(sram_bytes=262144)),
        "field 'memory.ram.length'", "327680 differs from sram_bytes 262144"),
    "mismatched flash": (
        _emulated(lambda d: d["memory"]["flash"].update(length=0x80000)),
        "field 'memory.flash.length'", "differs from flash_bytes"),
    "overlapping regions": (
        _emulated(lambda d: d["memory"]["ram"].update(origin=0x00080000)),
        "field 'memory'", "overlap"),
    "wrong name": (
        _emulated(lambda d: d.update(name="qemu-f746")),
        "field 'name'", "differs from the file name 'broken'"),
    "size not an integer": (
        _emulated(lambda d: d.update(flash_bytes="1 MB")),
        "field 'flash_bytes'", "expected an integer, not str '1 MB'"),
    "negative size": (
        _emulated(lambda d: d["memory"]["ram"].update(length=-4)),
        "field 'memory.ram.length'", "must be positive"),
    "dwt under qemu": (
        _emulated(lambda d: d.update(timer="dwt")),
        "field 'timer'", "use systick"),
    "qemu cpu of another machine": (
        _emulated(lambda d: d["qemu"].update(cpu="cortex-m4")),
        "field 'qemu.cpu'", "mps2-an500 has a cortex-m7"),
    "cortex-m4 with fpv5": (
        _emulated(lambda d: d.update(core="cortex-m4", fpu="fpv5-d16",
                                     qemu={"machine": "mps2-an386", "cpu": "cortex-m4"})),
        "field 'fpu'", "a cortex-m4 cannot have fpv5-d16"),
    "stack as big as the sram": (
        _emulated(lambda d: d.update(min_stack_bytes=327680)),
        "field 'min_stack_bytes'", "leaves nothing"),
    "emulated board with a pyocd target": (
        _emulated(lambda d: d.update(pyocd_target="stm32f746zgtx")),
        "field 'pyocd_target'", "only for real boards"),
    "region outside the qemu machine": (
        _emulated(lambda d: d["memory"]["ram"].update(origin=0x30000000)),
        "field 'memory.ram'", "outside mps2-an500's memory"),
    "uart not on serial0": (
        _emulated(lambda d: d["uart"].update(base=0x40005000)),
        "field 'uart.base'", "connects serial0 to the UART at 0x40004000"),
    "cmsdk uart on an stm32": (
        _real(lambda d: d["uart"].update(kind="cmsdk")),
        "field 'uart.kind'", "the CMSDK UART exists only on soc mps2"),
    "real board without a pyocd target": (
        _real(lambda d: d.pop("pyocd_target")),
        "field 'pyocd_target'", "a real board needs its pyOCD target"),
    "real board without board ids": (
        _real(lambda d: d.update(pyocd_board_ids=[])),
        "field 'pyocd_board_ids'", "at least one"),
    "board id not a string": (
        _real(lambda d: d.update(pyocd_board_ids=[816])),
        "field 'pyocd_board_ids[0]'", "expected 4 hex digits in quotes"),
    "uart clock not the apb clock": (
        _real(lambda d: d["uart"].update(clock_hz=108000000)),
        "field 'uart.clock_hz'", "runs APB1 at clock_hz / 4 = 54000000"),
    "pll that does not give clock_hz": (
        _real(lambda d: d["pll"].update(n=200)),
        "field 'pll'", "not clock_hz 216000000"),
    "pll vco input out of range": (
        _real(lambda d: d["pll"].update(m=2, n=108)),
        "field 'pll.m'", "outside the PLL's input range"),
    "real board without pins": (
        _real(lambda d: d["uart"].pop("tx_pin")),
        "field 'uart.tx_pin'", "required on a real STM32 board"),
    "bad pin": (
        _real(lambda d: d["uart"].update(rx_pin="PZ99")),
        "field 'uart.rx_pin'", "expected a pin such as PD8"),
    "bad uart base": (
        _real(lambda d: d["uart"].update(base=0x40001000)),
        "field 'uart.base'", "is not an STM32 U(S)ART"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_board_file_names_the_field_and_the_reason(tmp_path, case):
    data, field, reason = BROKEN[case]
    path = _write(tmp_path, "broken", data)
    with pytest.raises(BoardError) as caught:
        load_board(path)
    message = str(caught.value)
    assert str(path) in message
    assert field in message, message
    assert reason in message, message


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = _write(tmp_path, "broken", "name: broken\ncore: [cortex-m7\nfpu: none\n")
    with pytest.raises(BoardError, match=r"broken\.yaml: line \d+, column \d+: invalid YAML"):
        load_board(path)


def test_a_field_given_twice_is_refused(tmp_path):
    text = (boards_dir() / "qemu-f746.yaml").read_text().replace("name: qemu-f746", "name: broken")
    path = _write(tmp_path, "broken", text + "timer: dwt\n")
    with pytest.raises(BoardError, match=r"line \d+.*field 'timer' is given twice"):
        load_board(path)


@pytest.mark.parametrize("text, reason", [
    ("- name: broken\n- core: cortex-m7\n", "must be a mapping of fields, but this one is a list"),
    ("", "must be a mapping of fields, but this one is empty"),
    ("just a string\n", "must be a mapping of fields, but this one is a str"),
])
def test_a_board_file_must_be_a_mapping(tmp_path, text, reason):
    path = _write(tmp_path, "broken", text)
    with pytest.raises(BoardError, match=reason):
        load_board(path)


def test_several_problems_are_reported_together(tmp_path):
    data = _emulated(lambda d: (d.pop("timer"), d["uart"].update(kind="pl011")))
    path = _write(tmp_path, "broken", data)
    with pytest.raises(BoardError, match="2 problems") as caught:
        load_board(path)
    assert "field 'timer'" in str(caught.value) and "field 'uart.kind'" in str(caught.value)


def test_unknown_board_name_lists_the_available_ones():
    with pytest.raises(BoardError) as caught:
        load_board("nucleo-f746")
    message = str(caught.value)
    assert "unknown board 'nucleo-f746'" in message
    assert "did you mean 'nucleo-f746zg'?" in message
    for name in EXPECTED_BOARDS:
        assert name in message


def test_missing_board_path_is_an_error(tmp_path):
    with pytest.raises(BoardError, match="no such board file"):
        load_board(tmp_path / "absent.yaml")


def test_a_board_file_outside_boards_loads_by_path(tmp_path):
    data = _board_data("qemu-f412")
    data["name"] = "my-board"
    board = load_board(_write(tmp_path, "my-board", data))
    assert board.name == "my-board" and board.qemu.machine == "mps2-an386"
    assert board.path == (tmp_path / "my-board.yaml").resolve()


# --- tinylab boards -----------------------------------------------------------------------------

def test_tinylab_boards_json_lists_every_board_and_the_probes(capsys):
    assert tinylab_cli.main.main(["boards", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {board["name"] for board in out["boards"]} == EXPECTED_BOARDS
    assert isinstance(out["probes"], list)
    for probe in out["probes"]:  # none on a host without probes
        assert set(probe) == {"unique_id", "description", "vendor", "board_id", "board"}
    by_name = {board["name"]: board for board in out["boards"]}
    assert by_name["qemu-f746"]["backend"] == "qemu"
    assert by_name["qemu-f746"]["qemu"] == {"machine": "mps2-an500", "cpu": "cortex-m7"}
    assert by_name["nucleo-f746zg"]["pyocd_board_ids"] == ["0816"]
    assert by_name["nucleo-f746zg"]["memory"]["ram"] == {"origin": 0x20000000, "length": 327680}


def test_tinylab_boards_prints_a_table_and_a_probe_line(capsys):
    assert tinylab_cli.main.main(["boards"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["BOARD", "CORE", "CLOCK", "SRAM", "FLASH", "BACKEND", "RUNS", "ON"]
    for name in EXPECTED_BOARDS:
        assert any(line.startswith(name + " ") for line in lines), name
    row = next(line for line in lines if line.startswith("nucleo-h743zi "))
    assert row.split() == ["nucleo-h743zi", "cortex-m7", "400", "MHz", "512", "KB", "2048", "KB",
                           "hardware", "pyOCD", "stm32h743xx"]
    assert "Debug probes:" in out


def test_tinylab_boards_one_board_without_probes(capsys):
    assert tinylab_cli.main.main(["boards", "qemu-f412", "--no-probes"]) == 0
    out = capsys.readouterr().out
    assert "qemu-f412" in out and "qemu-f746" not in out and "Debug probes" not in out


def test_tinylab_boards_unknown_board_is_a_clean_error(capsys):
    assert tinylab_cli.main.main(["boards", "no-such-board", "--no-probes"]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'no-such-board'" in err and "qemu-f746" in err


# --- SoC templates ------------------------------------------------------------------------------

def render_soc(board: BoardSpec) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string((SOC_TEMPLATES / f"{board.soc}.c.j2").read_text())
    return template.render(board=board)


def test_each_soc_has_a_template():
    for board in list_boards():
        assert (SOC_TEMPLATES / f"{board.soc}.c.j2").is_file(), board.soc


def test_real_soc_templates_carry_the_board_numbers():
    h7 = render_soc(load_board("nucleo-h743zi"))
    assert "#define PLL1RGE       3u" in h7  # 64 MHz / 4 = 16 MHz reference
    assert "#define FLASH_LATENCY    2u" in h7
    assert "RCC_APB1ENR |= 1u << 18;" in h7  # USART3
    disco = render_soc(load_board("disco-f746ng"))
    assert "PLLCFGR_VALUE (25u | (432u << 6)" in disco
    assert "#define FLASH_LATENCY 7u" in disco
    assert "gpio_alternate(GPIO_BASE(0), 9u, 7u, 0u)" in disco  # PA9 TX, AF7
    assert "gpio_alternate(GPIO_BASE(1), 7u, 7u, 1u)" in disco  # PB7 RX, AF7
    assert "RCC_APB2ENR |= 1u << 4;" in disco  # USART1
    f412 = render_soc(load_board("nucleo-f412zg"))
    assert "#define FLASH_LATENCY 3u" in f412 and "ODEN" not in f412
    l4 = render_soc(load_board("nucleo-l4r5zi"))
    assert "#define FLASH_LATENCY 5u" in l4  # 120 MHz, range 1: 20 MHz per wait state
    assert "PWR_CR5 &= ~PWR_CR5_R1MODE;" in l4  # boost mode above 80 MHz
    assert "PWR_CR2 |= PWR_CR2_IOSV;" in l4  # PG7/PG8 on VDDIO2
    assert "(1u << 4) | (30u << 8)" in l4 and "(0u << 25)" in l4  # HSI / 2 * 30 / R 2
    assert "gpio_alternate(GPIO_BASE(6), 7u, 8u, 0u)" in l4  # PG7 TX, AF8
    assert "RCC_APB1ENR2 |= 1u << 0;" in l4  # LPUART1


@pytest.mark.parametrize("name", sorted(EXPECTED_BOARDS))
def test_soc_template_compiles_without_warnings(tmp_path, name):
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc is not installed")
    board = load_board(name)
    source = tmp_path / f"soc_{name}.c"
    source.write_text(render_soc(board))
    fpu = [] if board.fpu == "none" else [f"-mfpu={board.fpu}", "-mfloat-abi=hard"]
    result = subprocess.run(
        [gcc, f"-mcpu={board.core}", "-mthumb", *fpu, "-std=c11", "-ffreestanding", "-Wall",
         "-Wextra", "-Wmissing-prototypes", "-Werror", "-O2", "-c", str(source), "-o",
         str(tmp_path / f"soc_{name}.o")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
