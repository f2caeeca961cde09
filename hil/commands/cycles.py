"""`tinylab cycles`: the cycle model's timing data (`models`) and its validation against latencies
published for real boards (`validate`)."""
from __future__ import annotations

import argparse
import json

from hil.cycles.coremodel import load_core, memory_systems
from hil.cycles_validation.validation import (RANKED_BOARD_PAIRS, TARGET_MEDIAN_ERROR, TARGET_SPEARMAN, PairResult, load_pairs,
                                   summarise, validate)
from hil.experiments.models import DEFAULT_MODEL
from hil.targets.boards import load_board

SUMMARY = "the cycle model: its timing data, and its error against latencies published for real boards"
EXAMPLES = """\
  tinylab cycles models                      # the cores and memory systems, with each board they estimate for
  tinylab cycles validate                    # every published pair whose sources are set (see below)
  tinylab cycles validate --only tinyengine --json
  tinylab cycles cost ../shared/models-mcunet/mcunet-320kb-1mb_imagenet.tflite   # profiled vs plain run, wall time
The validation rebuilds published software (TinyEngine, TFLM, microTVM's MLPerf Tiny submissions)
from fetched sources that are never part of the lab; each pair names the environment variable of
its source folder and how to obtain it, and is skipped, saying so, when it is not set.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("validate", "models", "cost"),
                        help="validate: run every published pair under QEMU with the profiler and compare; "
                        "models: list the timing data; cost: the wall time of a profiled run against a plain one")
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                        help=f"cost: a .tflite file or a built-in model (default: {DEFAULT_MODEL})")
    parser.add_argument("--board", default="qemu-f746", help="cost: an emulated board (default: qemu-f746)")
    parser.add_argument("--only", metavar="TEXT", help="validate only the pairs whose software, model or board contains TEXT")


def run(args: argparse.Namespace) -> int:
    if args.action == "models":
        return list_models(args)
    if args.action == "cost":
        return profiling_cost(args)
    from hil.cycles_validation.recipes import RECIPES

    pairs = [p for p in load_pairs() if not args.only or any(args.only in f for f in (p.software, p.model, p.board))]

    def progress(pair) -> None:
        if not args.json:
            print(f"{pair.software} {pair.model} on {pair.twin} (for {pair.board}) ...", flush=True)

    results = validate(pairs, RECIPES, progress=progress)
    summary = summarise(results, lambda board: load_board(board).core)
    if args.json:
        print(json.dumps({"pairs": [r.to_json() for r in results], "summary": summary.to_json()}, indent=2))
    else:
        print_table(results)
        print_summary(results, summary)
    return 0 if summary.meets_targets else 1


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def print_table(results: list[PairResult]) -> None:
    print(f"{'software':<44} {'model':<8} {'board':<14} {'MHz':>4} {'published':>10} {'estimate':>10} {'error':>7} "
          f"{'CPI':>5} {'pub. CPI':>8} {'naive':>10} {'error':>7}")
    print(f"{'':<44} {'':<8} {'':<14} {'':>4} {'ms':>10} {'ms':>10} {'':>7} {'':>5} {'':>8} {'ms':>10} {'':>7}")
    for r in results:
        head = f"{r.software[:44]:<44} {r.model:<8} {r.board:<14} {r.clock_hz / 1e6:>4.0f} {r.published_ms:>10,.1f}"
        if r.skipped:
            print(f"{head}  not run: {r.skipped}")
            continue
        print(f"{head} {r.estimated_ms:>10,.1f} {_pct(r.error):>7} {r.cpi:>5.2f} {r.published_cpi:>8.2f} "
              f"{r.naive_ms:>10,.1f} {_pct(r.naive_error):>7}")
    print("estimate = estimated cycles at the published clock; naive = one cycle per instruction at that clock; "
          "pub. CPI = published cycles per instruction we count")


def print_summary(results: list[PairResult], summary) -> None:
    skipped = [r for r in results if r.skipped]
    print(f"pairs run: {summary.pairs} ({summary.cortex_m7_pairs} on a Cortex-M7), skipped: {len(skipped)}")
    if summary.median_error is not None:
        print(f"median |error|: model {summary.median_error:.1%}, naive {summary.median_naive_error:.1%} "
              f"(targets: at most {TARGET_MEDIAN_ERROR:.0%}, and at most half the naive one)")
    for board, (n, rho) in summary.rankings.items():
        naive = summary.naive_rankings[board][1]
        print(f"ranking on {board} ({n} pairs): Spearman {rho:.3f} (naive {naive:.3f}; target {TARGET_SPEARMAN})")
    if not summary.rankings:
        print(f"no board has {RANKED_BOARD_PAIRS} pairs run: no ranking")
    print("targets " + ("met" if summary.meets_targets else "NOT met") +
          " (at least 8 pairs, 3 on a Cortex-M7; see docs/ARCHITECTURE.md, Units)")


def list_models(args: argparse.Namespace) -> int:
    systems = memory_systems()
    cores = sorted({m.core for m in systems})
    if args.json:
        print(json.dumps({"cores": {c: {"error_bar": load_core(c).error_bar, "issue_width": load_core(c).issue_width}
                                    for c in cores},
                          "memory_systems": [{"name": m.name, "board": m.board, "core": m.core, "clock_hz": m.clock_hz,
                                              "emulated_by": list(m.emulated_by)} for m in systems]}, indent=2))
        return 0
    for c in cores:
        core = load_core(c)
        print(f"{c}: issue width {core.issue_width}, error {core.error_bar}")
    for m in systems:
        twins = ", ".join(m.emulated_by) or "validation only"
        print(f"  {m.name:<24} {m.core:<10} {m.clock_hz / 1e6:>5g} MHz  estimates for: {twins}")
    return 0


def profiling_cost(args: argparse.Namespace) -> int:
    """The wall time of `tinylab run` with and without the profiler, on the same cached firmware,
    each measured in this run after one run that fills the cache."""
    import time

    from hil.experiments.modelrun import run_model
    from hil.experiments.models import default_input, resolve_model

    board = load_board(args.board)
    source = resolve_model(args.model)
    value = default_input(source.graph)
    run_model(board, source, value)  # builds the firmware into the cache
    times = {}
    for label, model in (("plain", None), ("profiled", "auto")):
        start = time.perf_counter()
        result = run_model(board, source, value, cycle_model=model)
        times[label] = time.perf_counter() - start
    ratio = times["profiled"] / times["plain"]
    if args.json:
        print(json.dumps({"model": source.name, "board": board.name, "instructions": result.latency,
                          "plain_s": times["plain"], "profiled_s": times["profiled"], "ratio": ratio}, indent=2))
    else:
        print(f"{source.name} on {board.name}: {result.latency:,.0f} instructions; run {times['plain']:.1f} s, "
              f"profiled run {times['profiled']:.1f} s: {ratio:.2f}x (target: at most 3x)")
    return 0 if ratio <= 3.0 else 1
