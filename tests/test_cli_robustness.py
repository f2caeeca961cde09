"""The command line never loses a measurement and never crashes on a bad argument: every path it
writes and the results store are checked before anything runs, the rows are stored before any
file is written, bad inputs, models and board files are refused with a message that names them,
SIGTERM stops a run as Ctrl-C does, and a serial port held open elsewhere is refused at once."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from engine import synth
from engine.export import export_tflite
from hil.resources import boards_dir
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu

REPO = Path(__file__).resolve().parents[1]


def tinylab(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stored_rows(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as connection:
        return connection.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]


@pytest.fixture
def a_file(tmp_path) -> Path:
    """A regular file, where a command would need a folder."""
    path = tmp_path / "a-file"
    path.write_text("not a folder\n")
    return path


# --- where a command writes: checked before it runs --------------------------------------------

OUTPUT_OPTIONS = [
    ("run", "--output", "y.npy"),
    ("compile", "-o", "c-sources"),
    ("build", "-o", "firmware.elf"),
    ("report", "-o", "report"),
    ("nightly", "-o", "report"),
    ("boards", "--write-map", "map.yaml"),
    ("results", "--csv", "rows.csv"),
    ("lut", "--table", "table.json"),
    ("nas", "--figure", "cdf.png"),
]


@pytest.mark.parametrize("command, flag, name", OUTPUT_OPTIONS, ids=[f"{c} {f}" for c, f, _ in OUTPUT_OPTIONS])
def test_an_output_under_a_file_is_refused_before_anything_runs(capsys, a_file, private_store, command, flag, name):
    extra = ["build"] if command == "lut" else ["space"] if command == "nas" else []
    code, out, err = tinylab(capsys, command, *extra, flag, str(a_file / name))
    assert code == 2 and out == ""
    assert f"{a_file / name}: cannot be created: {a_file} is a file, not a folder; nothing was run" in err
    assert "Traceback" not in err
    assert not private_store.exists()  # nothing ran: not even the store was created


def test_an_output_file_that_is_a_folder_and_an_output_folder_that_is_a_file_are_refused(capsys, tmp_path, a_file):
    code, _, err = tinylab(capsys, "run", "--output", str(tmp_path))
    assert code == 2 and f"--output {tmp_path}: is a folder; give a file name; nothing was run" in err
    code, _, err = tinylab(capsys, "compile", "-o", str(a_file))
    assert code == 2 and f"--output {a_file}: is a file, not a folder; nothing was run" in err


def test_a_store_under_a_file_is_refused_before_the_run(capsys, a_file):
    code, _, err = tinylab(capsys, "run", "--store", str(a_file / "lab.sqlite"))
    assert code == 2
    assert f"--store {a_file / 'lab.sqlite'}: cannot be created: {a_file} is a file, not a folder; nothing was run" in err
    assert "File exists" not in err


def test_a_store_that_is_a_folder_or_not_a_store_is_refused_before_the_run(capsys, tmp_path, monkeypatch):
    code, _, err = tinylab(capsys, "bench", "--store", str(tmp_path))
    assert code == 2 and f"--store {tmp_path}: is a folder, not a SQLite file; nothing was run" in err
    text = tmp_path / "notes.sqlite"
    text.write_text("these are notes, not a database\n" * 100)
    monkeypatch.setenv("TINYLAB_STORE", str(text))  # the default store is checked too
    code, _, err = tinylab(capsys, "mlperf")
    assert code == 2 and f"the results store {text} is not a readable SQLite database" in err and "nothing was run" in err


# --- no measurement is lost ----------------------------------------------------------------------

@needs_arm_gcc
@needs_qemu
def test_a_run_writes_its_output_into_folders_it_creates(capsys, tmp_path, private_store, small_model):
    output = tmp_path / "new" / "folder" / "y"  # no .npy added: the file is the one named
    code, out, _ = tinylab(capsys, "run", str(small_model[0]), "--output", str(output))
    assert code == 0 and "matches TFLM     yes" in out
    assert np.load(output).dtype == np.int8
    assert stored_rows(private_store) > 0


@needs_arm_gcc
@needs_qemu
@pytest.mark.parametrize("failing_step", ["output file", "summary"])
def test_no_measurement_is_lost_when_a_step_after_the_run_fails(tmp_path, private_store, small_model, failing_step):
    """/dev/full takes the pre-check (it exists and may be written) and fails the write (ENOSPC):
    a disk that fills up during the run."""
    command = [sys.executable, "-m", "tinylab_cli", "run", str(small_model[0]), "--json"]
    with open("/dev/full", "w") as full:
        if failing_step == "output file":
            result = subprocess.run(command + ["--output", "/dev/full"], cwd=REPO, capture_output=True, text=True)
        else:
            result = subprocess.run(command, cwd=REPO, stdout=full, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 2, result.stderr
    what = "cannot write the board's output to /dev/full" if failing_step == "output file" else "cannot print the summary"
    assert f"error: {what}: No space left on device" in result.stderr
    rows = stored_rows(private_store)
    assert rows > 0 and f"the run's {rows} measurements are stored in {private_store}" in result.stderr
    assert "Traceback" not in result.stderr


# --- inputs --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> tuple[Path, tuple[int, ...]]:
    """A one-convolution int8 model as a .tflite file (quicker to load than a built-in model), and
    its input shape."""
    graph = synth.conv2d_model(np.random.default_rng(0), 8, 8, 3, 4, 3, 1, "SAME", "RELU", True)
    path = tmp_path_factory.mktemp("model") / "conv.tflite"
    path.write_bytes(export_tflite(graph))
    return path, tuple(graph.tensors[graph.inputs[0]].shape)


def npy_header_only(path: Path, shape: tuple[int, ...]) -> Path:
    with open(path, "wb") as stream:
        npy_format.write_array_header_1_0(stream, {"descr": "|i1", "fortran_order": False, "shape": shape})
    return path


def bad_inputs(tmp_path: Path, shape: tuple[int, ...]) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the refusal must say), for a model whose input has `shape`."""
    size = int(np.prod(shape))
    npz = tmp_path / "x.npz"
    np.savez(npz, x=np.zeros(shape, np.int8))
    renamed = tmp_path / "renamed.npy"
    renamed.write_bytes(npz.read_bytes())
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    truncated = npy_header_only(tmp_path / "truncated.npy", shape)
    huge = npy_header_only(tmp_path / "huge.npy", (2**40,))
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    zip_archive = "is a zip archive (an .npz file?), not a .npy file"
    return {
        "npz": (npz, zip_archive),
        "npz renamed .npy": (renamed, zip_archive),
        "empty": (empty, "is empty, not a .npy file"),
        "truncated": (truncated, f"is truncated: its header declares shape {shape} of int8 ({size:,} bytes) "
                                 "but 0 bytes follow it"),
        "huge header": (huge, f"has shape (1099511627776,) (1,099,511,627,776 values); model conv takes "
                              f"{shape} ({size:,} values)"),
        "objects": (objects, "holds object values; give an array of numbers"),
        "folder": (tmp_path, "is a folder, not a file"),
    }


BAD_INPUTS = ["npz", "npz renamed .npy", "empty", "truncated", "huge header", "objects", "folder"]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_a_bad_input_file_is_refused_with_its_name(capsys, tmp_path, private_store, small_model, case):
    model, shape = small_model
    path, message = bad_inputs(tmp_path, shape)[case]
    code, _, err = tinylab(capsys, "run", str(model), "--input", str(path))
    assert code == 2 and f"error: input {path} {message}" in err, err
    assert "Traceback" not in err and stored_rows(private_store) == 0


def test_mlperf_reads_its_input_files_with_the_same_reader(capsys, tmp_path, small_model):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    renamed = inputs / "x_0.npy"
    np.savez(inputs / "archive.npz", x=np.zeros(3))
    renamed.write_bytes((inputs / "archive.npz").read_bytes())
    code, _, err = tinylab(capsys, "mlperf", str(small_model[0]), "--inputs", str(inputs), "--no-store")
    assert code == 2 and f"input {renamed} is a zip archive (an .npz file?), not a .npy file" in err
    renamed.unlink()
    npy_header_only(inputs / "x_0.npy", (2**40,))
    code, _, err = tinylab(capsys, "mlperf", str(small_model[0]), "--inputs", str(inputs), "--no-store")
    assert code == 2 and "has shape (1099511627776,)" in err


# --- model paths ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model, message", [
    ("/proc/self/mem", "cannot read model file /proc/self/mem: Input/output error"),
    ("/dev/zero", "model file /dev/zero is not a regular file"),
    ("{tmp}", "model file {tmp} is a folder, not a file"),
    ("{tmp}/absent.tflite", "model file {tmp}/absent.tflite does not exist"),
])
def test_a_model_path_that_is_not_a_readable_file_is_refused(capsys, tmp_path, model, message):
    code, _, err = tinylab(capsys, "compile", model.format(tmp=tmp_path), "-o", str(tmp_path / "out"))
    assert code == 2 and f"error: {message.format(tmp=tmp_path)}" in err, err
    assert "Traceback" not in err


# --- board files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("old, new, message", [
    ("clock_hz: 25000000", "clock_hz: 18446744073709551616",
     "field 'clock_hz': must fit 32 bits (at most 4294967295), not 18446744073709551616"),
    ("baud: 115200", "baud: 18446744073709551616",
     "field 'uart.baud': must fit 32 bits (at most 4294967295), not 18446744073709551616"),
    ("baud: 115200", "baud: 4000000",
     "field 'uart.baud': 4000000 is too fast for the UART's 25000000 Hz clock (its divider 25000000 // 4000000 "
     "must be at least 16)"),
    ("base: 0x40004000", "base: 0x140004000", "field 'uart.base': must fit 32 bits"),
])
def test_a_board_value_beyond_the_hardware_is_refused_naming_key_and_value(capsys, tmp_path, old, new, message):
    text = (boards_dir() / "qemu-f746.yaml").read_text()
    assert old in text
    board = tmp_path / "qemu-f746.yaml"
    board.write_text(text.replace(old, new))
    code, _, err = tinylab(capsys, "run", "--board", str(board), "--no-store")
    assert code == 2 and f"{board}: {message}" in err, err


# --- signals -------------------------------------------------------------------------------------

def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@needs_arm_gcc
@needs_qemu
def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path, private_store, small_model):
    """MLPerf's performance mode under QEMU: a run of some 20 seconds, stopped in the middle."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run = subprocess.Popen([sys.executable, "-m", "tinylab_cli", "mlperf", str(small_model[0])], cwd=REPO,
                           env={**os.environ, "TMPDIR": str(scratch)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        deadline = time.monotonic() + 120  # the firmware may need building first
        while not list(scratch.glob("tinylab-qemu-*")) and run.poll() is None:
            assert time.monotonic() < deadline, "the run never started QEMU"
            time.sleep(0.01)
        time.sleep(1)  # QEMU boots, the windows start
        qemu = children_of(run.pid)
        assert run.poll() is None and qemu, run.communicate()
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines() == ["tinylab mlperf: terminated (SIGTERM)"]
    assert list(scratch.iterdir()) == []  # the run's temporary folder (tinylab-qemu-*) is gone
    assert not any(map(alive, qemu))  # QEMU was stopped on the way out
    assert stored_rows(private_store) == 0


# --- serial ports --------------------------------------------------------------------------------

@needs_arm_gcc
def test_a_serial_port_held_open_by_another_process_is_refused_at_once(capsys, monkeypatch, small_model):
    controller, device = os.openpty()
    name = os.ttyname(device)
    os.close(device)  # only the other process holds the port (this one keeps the controller side)
    holder = subprocess.Popen([sys.executable, "-c", f"import sys, time; port = open({name!r}, 'rb'); print('open', "
                               "flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        monkeypatch.setenv("TINYLAB_PORT", name)
        code, _, err = tinylab(capsys, "run", str(small_model[0]), "--board", "nucleo-f746zg", "--no-store")
    finally:
        holder.kill()
        holder.wait()
        os.close(controller)
    assert code == 2
    # refused before any probe is looked for (this host has none), let alone its replies waited for
    assert f"board nucleo-f746zg: serial port {name} is held open by pid {holder.pid} (python" in err, err


# --- the latency table ---------------------------------------------------------------------------

def test_lut_validate_before_build_names_the_command_to_run(capsys, tmp_path):
    from nas.layers import space_layers
    from nas.space import load_space

    entries = len(space_layers(load_space("tiny"))) + 1  # its layers and the fixed overhead
    table = tmp_path / "table.json"
    code, _, err = tinylab(capsys, "lut", "validate", "--board", "qemu-f746", "--space", "tiny", "--table", str(table),
                           "--samples", "3")
    assert code == 2
    assert f"the latency table {table} lacks {entries} of the {entries} entries of space tiny on qemu-f746" in err
    assert f"run 'tinylab lut build --board qemu-f746 --space tiny --table {table}' first" in err
    assert "no fixed overhead" not in err
