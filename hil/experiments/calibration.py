"""Calibration of the measurement chain: a firmware whose workloads have known costs.

`block` runs a generated straight-line block of `block_length` additions `repeats` times;
`empty` is a bare return, so block minus empty is exactly `repeats * (block_length + 2) + 2`
instructions. `stack` uses exactly `20 + frame_bytes` bytes of stack; `touch` writes exactly
`touch_bytes` bytes of the arena. Under QEMU the instruction count must match within one timer
tick; on hardware the count is reported as cycles and cycles per instruction."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from hil.firmware_build.firmware import Firmware, WorkloadSources, build_firmware, render_template
from hil.firmware_build.toolchain import toolchain_summary
from hil.run.protocol import InferenceReport
from hil.run.runners import Runner, runner_for
from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from hil.targets.boardspec import BoardSpec

WORKLOADS = ("empty", "block", "stack", "touch")
STACK_TOLERANCE_BYTES = 16
FIRMWARE_ENGINE = "calibration"
FIRMWARE_VERSION = "1"


@dataclass(frozen=True)
class CalibrationPlan:
    block_length: int = 200
    repeats: int = 500
    frame_bytes: int = 256
    touch_bytes: int = 300
    arena_bytes: int = 1024

    @property
    def expected_instructions(self) -> int:
        """Instructions of `block` minus those of `empty` (see calibration/kernels.S.j2)."""
        return self.repeats * (self.block_length + 2) + 2

    @property
    def expected_stack_bytes(self) -> int:
        return 20 + self.frame_bytes

    def sources(self) -> WorkloadSources:
        return WorkloadSources(
            files={
                "calibration_kernels.S": render_template(
                    "calibration/kernels.S.j2",
                    block_length=self.block_length,
                    repeats=self.repeats,
                    frame_bytes=self.frame_bytes,
                ),
                "calibration_workloads.c": render_template(
                    "calibration/workloads.c.j2", arena_bytes=self.arena_bytes, touch_bytes=self.touch_bytes
                ),
            },
            label="calibration",
        )


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class CalibrationReport:
    board: str
    backend: str
    unit: str
    resolution: float  # one timer tick in `unit`
    runs: int
    empty_window: float  # the fixed overhead of a timed window, in `unit`
    block_measured: float  # block minus empty, in `unit`
    block_expected_instructions: int
    stack_measured: int
    stack_expected: int
    stack_high_water: int  # the whole program's stack at its deepest, in bytes
    arena_touched: int
    arena_expected: int
    flash_bytes: int
    static_ram_bytes: int
    repeatable: bool
    raw_ticks: list[dict[str, int]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def cycles_per_instruction(self) -> float | None:
        if self.unit != "cycles":
            return None
        return self.block_measured / self.block_expected_instructions

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["passed"] = self.passed
        data["cycles_per_instruction"] = self.cycles_per_instruction
        return data


def measure_once(runner: Runner, firmware: Firmware) -> dict[str, InferenceReport]:
    """Boot the calibration firmware once and time every workload (one warm-up, one timed run)."""
    reports = {}
    with runner.open(firmware) as link:
        for name in WORKLOADS:
            link.select(name)
            reports[name] = link.infer(count=1, warmup=1)
    return reports


def calibrate(board: BoardSpec, plan: CalibrationPlan | None = None, runs: int = 2, timeout_s: float = 30.0) -> tuple[CalibrationReport, Firmware]:
    plan = plan or CalibrationPlan()
    firmware = build_firmware(board, plan.sources())
    runner = runner_for(board, timeout_s=timeout_s)
    all_runs = [measure_once(runner, firmware) for _ in range(max(1, runs))]
    first = all_runs[0]
    raw = [{name: r.ticks_min for name, r in reports.items()} for reports in all_runs]

    empty = runner.latency(first["empty"].ticks_min)
    block = runner.latency(first["block"].ticks_min - first["empty"].ticks_min)
    stack_measured = first["stack"].stack_high_water - first["stack"].stack_at_call
    report = CalibrationReport(
        board=board.name,
        backend=runner.backend,
        unit=runner.unit,
        resolution=block.resolution,
        runs=len(all_runs),
        empty_window=empty.value,
        block_measured=block.value,
        block_expected_instructions=plan.expected_instructions,
        stack_measured=stack_measured,
        stack_expected=plan.expected_stack_bytes,
        stack_high_water=first["stack"].stack_high_water,
        arena_touched=first["touch"].arena_touched,
        arena_expected=plan.touch_bytes,
        flash_bytes=firmware.size.flash,
        static_ram_bytes=firmware.size.static_ram,
        repeatable=all(r == raw[0] for r in raw)
        and all(
            (a.stack_high_water, a.arena_touched, a.checksum) == (b.stack_high_water, b.arena_touched, b.checksum)
            for reports in all_runs[1:]
            for a, b in zip(first.values(), reports.values())
        ),
        raw_ticks=raw,
    )
    report.checks = _checks(report)
    return report, firmware


def _checks(report: CalibrationReport) -> list[Check]:
    checks = []
    if report.unit == "instructions":
        error = report.block_measured - report.block_expected_instructions
        checks.append(
            Check(
                "instructions",
                abs(error) <= report.resolution,
                f"measured {report.block_measured:,.2f}, expected {report.block_expected_instructions:,} "
                f"(difference {error:+.2f}; one timer tick is {report.resolution:.2f} instructions)",
            )
        )
    else:
        checks.append(
            Check(
                "cycles",
                report.block_measured > 0,
                f"{report.block_measured:,.0f} cycles for {report.block_expected_instructions:,} instructions "
                f"({report.cycles_per_instruction:.3f} cycles per instruction)",
            )
        )
    stack_error = report.stack_measured - report.stack_expected
    checks.append(
        Check(
            "stack",
            abs(stack_error) <= STACK_TOLERANCE_BYTES,
            f"measured {report.stack_measured} B, expected {report.stack_expected} B "
            f"(difference {stack_error:+d}; tolerance {STACK_TOLERANCE_BYTES} B)",
        )
    )
    checks.append(
        Check(
            "arena",
            report.arena_touched == report.arena_expected,
            f"measured {report.arena_touched} B touched, expected {report.arena_expected} B",
        )
    )
    if report.unit == "instructions":
        checks.append(
            Check(
                "repeatable",
                report.repeatable,
                f"{report.runs} boots gave " + ("identical figures" if report.repeatable else f"different ticks: {report.raw_ticks}"),
            )
        )
    return checks


def measurements(report: CalibrationReport, firmware: Firmware, provenance: Provenance) -> list[Measurement]:
    """The report's figures as rows for the results store."""
    extra = {"checks": {c.name: c.passed for c in report.checks}, "resolution": report.resolution}

    def row(metric: str, value: float, unit: str) -> Measurement:
        return provenance.measurement("calibration", firmware.digest, metric, value, unit, extra)

    return [
        row("latency", report.block_measured, report.unit),
        row("latency_empty_window", report.empty_window, report.unit),
        row("calibration_stack", report.stack_measured, "bytes"),
        row("stack_high_water", report.stack_high_water, "bytes"),
        row("arena_touched", report.arena_touched, "bytes"),
        row("flash", report.flash_bytes, "bytes"),
        row("static_ram", report.static_ram_bytes, "bytes"),
    ]


def provenance_for(report: CalibrationReport, test_id: str = "") -> Provenance:
    tools = ["arm-none-eabi-gcc"] + (["qemu-system-arm"] if report.backend == "qemu" else [])
    return Provenance.collect(
        engine=FIRMWARE_ENGINE,
        engine_version=FIRMWARE_VERSION,
        board=report.board,
        backend=report.backend,
        toolchain=toolchain_summary(*tools),
        test_id=test_id,
    )
