"""MLPerf Tiny compatibility: the firmware's performance-mode lines, dequantised `m-results-[...]`
printed exactly, and `tinylab mlperf` (performance windows, top-1, AUC) on real models."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import serial

from engine.oracle import run_tflm
from hil.firmware_build.firmware import WorkloadSources, build_firmware
from hil.firmware_build.model_workload import float32_parts
from hil.errors import ProtocolError
from hil.experiments.mlperf import (dequantize_input, inferences_per_window, label_from_name, read_inputs, read_label_file,
                                    roc_auc, run_mlperf)
from hil.experiments.models import default_input, resolve_model
from hil.run.protocol import DeviceLink
from hil.run.runners.qemu import QemuRunner
from hil.store.results import open_store
from hil.targets.boards import load_board
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
needs_shared = pytest.mark.skipif(not (SHARED_MODELS / "kws_ref_model.tflite").is_file()
                                  or not (SHARED_MODELS / "ad01_int8.tflite").is_file(),
                                  reason=f"no shared models at {SHARED_MODELS}")


def six_decimals(value: float) -> float:
    """What the firmware prints for an exact value: 6 decimals, rounded half to even."""
    return float(f"{value:.6f}")


# ---- pure host-side pieces ----------------------------------------------------------------------


def test_float32_parts_are_exact():
    for value in (0.36449846625328064, 0.00390625, 1.0, 3e-9, 12345.678, 2.0**-40):
        mantissa, exponent = float32_parts(value)
        assert mantissa % 2 == 1 and mantissa < 1 << 24
        assert math.ldexp(mantissa, exponent) == float(np.float32(value))
    assert float32_parts(0.0) == (0, 0)


def test_roc_auc_counts_ties_as_half():
    assert roc_auc([0.1, 0.2, 0.9, 0.8], [False, False, True, True]) == 1.0
    assert roc_auc([0.9, 0.8, 0.1, 0.2], [False, False, True, True]) == 0.0
    assert roc_auc([0.5, 0.5], [False, True]) == 0.5
    assert roc_auc([0.1, 0.3, 0.2, 0.4], [False, True, True, False]) == 0.5


def test_labels_from_names_and_files(tmp_path):
    assert label_from_name(Path("tst_000012_Stop_7.bin")) == "7"
    assert label_from_name(Path("normal_id_01_00000003.bin")) == "normal"
    assert label_from_name(Path("anomaly_id_02_0001.npy")) == "anomaly"
    assert label_from_name(Path("image.npy")) is None
    (tmp_path / "y_labels.csv").write_text("a.bin, 12, 3\nb.bin, 12, 11\n")
    assert read_label_file(tmp_path) == {"a.bin": "3", "b.bin": "11"}
    (tmp_path / "labels.csv").write_text("file,label\nc.npy,normal\n")
    assert read_label_file(tmp_path) == {"c.npy": "normal"}  # labels.csv comes first


def test_window_length_sets_the_inference_count():
    assert inferences_per_window(1_000_000, 25e6, 1.0) == 25  # 25 M ticks in one second
    assert inferences_per_window(1_000_000, 25e6, 1.01) == 26
    assert inferences_per_window(10**12, 25e6, 10.0) == 1


# ---- the firmware's lines -----------------------------------------------------------------------

# Outputs with known bytes, each with an output format, to check the dequantised printing.
INT8_SCALE, INT8_ZERO = 0.36449846625328064, 96
UINT8_SCALE = 2.0**-7  # every odd value is a tie at 6 decimals (k * 7812.5 / 10^6)
INT16_SCALE = 3.0517578125e-05 * 3
FLOATS = [0.0, -0.0, 1.0, -1.5, 0.0078125, 0.0234375, -0.0234375, 1e-7, -1e-7, 1e-45, 123456.789,
          -98765.4321, 1e12, 3.4e-38, 0.1, 2.0 / 3.0]
INT16S = [-32768, -32767, -1, 0, 1, 2, 3, 12345, 32767]


def _c_bytes(data: bytes) -> str:
    return ", ".join(str(b) for b in data)


def _format(type_: str, scale: float, zero_point: int) -> str:
    mantissa, exponent = float32_parts(scale)
    return f"{{{type_}, {mantissa}u, {exponent}, {zero_point}}}"


def format_table() -> str:
    floats = np.array(FLOATS, dtype="<f4").tobytes()
    int16s = np.array(INT16S, dtype="<i2").tobytes()
    return f"""
#include <stddef.h>
#include <stdint.h>
#include "lab.h"
static void nothing(void) {{}}
static const uint8_t all_bytes[256] = {{{_c_bytes(bytes(range(256)))}}};
static const uint8_t floats[{len(floats)}] = {{{_c_bytes(floats)}}};
static const uint8_t int16s[{len(int16s)}] = {{{_c_bytes(int16s)}}};
static const workload_t q8 = {{"q8", NULL, 0, all_bytes, 256, NULL, 0, nothing}};
static const workload_t u8 = {{"u8", NULL, 0, all_bytes, 256, NULL, 0, nothing}};
static const workload_t i16 = {{"i16", NULL, 0, int16s, sizeof int16s, NULL, 0, nothing}};
static const workload_t f32 = {{"f32", NULL, 0, floats, sizeof floats, NULL, 0, nothing}};
static const workload_t raw = {{"raw", NULL, 0, all_bytes, 256, NULL, 0, nothing}};
static const lab_output_format_t q8_format = {_format("LAB_OUTPUT_INT8", INT8_SCALE, INT8_ZERO)};
static const lab_output_format_t u8_format = {_format("LAB_OUTPUT_UINT8", UINT8_SCALE, 0)};
static const lab_output_format_t i16_format = {_format("LAB_OUTPUT_INT16", INT16_SCALE, -3)};
static const lab_output_format_t f32_format = {{LAB_OUTPUT_FLOAT32, 0u, 0, 0}};
const workload_t *const lab_workloads[] = {{&q8, &u8, &i16, &f32, &raw}};
const uint32_t lab_workload_count = 5;
void lab_workloads_init(void) {{}}
const lab_output_format_t *lab_output_format(const workload_t *w)
{{
    return w == &q8 ? &q8_format : w == &u8 ? &u8_format : w == &i16 ? &i16_format
         : w == &f32 ? &f32_format : NULL;
}}
"""


def expected_values() -> dict[str, list[float]]:
    signed = np.arange(256, dtype=np.uint8).view(np.int8).astype(int)
    scale8, scale_u8, scale16 = (float(np.float32(s)) for s in (INT8_SCALE, UINT8_SCALE, INT16_SCALE))
    return {
        "q8": [six_decimals(scale8 * (q - INT8_ZERO)) for q in signed],
        "u8": [six_decimals(scale_u8 * q) for q in range(256)],
        "i16": [six_decimals(scale16 * (q + 3)) for q in INT16S],
        "f32": [six_decimals(float(v)) for v in np.array(FLOATS, dtype=np.float32)],
        "raw": [float(q) for q in signed],
    }


@pytest.fixture(scope="module")
def format_firmware(tmp_path_factory):
    board = load_board("qemu-f746")
    return build_firmware(board, WorkloadSources(files={"table.c": format_table()}),
                          cache_dir=tmp_path_factory.mktemp("fw"))


@needs_arm_gcc
@needs_qemu
def test_results_are_the_output_dequantised_exactly(format_firmware):
    expected = expected_values()
    with QemuRunner(load_board("qemu-f746")).open(format_firmware) as link:
        for name, values in expected.items():
            link.select(name)
            report = link.infer(1, 0)
            assert list(report.values) == values, name
            raw, again = link.results()
            assert again == report.values and raw == report.output
    assert expected["u8"][1] == 0.007812 and expected["u8"][3] == 0.023438  # ties to even, both ways


@needs_arm_gcc
@needs_qemu
def test_infer_speaks_the_mlperf_performance_mode(format_firmware):
    board = load_board("qemu-f746")
    with QemuRunner(board).open(format_firmware) as link:
        assert link.name() == "tinylab qemu-f746"
        link.select("q8")
        lines = link.command("infer 7 2")
        report = link.infer(5, 0)
    assert lines[:3] == ["m-warmup-start-2", "m-warmup-done", "m-infer-start-7"]
    laps = [int(line[len("m-lap-us-"):]) for line in lines if line.startswith("m-lap-us-")]
    assert len(laps) == 2 and lines.index("m-infer-done") > max(i for i, l in enumerate(lines) if l.startswith("m-lap-us-"))
    assert any(line.startswith("m-lab-lap-clock-[qemu-virtual-us") for line in lines)
    assert lines[-1].startswith("m-results-[") and any(line.startswith("m-lab-output-[") for line in lines)
    # with a staging copy of the input, the output reported is the last inference's (7 + 2 here)
    assert "m-lab-output-inference-[9]" in lines and "m-lab-output-input-[none]" in lines
    assert (report.output_inference, report.output_input) == (5, "none")
    # the lap clock only runs in timed windows: the next window starts where this one ended
    assert report.lap_us[0] == laps[1]
    elapsed = report.ticks_total * 1_000_000 / board.clock_hz
    assert abs((report.lap_us[1] - report.lap_us[0]) - elapsed) <= 1


# ---- tinylab mlperf -----------------------------------------------------------------------------


@needs_arm_gcc
@needs_qemu
@needs_shared
def test_mlperf_on_kws_top1_and_the_store(tmp_path, capsys, private_store):
    model = SHARED_MODELS / "kws_ref_model.tflite"
    source = resolve_model(str(model))
    inputs = tmp_path / "kws"
    inputs.mkdir()
    for seed in range(4):
        value = default_input(source.graph, seed=seed + 10)
        predicted = int(np.argmax(run_tflm(source.tflite, [value])[0]))
        label = predicted if seed < 3 else (predicted + 1) % 12  # the last one is labelled wrong
        if seed == 1:
            (inputs / f"tst_{seed:06d}_word_{label}.bin").write_bytes(value.tobytes())  # raw bytes
        else:
            np.save(inputs / f"tst_{seed:06d}_word_{label}.npy", value)
    assert main(["mlperf", str(model), "--board", "qemu-f746", "--inputs", str(inputs),
                 "--window-s", "0.05", "--warmup", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["accuracy_metric"] == "top1" and summary["accuracy"] == 0.75
    assert summary["outputs_matching_tflm"] == 4 and summary["windows"] == 5
    assert summary["latency_unit"] == "instructions" and len(set(summary["latency_per_window"])) == 1
    per_inference_s = summary["latency"] * 1e-9  # 1 instruction = 1 ns of QEMU virtual time
    count = summary["inferences_per_window"]
    assert count * per_inference_s >= 0.05 > (count - 1) * per_inference_s  # the shortest long-enough window
    with open_store(private_store) as store:
        rows = {r.metric: r for r in store.query(model="kws_ref_model")}
    assert rows["mlperf_latency"].unit == "instructions" and rows["mlperf_latency"].value == summary["latency"]
    assert rows["mlperf_top1"].value == 0.75 and rows["mlperf_top1"].unit == "fraction"
    assert rows["mlperf_matches_reference"].value == 1.0


@needs_arm_gcc
@needs_qemu
@needs_shared
def test_mlperf_on_ad01_auc(tmp_path):
    source = resolve_model(str(SHARED_MODELS / "ad01_int8.tflite"))
    graph = source.graph
    out = graph.tensors[graph.outputs[0]]
    scale, zero = float(np.float32(out.scale[0])), out.zero_point[0]
    values = [default_input(graph, seed=seed) for seed in range(6)]
    # The anomaly score as the lab computes it from the printed numbers, here from TFLM's output.
    scores = []
    for value in values:
        printed = [six_decimals(scale * (int(q) - zero)) for q in run_tflm(source.tflite, [value])[0].ravel()]
        scores.append(float(np.mean((dequantize_input(value, graph) - np.array(printed)) ** 2)))
    anomalous = set(np.argsort(scores)[-2:])  # the two highest scores are the anomalies: AUC 1
    folder = tmp_path / "ad"
    folder.mkdir()
    rows = ["file,label"]
    for index, value in enumerate(values):
        name = f"clip_{index}.npy"
        # one input as float features, quantised by the lab with the input's scale and zero point
        np.save(folder / name, dequantize_input(value, graph).astype(np.float32) if index == 0 else value)
        rows.append(f"{name},{'anomaly' if index in anomalous else 'normal'}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    assert np.array_equal(read_inputs(folder, graph)[0].value, values[0])
    result = run_mlperf(load_board("qemu-f412"), source, folder, window_s=0.02, warmup=1, windows=3)
    assert result.accuracy.metric == "auc" and result.accuracy.value == 1.0
    assert result.accuracy.matches_reference == 6
    assert [p["score"] for p in result.accuracy.predictions] == pytest.approx(scores, rel=1e-12)
    assert len(result.performance.per_window) == 3 and result.performance.unit == "instructions"


@needs_arm_gcc
@needs_qemu
def test_mlperf_on_the_builtin_model(tmp_path):
    source = resolve_model("mcunet-tiny")
    folder = tmp_path / "ic"
    folder.mkdir()
    truth = []
    for seed in range(3):
        value = default_input(source.graph, seed=seed)
        (folder / f"img{seed}.bin").write_bytes(value.tobytes())
        truth.append(f"img{seed}.bin, 10, {int(np.argmax(run_tflm(source.tflite, [value])[0]))}")
    (folder / "y_labels.csv").write_text("\n".join(truth) + "\n")  # MLPerf Tiny's truth-file form
    result = run_mlperf(load_board("qemu-f746"), source, folder, window_s=0.02, warmup=1)
    assert result.accuracy.metric == "top1" and result.accuracy.value == 1.0
    assert result.accuracy.matches_reference == 3
    assert result.performance.median > 100_000 and len(result.performance.per_window) == 5
    assert result.performance.lap_clock.startswith("qemu-virtual-us")


# ---- the host side of the new lines -------------------------------------------------------------

INFER_REPLY = ("m-warmup-start-0\r\nm-warmup-done\r\nm-infer-start-2\r\nm-lap-us-100\r\nm-lap-us-180\r\n"
               "m-infer-done\r\nm-lab-ticks-total-[2000]\r\nm-lab-ticks-min-[1000]\r\nm-lab-ticks-max-[1000]\r\n"
               "m-lab-stack-high-water-[64]\r\nm-lab-stack-at-call-[8]\r\nm-lab-arena-touched-[4]\r\n"
               "m-lab-output-inference-[1]\r\nm-lab-output-input-[loaded]\r\n"
               "m-lab-checksum-[0badcafe]\r\n{output}m-results-[0.500000,-1.250000,0.000000]\r\nm-ready\r\n")


def fake_device(reply: str) -> DeviceLink:
    port = serial.serial_for_url("loop://", timeout=0.05)
    port.write(reply.encode())
    link = DeviceLink(port, "test-board", timeout_s=0.5)
    link.port.write = lambda data: len(data)  # the device's reply is already queued
    return link


def test_infer_reads_raw_bytes_numbers_and_laps():
    report = fake_device(INFER_REPLY.format(output="m-lab-output-[80ff7f]\r\n")).infer(2, 0)
    assert report.output == b"\x80\xff\x7f" and report.results == (-128, -1, 127)
    assert report.values == (0.5, -1.25, 0.0) and report.lap_us == (100, 180)
    assert (report.output_inference, report.output_input, report.output_of_loaded_input) == (1, "loaded", True)


def test_infer_without_saying_whose_output_it_reports_is_an_error():
    reply = INFER_REPLY.format(output="m-lab-output-[80ff7f]\r\n").replace("m-lab-output-input-[loaded]\r\n", "")
    with pytest.raises(ProtocolError, match="lacks output-input"):
        fake_device(reply).infer(2, 0)


def test_infer_without_raw_output_or_with_bad_hex_is_an_error():
    with pytest.raises(ProtocolError, match="lacks output"):
        fake_device(INFER_REPLY.format(output="")).infer(2, 0)
    with pytest.raises(ProtocolError, match="not hex"):
        fake_device(INFER_REPLY.format(output="m-lab-output-[8g]\r\n")).infer(2, 0)
