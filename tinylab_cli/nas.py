"""`tinylab nas run`: the whole search with its baselines (`tinylab_cli/nas_run.py`);
`tinylab nas space`: search-space optimisation (MCUNet §3.1) on a board under SRAM and flash
budgets; `tinylab nas train`: training the supernet of the chosen (W, R) (`tinylab_cli/nas_train.py`);
`tinylab nas search`: evolution over its subnets (`tinylab_cli/nas_search.py`); `tinylab nas
deploy`: one subnet measured on the board (`tinylab_cli/nas_deploy.py`); `tinylab nas codesign`:
the co-design table, `nas run` over SRAM budgets and seeds (`tinylab_cli/nas_codesign.py`).
They need the search (`nas`), so they live here, above the lab, and import `nas` only when they
run."""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

from engine.cache import cache_root
from hil.destinations import add_output_argument
from hil.errors import LabError
from hil.progress import ProgressBar, progress_printer
from hil.resources import results_dir
from hil.sizes import byte_count
from hil.targets.boards import load_board

SUMMARY = ("the search: all of it with its baselines, measured on the board (run); choose the width and resolution whose networks fit the budget best (space), "
           "train their supernet (train), search its subnets under the budgets (search), "
           "deploy one on the board (deploy); the co-design table over SRAM budgets and seeds (codesign)")
EXAMPLES = """\
  tinylab nas run --board qemu-f412 --sram 64K --flash 512K --budget quick --json
  tinylab nas run --board qemu-f412 --sram 64K --flash 512K --latency median --budget full --seed 1
  tinylab nas codesign --board qemu-f412 --flash 512K --srams 64K,32K --seeds 0,1,2 --budget full
  tinylab nas codesign --runs results/codesign-qemu-f412-full --table-only
  tinylab nas space --board qemu-f412 --sram 64K --flash 512K
  tinylab nas space --board my-board --space my-space.yaml --sram 48K --flash 1M --samples 300 --json
  tinylab nas train --width 0.7 --resolution 28 --epochs 5
  tinylab nas train --width 0.5 --resolution 16 --dataset digits --epochs 2 --json
  tinylab nas train --board qemu-f412 --sram 64K --flash 512K --dataset digits
  tinylab nas search --width 0.7 --resolution 28 --epochs 5 --board qemu-f412 --sram 64K --flash 512K --latency 2000000
  tinylab nas search --checkpoint run.pt --population 20 --generations 5 --val-images 500 --json
  tinylab nas deploy --checkpoint run.pt --arch "k3e4-k5e6 | k3e3" --board qemu-f412 --sram 64K --json
  tinylab nas deploy --checkpoint run.pt --search-json search.json --finetune-epochs 1
"""
DEFAULT_BOARD = "qemu-f412"
DEFAULT_SAMPLES = 1000
# nas.space.DEFAULT_SPACE and nas.space_opt.DEFAULT_MIN_FIT, named here so that building the parser
# does not import the search (and torch) for every command; tests/test_nas_space.py keeps them equal.
DEFAULT_SPACE = "fashion-mnist"
DEFAULT_MIN_FIT = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nas.lutunit import add_unit_arguments
    from tinylab_cli.nas_codesign import add_codesign_arguments
    from tinylab_cli.nas_deploy import add_deploy_arguments
    from tinylab_cli.nas_run import add_run_arguments
    from tinylab_cli.nas_search import add_search_arguments
    from tinylab_cli.nas_train import add_train_arguments

    parser.add_argument("action", choices=("run", "space", "train", "search", "deploy", "codesign"),
                        help="run: all of the steps below in one, with the baselines (--budget quick|full); "
                             "space: choose (W, R) of the space for the budget; train: train the supernet of one "
                             "(W, R); search: evolution over its subnets under the budgets; deploy: one subnet "
                             "quantised, compiled and measured on the board; codesign: "
                             "the co-design table, run over --srams and --seeds (MCUNet's Table 2)")
    parser.add_argument("--board", default=DEFAULT_BOARD, help=f"board name or file (default: {DEFAULT_BOARD})")
    parser.add_argument("--sram", type=byte_count, default=byte_count("64K"), metavar="BYTES",
                        help="peak SRAM budget of the model: arena, its statics and stack (default: 64K)")
    parser.add_argument("--flash", type=byte_count, default=byte_count("512K"), metavar="BYTES",
                        help="flash budget of the whole image (default: 512K)")
    parser.add_argument("--space", default=DEFAULT_SPACE,
                        help=f"search space: a name or a JSON/YAML space file (default: {DEFAULT_SPACE})")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                        help=f"networks sampled per (W, R) (default: {DEFAULT_SAMPLES}, as MCUNet)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the sampled networks, or of the training run (default: 0)")
    parser.add_argument("--min-fit", type=float, default=DEFAULT_MIN_FIT, metavar="SHARE",
                        help=f"least share of fitting networks for a (W, R) to be chosen (default: {DEFAULT_MIN_FIT})")
    add_output_argument(parser, "--figure", help="where to write the CDF figure (default: the results folder's "
                        "nas-space-BOARD-SPACE.png)")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="processes sampling at once (default: one per core)")
    parser.add_argument("--remeasure", action="store_true", help="measure the board's overhead again, not from the cache")
    parser.add_argument("--patches", choices=("off", "auto"), default="off",
                        help="auto: a network whose whole-tensor arena is over the SRAM budget may run its first ops "
                             "patch by patch (MCUNetV2), when a plan fits with at most 15%% more compute (estimated); "
                             "its peak, latency and flash are those of the plan, and it is deployed with it "
                             "(default: off)")
    add_unit_arguments(parser)
    add_train_arguments(parser)
    add_search_arguments(parser)
    add_deploy_arguments(parser)
    add_run_arguments(parser)
    add_codesign_arguments(parser)


# The options each action reads, so that one given to an action that would ignore it is refused
# instead. The parser is shared: `tinylab nas --help` lists them all.
_EVERY_ACTION = {"action", "board", "destinations"}  # destinations: the output paths main checks
_CHOOSES_SPACE = {"sram", "flash", "space", "samples", "seed", "min_fit", "jobs", "remeasure", "patches"}
_NAMES_SUPERNET = _CHOOSES_SPACE | {"width", "resolution", "dataset", "train_images", "epochs", "batch_size",
                                    "subnets", "optimizer", "lr", "label_smoothing", "distill"}
_RUN = (_CHOOSES_SPACE - {"samples"}) | {"unit", "cycle_model", "dataset", "latency", "budget", "finetune_epochs",
                                         "store"}  # the budget sets the samples
ACTION_OPTIONS: dict[str, set[str]] = {
    "space": _CHOOSES_SPACE | {"figure"},
    "train": _NAMES_SUPERNET | {"random_subnets"},
    "search": _NAMES_SUPERNET | {"checkpoint", "latency", "population", "generations", "val_images", "unit",
                                 "cycle_model", "store"},
    "deploy": _NAMES_SUPERNET | {"checkpoint", "arch", "search_json", "finetune_epochs", "target_images",
                                 "test_images", "no_store", "store", "unit", "cycle_model"},
    "run": _RUN,
    "codesign": (_RUN - {"sram", "seed"}) | {"srams", "seeds", "runs", "table_only"},
}
_SET_BY_BUDGET = {"samples", "train_images", "epochs", "batch_size", "subnets", "population", "generations",
                  "val_images", "target_images", "test_images"}


def refuse_options_not_taken(args: argparse.Namespace) -> None:
    """A LabError naming the options given (other than their defaults) that `args.action` does not read."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    defaults = vars(parser.parse_args([args.action]))
    given = sorted(dest for dest, default in defaults.items()
                   if dest not in _EVERY_ACTION | ACTION_OPTIONS[args.action] and getattr(args, dest) != default)
    if not given:
        return
    def flags(dests) -> str:
        return ", ".join("--" + dest.replace("_", "-") for dest in dests)

    why = ("; --budget quick|full sets the data, training and search sizes"
           if args.action in ("run", "codesign") and _SET_BY_BUDGET & set(given) else "")
    raise LabError(f"nas {args.action} does not take {flags(given)}{why} (its options: "
                   f"{flags(sorted(ACTION_OPTIONS[args.action] | {'board'}))})")


def run(args: argparse.Namespace) -> int:
    refuse_options_not_taken(args)
    if args.action == "run":
        from tinylab_cli.nas_run import run_nas

        return run_nas(args)
    if args.action == "train":
        from tinylab_cli.nas_train import run_train

        return run_train(args)
    if args.action == "search":
        from tinylab_cli.nas_search import run_search

        return run_search(args)
    if args.action == "deploy":
        from tinylab_cli.nas_deploy import run_deploy

        return run_deploy(args)
    if args.action == "codesign":
        from tinylab_cli.nas_codesign import run_codesign

        return run_codesign(args)
    return run_space(args)


@dataclass
class GridRun:
    """What `nas space` found: the grid's points, the chosen (W, R) or why none was."""

    board: object
    space: object
    budget: object
    overhead: object
    measured: bool
    points: list
    chosen: object | None
    refusal: str | None
    seconds: float
    jobs: int
    cached: int  # grid points whose sample was read from the cache, not computed now


def space_grid(args: argparse.Namespace, say) -> GridRun:
    """Measure the board's overhead (or take it from the cache), sample the grid, choose (W, R)."""
    from nas.measure import default_jobs
    from nas.overhead import board_overhead
    from nas.space import SpaceError, load_space
    from nas.space_opt import Budget, choose, sample_grid, summarise

    board = load_board(args.board)
    space = load_space(args.space)
    budget = Budget(args.sram, args.flash)
    check_budget(budget, board)
    if args.samples < 1:
        raise LabError(f"--samples must be at least 1, not {args.samples}")
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise LabError(f"--jobs must be at least 1, not {jobs}")

    patches = args.patches == "auto"
    overhead, measured = board_overhead(board, space, progress=lambda line: say(f"  {line}"), refresh=args.remeasure,
                                        patches=patches)
    say(f"{board.name} overhead ({'measured now' if measured else 'measured before, from the cache'}, key "
        f"{overhead.key}): SRAM {overhead.sram_bytes:,} B beyond the arena (stack {overhead.stack_bytes:,} B); "
        f"code and harness {overhead.code_base_bytes:,} B + {overhead.code_per_op_bytes:,.0f} B per layer")
    grid = space.grid
    patch_limit = args.sram - overhead.sram_bytes if patches else None
    if patches:
        say(f"patches allowed: a network whose arena is over {patch_limit:,} B may fit with a patch plan (code "
            f"{overhead.patch_code_base_bytes:,} B + {overhead.patch_code_per_op_bytes:,.1f} B per patch op)")
    say(f"sampling {args.samples} networks at each of {len(grid)} (W, R) of {space.name} ({jobs} processes)")
    bar = ProgressBar(len(grid), "nas space")
    started = time.monotonic()
    points, cached = [], 0
    for sample in sample_grid(space, args.samples, args.seed, jobs, patch_limit):
        point = summarise(sample, overhead, budget)
        points.append(point)
        cached += sample.from_cache
        bar.advance(f"W={point.width:g} R={point.resolution}: {point.fit_share:.0%} fit"
                    + (" (sampled before)" if sample.from_cache else ""))
    seconds = time.monotonic() - started
    if cached:
        say(f"{cached} of {len(grid)} (W, R) sampled before with the same seed, samples and code: read from "
            f"{cache_root() / 'nas' / 'samples'}")
    try:
        chosen = choose(points, args.min_fit)
        refusal = None
    except SpaceError as error:
        chosen, refusal = None, str(error)
    return GridRun(board, space, budget, overhead, measured, points, chosen, refusal, seconds, jobs, cached)


def run_space(args: argparse.Namespace) -> int:
    from nas.space_opt import cdf_figure

    say = progress_printer(args.json)
    run = space_grid(args, say)
    board, space, budget, overhead, measured = run.board, run.space, run.budget, run.overhead, run.measured
    points, chosen, refusal, seconds, jobs = run.points, run.chosen, run.refusal, run.seconds, run.jobs
    grid = space.grid
    computed = args.samples * (len(grid) - run.cached)  # networks sampled now; the rest were read
    figure = args.figure or results_dir() / f"nas-space-{board.name}-{space.name}.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    cdf_figure(points, chosen, figure, f"{space.name} on {board.name}: SRAM {budget.sram_bytes:,} B, "
               f"flash {budget.flash_bytes:,} B, {args.samples} networks per (W, R)")
    total = args.samples * len(grid)
    if args.json:
        print(json.dumps({
            "board": board.name, "space": space.name, "samples": args.samples, "seed": args.seed,
            "min_fit": args.min_fit, "patches": args.patches, "budget": {"sram_bytes": budget.sram_bytes, "flash_bytes": budget.flash_bytes},
            "overhead": {k: v for k, v in overhead.to_json().items()}, "overhead_measured_now": measured,
            "grid": [p.to_json() for p in points],
            "choice": None if chosen is None else {"width": chosen.width, "resolution": chosen.resolution,
                                                   "fit_share": round(chosen.fit_share, 4),
                                                   "mean_macs_fitting": round(chosen.mean_macs, 1)},
            "refusal": refusal, "figure": str(figure),
            "timing": {"seconds": round(seconds, 2), "networks": total, "networks_sampled_now": computed,
                       "networks_per_second": round(computed / seconds, 1) if computed else None, "jobs": jobs},
        }, indent=2))
    else:
        print_table(points, chosen, args.patches == "auto")
        rate = f"{computed / seconds:,.0f} per second, {jobs} processes" if computed else "all read from the cache"
        print(f"{total:,} networks ({computed:,} sampled now) in {seconds:.1f} s ({rate}); figure {figure}")
        if chosen is not None:
            print(f"chosen: W={chosen.width:g}, R={chosen.resolution} ({chosen.fit_share:.0%} of its networks fit "
                  f"{budget.sram_bytes:,} B of SRAM and {budget.flash_bytes:,} B of flash, mean "
                  f"{chosen.mean_macs / 1e6:.2f} MMACs; the highest mean of the (W, R) where at least "
                  f"{args.min_fit:.0%} fit)")
    if refusal is not None:
        raise LabError(refusal)
    return 0


def check_budget(budget, board) -> None:
    """A budget larger than the board is refused: nothing measured on it could check it."""
    if budget.sram_bytes > board.sram_bytes:
        raise LabError(f"--sram {budget.sram_bytes:,} B is more than {board.name}'s SRAM ({board.sram_bytes:,} B)")
    if budget.flash_bytes > board.flash_bytes:
        raise LabError(f"--flash {budget.flash_bytes:,} B is more than {board.name}'s flash ({board.flash_bytes:,} B)")


def print_table(points, chosen, patches: bool = False) -> None:
    """The grid: each (W, R)'s share of fitting networks (with patches: and of those, how many need
    them), their mean MACs, and the peak SRAM (with patches: the plan's) and flash of all."""
    from nas.space_opt import PERCENTILES

    heads = " ".join(f"{'SRAM p' + str(p) if p < 100 else 'SRAM max':>10}" for p in PERCENTILES)
    patched_head = f" {'patched':>7}" if patches else ""
    print(f"{'W':>4} {'R':>3} {'fit':>6}{patched_head} {'MMACs fit':>9} {heads} {'flash p50':>10}")
    for p in points:
        mark = "  <- chosen" if chosen is not None and (p.width, p.resolution) == (chosen.width, chosen.resolution) else ""
        sram = " ".join(f"{p.peak_sram[q]:>10,}" for q in PERCENTILES)
        macs = f"{p.mean_macs / 1e6:>9.2f}" if p.fitting else f"{'-':>9}"
        patched = f" {p.patched:>7}" if patches else ""
        print(f"{p.width:>4g} {p.resolution:>3} {p.fit_share:>6.1%}{patched} {macs} {sram} {p.flash[50]:>10,}{mark}")
    if patches:
        print("patched: fitting networks that fit only with a patch plan (SRAM columns: the plan's peak where one is used)")
