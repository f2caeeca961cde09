"""`tinylab nas codesign`: the co-design table (MCUNet's Table 2) as one benchmark. It runs `nas
run` for every SRAM budget and seed, with one latency budget for all (by default the median
predicted latency of the fitting networks at the first SRAM budget, so that it binds there), keeps
each run's record in a folder as soon as it ends, skips the runs already recorded there, and prints
the table (`nas/codesign.py`)."""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from hil.errors import LabError
from hil.progress import progress_printer
from hil.sizes import byte_count

DEFAULT_SRAMS = "64K,32K"
DEFAULT_SEEDS = "0,1,2"


def add_codesign_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("codesign", "the co-design table: nas run for every SRAM budget and seed")
    group.add_argument("--srams", type=byte_list, default=byte_list(DEFAULT_SRAMS), metavar="BYTES,BYTES",
                       help="the SRAM budgets of the table; the first one sets the median latency budget "
                            f"(default: {DEFAULT_SRAMS})")
    group.add_argument("--seeds", type=seed_list, default=seed_list(DEFAULT_SEEDS), metavar="S,S",
                       help=f"the seeds of each budget's runs (default: {DEFAULT_SEEDS})")
    group.add_argument("--runs", type=Path, metavar="DIR",
                       help="folder of the runs' records, one JSON per SRAM budget and seed; a run recorded there is "
                            "not run again (default: the results folder's codesign-BOARD-BUDGET)")
    group.add_argument("--table-only", action="store_true",
                       help="run nothing: make the table of the records in --runs")


def byte_list(text: str) -> list[int]:
    values = [byte_count(part) for part in text.split(",") if part.strip()]
    if not values or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of distinct byte counts, such as 64K,32K")
    return values


def seed_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of integer seeds, such as 0,1,2") from None
    if not values or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of distinct seeds, such as 0,1,2")
    return values


def size_label(size: int) -> str:
    return f"{size // 1024}K" if size % 1024 == 0 else f"{size}B"


def record_path(folder: Path, sram: int, seed: int) -> Path:
    return folder / f"{size_label(sram)}-s{seed}.json"


def run_codesign(args: argparse.Namespace) -> int:
    from hil.resources import results_dir
    from nas.codesign import codesign_table

    folder = args.runs or results_dir() / f"codesign-{Path(args.board).stem}-{args.budget}"
    plan = [(sram, seed) for sram in args.srams for seed in args.seeds]
    if args.table_only:
        records = recorded(folder, plan)
        if not records:
            raise LabError(f"{folder} holds no run record of these budgets and seeds (files like "
                           f"{record_path(folder, *plan[0]).name}); run without --table-only to make them")
    else:
        records = run_all(args, folder, plan)
    table = codesign_table(records)
    missing = [record_path(folder, *key).name for key in plan if key not in records]
    if args.json:
        print(json.dumps({**table.to_json(), "runs": str(folder), "missing": missing}, indent=2))
    else:
        print(table.markdown())
        print(f"\nrecords in {folder}" + (f"; not run yet: {', '.join(missing)}" if missing else ""))
    return 0


def run_all(args: argparse.Namespace, folder: Path, plan: list[tuple[int, int]]) -> dict:
    """Each run of the plan not yet recorded, its record written as it ends; every record."""
    from engine.cache import write_text_atomically
    from tinylab_cli.nas_run import nas_run_report

    folder.mkdir(parents=True, exist_ok=True)
    records = recorded(folder, plan)
    latency = recorded_latency(args.latency, records, folder)
    say = progress_printer(args.json)
    for number, (sram, seed) in enumerate(plan, 1):
        if (sram, seed) in records:
            continue
        say(f"=== co-design run {number}/{len(plan)}: SRAM {size_label(sram)}, seed {seed}, latency "
            f"budget {latency if isinstance(latency, str) else format(latency, ',.0f')}")
        run_args = copy.copy(args)
        run_args.sram, run_args.seed, run_args.latency = sram, seed, latency
        records[(sram, seed)] = record = nas_run_report(run_args)
        write_text_atomically(record_path(folder, sram, seed), json.dumps(record, indent=2))
        latency = record["budget"]["latency"]  # the first run's median binds every later one
    return records


def recorded_latency(asked: float | str | None, records: dict, folder: Path) -> float | str:
    """The latency budget of the runs still to make: `asked` (default `median`), or where `median`
    was asked and runs are recorded already, the budget they were made with."""
    latency = "median" if asked is None else asked
    made_with = sorted({record["budget"]["latency"] for record in records.values()}, key=str)
    if len(made_with) > 1:
        raise LabError(f"the runs recorded in {folder} were made with different latency budgets: {made_with}")
    if not made_with:
        return latency
    if latency != "median" and latency != made_with[0]:
        raise LabError(f"--latency {latency:,.0f}, but the runs recorded in {folder} were made with a latency budget "
                       f"of {made_with[0]}; give that budget, or another --runs folder")
    return made_with[0]


def recorded(folder: Path, plan: list[tuple[int, int]]) -> dict:
    """The records of the plan's runs that `folder` holds, by (SRAM budget, seed)."""
    return {key: read_record(record_path(folder, *key)) for key in plan if record_path(folder, *key).exists()}


def read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
        record["budget"], record["winner"], record["baselines"]  # noqa: B018 - a `nas run` record has these
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise LabError(f"{path} is not a `nas run --json` record: {error}") from None
    return record
