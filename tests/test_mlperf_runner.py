"""`tinylab serve --pty` driven as MLPerf Tiny's runner drives a board: pyserial's `Serial(path)`,
flush, `name`, `profile`, `db load`, `db` lines of 31 bytes, `infer`, `results`; the reference
submissions' input conversions and ad01's anomaly score; `tinylab mlperf-dataset` and the
`tinylab mlperf-runner` launcher (against the real runner when $TINYLAB_MLPERF_RUNNER names it)."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from engine.oracle import run_tflm
from hil.experiments.mlperf_ids import input_wire_for
from hil.experiments.models import resolve_model
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu
from mlperf_client import RUNNER_CHUNK_BYTES, SerialHost
from mlperf_client import served as serve_process

pytestmark = [needs_arm_gcc, needs_qemu]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
AD01 = SHARED / "models" / "ad01_int8.tflite"
AD01_FEATURES = SHARED / "data" / "ad01_normal_id_01_hist_librosa.bin"


@contextmanager
def served(model: str, pty: Path, *extra: str) -> Iterator[dict]:
    """`tinylab serve MODEL --pty PTY`; the link at PTY goes with the server."""
    with serve_process(model, "--pty", str(pty), *extra) as info:
        yield info
    assert not pty.exists() and not pty.is_symlink()


def test_the_runner_protocol_over_a_pty_with_uint8_images(tmp_path):
    source = resolve_model("mcunet-tiny")
    graph = source.graph
    image = np.random.default_rng(5).integers(0, 256, graph.tensors[graph.inputs[0]].elements).astype(np.uint8)
    model_input = (image.astype(np.int16) - 128).astype(np.int8).reshape(graph.tensors[graph.inputs[0]].shape)
    reference = np.ascontiguousarray(run_tflm(source.tflite, [model_input])[0]).tobytes()
    pty = tmp_path / "dut"
    with served("mcunet-tiny", pty, "--model-id", "ic01") as info:
        assert info["input_conversion"] == "uint8" and info["model_id"] == "ic01"
        assert "m-init-done" in info["banner"]
        dut = SerialHost(pty)
        try:
            assert dut.send("name") == ["m-name-dut-[tinylab qemu-f746]"]  # no banner before the reply
            assert "m-model-[ic01]" in dut.send("profile")
            assert dut.load(image.tobytes()) == ["m-load-done"]
            infer = dut.send("infer 2 1")
            assert "m-infer-done" in infer and dut.output(infer) == reference  # the pixels minus 128
            assert dut.results(dut.send("results")) == dut.results(infer)
            # A failed load: its db lines are refused, and infer does not run on the stale input.
            too_big = dut.send(f"db load {len(image) + 1}")
            assert too_big[0].startswith("e-[db load: more bytes than")
            assert dut.send("db 00ff")[0].startswith("e-[db: no input load in progress")
            refused = dut.send("infer 1 0")
            assert refused == ["e-[infer: the last input load failed; load the input again (db load N, then db lines)]"]
            # An incomplete load is refused too; the rest completes it.
            dut.send(f"db load {len(image)}")
            dut.send(f"db {image[:31].tobytes().hex()}")
            assert dut.send("infer 1 0")[0].startswith(f"e-[infer: the input load is incomplete: 31 of {len(image)} bytes")
            dut.close()
            dut = SerialHost(pty)  # a client may leave and come back
            for start in range(31, len(image), RUNNER_CHUNK_BYTES):
                reply = dut.send(f"db {image[start:start + RUNNER_CHUNK_BYTES].tobytes().hex()}")
            assert reply == ["m-load-done"]
            assert dut.output(dut.send("infer 1 0")) == reference
        finally:
            dut.close()


@pytest.mark.skipif(not AD01.is_file() or not AD01_FEATURES.is_file(),
                    reason=f"{AD01} or its features are missing (../shared)")
def test_ad01_takes_float32_features_and_prints_one_anomaly_score(tmp_path):
    source = resolve_model(str(AD01))
    wire = input_wire_for("ad01", source.graph)
    features = np.fromfile(AD01_FEATURES, dtype="<f4")[128:768]  # the second window of 640
    model_input = wire.decode(features.tobytes())
    output = np.ascontiguousarray(run_tflm(source.tflite, [np.frombuffer(model_input, np.int8).reshape(1, 640)])[0])
    host_score = wire.score(model_input, output.tobytes())
    pty = tmp_path / "ad01"
    with served(str(AD01), pty) as info:  # known by its name: ad01
        assert (info["model_id"], info["input_conversion"], info["anomaly_score"]) == ("ad01", "float32", True)
        dut = SerialHost(pty)
        try:
            assert dut.load(features.tobytes()) == ["m-load-done"]  # 2,560 bytes, quantised as they come
            infer = dut.send("infer 3 1")
            assert dut.output(infer) == output.tobytes()
            assert dut.results(infer) == [f"{host_score:.6f}"]
            assert dut.send("db load 2561")[0] == "e-[db load: not a whole number of float32 values]"
        finally:
            dut.close()


def test_mlperf_dataset_writes_the_runner_layout(tmp_path, capsys):
    model = "mcunet-tiny"
    graph = resolve_model(model).graph
    tensor = graph.tensors[graph.inputs[0]]
    gray = np.arange(tensor.elements // 3, dtype=np.uint32).astype(np.uint8)
    np.save(tmp_path / "pic_3.npy", gray)
    assert main(["mlperf-dataset", model, str(tmp_path / "pic_3.npy"), "--model-id", "ic01",
                 "--synthetic", "2", "--seed", "4", "-o", str(tmp_path / "sets")]) == 0
    assert "performance mode loads 5 files" in capsys.readouterr().out
    folder = tmp_path / "sets" / "ic01"
    rows = list(csv.reader(open(folder / "y_labels.csv")))
    classes = str(graph.tensors[graph.outputs[0]].elements)
    assert rows[0] == ["pic_3.bin", classes, "3"] and [r[0] for r in rows[1:]] == ["synthetic_4_0000.bin", "synthetic_4_0001.bin"]
    assert (folder / "pic_3.bin").read_bytes() == np.repeat(gray, 3).tobytes()  # gray fills every channel
    assert all(len((folder / r[0]).read_bytes()) == tensor.elements for r in rows)
    np.save(tmp_path / "bad.npy", np.zeros(5, np.float32))
    assert main(["mlperf-dataset", model, str(tmp_path / "bad.npy"), "--model-id", "ic01", "-o", str(tmp_path / "x")]) == 2
    assert "float32; this model's runner input is uint8" in capsys.readouterr().err


def _stand_in_runner(folder: Path) -> Path:
    """A folder with the runner's file names whose main.py reports the ports pyserial lists."""
    folder.mkdir()
    for name in ("device_manager.py", "device_under_test.py"):
        (folder / name).write_text("")
    (folder / "devices.yaml").write_text("- name: board\n  type: dut\n  baud: 115200\n  usb:\n    0x0483: 0x374B\n")
    (folder / "main.py").write_text(
        "import sys, os\nfrom serial.tools import list_ports\n"
        "print('PORTS', [(p.device, p.vid, p.pid) for p in list_ports.comports(True) if p.vid])\n"
        "print('ARGS', sys.argv[1:], 'CWD', os.getcwd())\n")
    return folder


def test_the_launcher_lists_the_port_with_the_dut_usb_id(tmp_path, capfd):
    runner = _stand_in_runner(tmp_path / "runner")
    pty = tmp_path / "dut"
    with served("mcunet-tiny", pty):
        assert main(["mlperf-runner", "--runner", str(runner), "--port", str(pty), "--",
                     "-d", "devices.yaml", "-s", str(tmp_path), "-m", "p"]) == 0
    out = capfd.readouterr().out
    assert f"PORTS [('{pty}', 1155, 14155)]" in out  # 0x0483:0x374B, as the DUT entry says
    assert f"ARGS ['-d', 'devices.yaml', '-s', '{tmp_path}', '-m', 'p'] CWD {runner}" in out


def test_the_launcher_refuses_what_it_cannot_use(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TINYLAB_MLPERF_RUNNER", raising=False)
    assert main(["mlperf-runner", "--port", "/dev/null"]) == 2
    assert "TINYLAB_MLPERF_RUNNER" in capsys.readouterr().err
    runner = _stand_in_runner(tmp_path / "runner")
    assert main(["mlperf-runner", "--runner", str(runner), "--port", str(tmp_path / "none")]) == 2
    assert "start 'tinylab serve MODEL --pty" in capsys.readouterr().err
    assert main(["mlperf-runner", "--runner", str(tmp_path), "--port", "/dev/null"]) == 2
    assert "no main.py" in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("TINYLAB_MLPERF_RUNNER"),
                    reason="set TINYLAB_MLPERF_RUNNER to mlcommons/tiny's benchmark/runner folder to run the real runner")
def test_the_official_runner_measures_a_served_model(tmp_path):
    runner = Path(os.environ["TINYLAB_MLPERF_RUNNER"])
    assert main(["mlperf-dataset", "mcunet-tiny", "--model-id", "ic01", "--synthetic", "5", "-o", str(tmp_path / "sets")]) == 0
    pty = tmp_path / "dut"
    with served("mcunet-tiny", pty, "--model-id", "ic01"):
        done = subprocess.run([sys.executable, "-m", "tinylab_cli", "mlperf-runner", "--runner", str(runner),
                               "--port", str(pty), "--", "-d", "devices_kws_ic_vww.yaml", "-t", "tests_performance.yaml",
                               "-s", str(tmp_path / "sets"), "-m", "p"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Device model retrieved: ic01" in done.stdout
    assert len(re.findall(r"ulp-mlperf: Performance results for window \d+:", done.stdout)) == 5
    assert "Median throughput is" in done.stdout
