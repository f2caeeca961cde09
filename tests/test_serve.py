"""`tinylab build` and `tinylab serve`: firmware for other tools, and a client that knows only the
MLPerf Tiny protocol (a plain socket, no hil code) driving the served firmware."""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
from elftools.elf.elffile import ELFFile

from engine.oracle import run_tflm
from hil.experiments.models import default_input, resolve_model
from hil.run.runners.emulator import free_tcp_port
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu
from mlperf_client import SocketHost, served

pytestmark = [needs_arm_gcc, needs_qemu]

def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_build_writes_the_elf_and_its_size(tmp_path, capsys):
    elf = tmp_path / "out" / "tiny.elf"
    assert main(["build", "mcunet-tiny", "--board", "qemu-f412", "-o", str(elf), "--model-id", "ic01", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert elf.is_file() and summary["elf"] == str(elf)
    assert summary["flash_bytes"] == summary["text_bytes"] + summary["data_bytes"] > 50_000
    assert summary["input_staged"] is True  # the F412's 256 KB have room for a staging copy
    with open(elf, "rb") as stream:
        elf_file = ELFFile(stream)
        assert elf_file["e_machine"] == "EM_ARM"
        assert elf_file.get_section_by_name(".symtab").get_symbol_by_name("lab_input_buffer")
    assert b"ic01" in elf.read_bytes()  # profile% reports the MLPerf model id
    assert main(["build", "mcunet-tiny", "-o", str(elf)]) == 0
    assert "flash" in capsys.readouterr().out


def test_serve_refuses_a_real_board(capsys):
    assert main(["serve", "mcunet-tiny", "--board", "nucleo-f746zg", "--tcp", "0"]) == 2
    assert "not emulated" in capsys.readouterr().err


def test_serve_refuses_a_pty_path_that_exists_or_a_bad_port(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("a user's file")
    assert main(["serve", "mcunet-tiny", "--pty", str(taken)]) == 2
    assert "the path exists" in capsys.readouterr().err and taken.read_text() == "a user's file"
    assert main(["serve", "mcunet-tiny", "--pty", str(tmp_path / "no" / "dut")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", "mcunet-tiny", "--tcp", "70000"]) == 2
    assert "not a TCP port" in capsys.readouterr().err


def test_an_mlperf_client_drives_the_served_firmware():
    source = resolve_model("mcunet-tiny")
    graph = source.graph
    out = graph.tensors[graph.outputs[0]]
    value = default_input(graph, seed=11)
    reference = run_tflm(source.tflite, [value])[0].ravel()
    scale = float(np.float32(out.scale[0]))
    expected = [float(f"{scale * (int(q) - out.zero_point[0]):.6f}") for q in reference]

    port = free_tcp_port()
    with served("mcunet-tiny", "--board", "qemu-f746", "--tcp", str(port)) as started:
        qemu_pid = started["qemu_pid"]
        assert started["port"] == port
        assert "m-init-done" in started["banner"]  # serve read the boot banner itself
        client = SocketHost(port)
        try:
            name = client.send("name")
            assert any(re.match(r"^m-name-dut-\[[^]]+\]$", line) for line in name)
            assert "m-load-done" in client.load(value.tobytes())
            infer = client.send("infer 3 1")
            laps = [int(m.group(1)) for m in map(re.compile(r"^m-lap-us-([0-9]+)$").match, infer) if m]
            assert len(laps) == 2 and laps[1] > laps[0]
            assert [float(v) for v in client.results(infer)] == expected
            assert [float(v) for v in client.results(client.send("results"))] == expected
            client.close()
            client = SocketHost(port)  # a second client can connect after the first one left
            assert [float(v) for v in client.results(client.send("results"))] == expected
        finally:
            client.close()
    deadline = time.monotonic() + 5
    while not process_gone(qemu_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(qemu_pid)
