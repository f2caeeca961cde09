"""`tinylab nightly`: the suite it finds, and a deliberately slower build named as a regression."""
from __future__ import annotations

import json

import pytest

from hil.errors import LabError
from hil.experiments.nightly import suite_models
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu


def test_suite_is_own_models_then_shared_then_folders(tmp_path):
    shared, extra = tmp_path / "shared", tmp_path / "extra"
    shared.mkdir()
    extra.mkdir()
    (shared / "b.tflite").write_bytes(b"")
    (shared / "a.tflite").write_bytes(b"")
    (extra / "c.tflite").write_bytes(b"")
    assert suite_models([extra], shared=shared) == [
        "mcunet-tiny", str(shared / "a.tflite"), str(shared / "b.tflite"), str(extra / "c.tflite")]
    assert suite_models([], shared=tmp_path / "absent") == ["mcunet-tiny"]
    assert suite_models([extra], standard=False, chosen=["x.tflite"], shared=shared) == ["x.tflite", str(extra / "c.tflite")]
    with pytest.raises(LabError, match="does not exist"):
        suite_models([tmp_path / "nowhere"], shared=shared)
    with pytest.raises(LabError, match="no .tflite file"):
        suite_models([tmp_path], shared=shared)


@needs_arm_gcc
@needs_qemu
def test_a_slower_build_after_a_normal_one_exits_non_zero_naming_model_and_metric(tmp_path, private_store, capsys):
    args = ["nightly", "mcunet-tiny", "--boards", "qemu-f746", "-o", str(tmp_path / "report"), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["ok"] and first["problems"] == []
    assert [o["status"] for o in first["outcomes"]] == ["measured"]
    assert "no TFLM library given" in first["outcomes"][0]["detail"]
    assert (tmp_path / "report" / "index.html").is_file()

    assert main(args + ["--kernels", "portable"]) == 1
    second = json.loads(capsys.readouterr().out)
    latency = [p for p in second["problems"] if p.startswith("REGRESSION mcunet-tiny on qemu-f746") and ": latency " in p]
    assert len(latency) == 1 and "instructions" in latency[0]

    # The same slow build again is not a new regression: it is compared with the run before it.
    assert main(args + ["--kernels", "portable"]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == []


@needs_arm_gcc
@needs_qemu
def test_a_model_that_fails_is_named_and_the_rest_still_runs(tmp_path, capsys):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    assert main(["nightly", "mcunet-tiny", str(broken), "--boards", "qemu-f746", "-o", str(tmp_path / "r")]) == 1
    out = capsys.readouterr().out
    assert "FAILED broken on qemu-f746:" in out and "1 model/board pairs measured" in out
