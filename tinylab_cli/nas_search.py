"""`tinylab nas search`: evolution over the subnets of a trained supernet (`nas/evolution.py`),
every candidate checked against the board's SRAM and flash budgets (planner plus measured
overhead) and, with --latency, a latency budget from the board's lookup table (built, or
completed, for the keys of the (W, R) on demand); random search with as many evaluations beside
it as the control. Fitness is validation accuracy after batch-norm recalibration."""
from __future__ import annotations

import argparse
import json
import time

from hil.errors import LabError
from hil.progress import ProgressBar, progress_printer
from tinylab_cli.nas_run import generation_bar, latency_argument

DEFAULT_POPULATION = 100  # nas.evolution.EvolutionConfig's defaults; tests/test_nas_evolution.py keeps them equal
DEFAULT_GENERATIONS = 20
DEFAULT_VAL_IMAGES = 2000


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("search", "evolution over the subnets of the supernet 'nas train' wrote")
    group.add_argument("--checkpoint", metavar="PATH",
                       help="the supernet checkpoint (default: the one of --space, --width, --resolution, --dataset, "
                            "--seed and the training flags, in the cache)")
    group.add_argument("--latency", type=latency_argument, metavar="N|median",
                       help="latency budget in the latency table's unit (--unit: the board's own, instructions under QEMU "
                            "and cycles on hardware, or estimated_cycles), or, "
                            "for 'nas run', median: the median predicted latency of the fitting networks of the "
                            "chosen (W, R) (default: none)")
    group.add_argument("--population", type=int, default=DEFAULT_POPULATION,
                       help=f"architectures per generation (default: {DEFAULT_POPULATION})")
    group.add_argument("--generations", type=int, default=DEFAULT_GENERATIONS,
                       help=f"generations after the first population (default: {DEFAULT_GENERATIONS})")
    group.add_argument("--val-images", type=int, default=DEFAULT_VAL_IMAGES, metavar="N",
                       help=f"validation images each subnet is scored on (default: {DEFAULT_VAL_IMAGES}; 0: all)")


def run_search(args: argparse.Namespace) -> int:
    from nas.constraints import Constraints
    from nas.evolution import EvolutionConfig, evolve, random_search
    from nas.fitness import SupernetFitness, validation_subset
    from nas.overhead import board_overhead
    from nas.space import load_space
    from nas.space_opt import Budget
    from hil.targets.boards import load_board
    from tinylab_cli.nas import check_budget

    say = progress_printer(args.json)
    if args.latency == "median":
        raise LabError("--latency median is for 'nas run'; 'nas search' takes a number in the table's unit")
    board = load_board(args.board)
    check_budget(Budget(args.sram, args.flash), board)
    config = EvolutionConfig(population=args.population, generations=args.generations, seed=args.seed)
    if args.val_images < 0:
        raise LabError(f"--val-images must be 0 (all) or more, not {args.val_images}")
    net, data, train_config, path = supernet_of(args, say, "search")
    space = load_space(train_config.space)
    width, resolution = train_config.width, train_config.resolution
    say(f"supernet {path}: {space.name} at W={width:g}, R={resolution}, {train_config.epochs} epochs on "
        f"{data.name}")
    started = time.monotonic()
    patches = args.patches == "auto"
    overhead, measured = board_overhead(board, space, progress=lambda line: say(f"  {line}"), patches=patches)
    say(f"{board.name} overhead ({'measured now' if measured else 'from the cache'}): SRAM {overhead.sram_bytes:,} B "
        f"beyond the arena; code and harness {overhead.code_base_bytes:,} B + {overhead.code_per_op_bytes:,.0f} B "
        f"per layer")
    table, table_path, table_measured = latency_table(board, space.at(width, resolution), args, say)
    setup_seconds = time.monotonic() - started
    say(f"latency table {table_path} ({table_measured} entries measured now), in {table.describe_unit()}")
    constraints = Constraints(space, width, resolution, overhead, args.sram, args.flash, args.latency, table,
                              patches=patches)
    data = validation_subset(data, args.val_images or None, args.seed)
    fitness = SupernetFitness(net, data, train_config)
    say(f"searching under {constraints.describe()}: population {config.population}, {config.generations} "
        f"generations, fitness on {len(data.validation):,} validation images")

    evolution = evolve(constraints, fitness, config, generation_bar("evolution", config.generations + 1))
    evaluation_seconds = fitness.seconds
    control = random_search(constraints, fitness, evolution.evaluations, config,
                            generation_bar("random search", -(-evolution.evaluations // config.population)))
    evaluations = fitness.calls
    report = {
        "board": board.name, "space": space.name, "width": width, "resolution": resolution, "checkpoint": str(path),
        "dataset": data.name, "validation_images": len(data.validation), "seed": args.seed,
        "population": config.population, "generations": config.generations,
        "budget": {"sram_bytes": args.sram, "flash_bytes": args.flash, "latency": args.latency,
                   "latency_unit": table.unit,
                   "cycle_model": table.cycle_model.name if table.cycle_model else None}, "patches": args.patches,
        "latency_table": {"path": str(table_path), "measured_now": table_measured},
        "evolution": evolution.to_json(), "random": control.to_json(),
        "timing": {"setup_seconds": round(setup_seconds, 2), "evolution_seconds": round(evolution.seconds, 2),
                   "random_seconds": round(control.seconds, 2),
                   "seconds_per_evaluation": round(fitness.seconds / evaluations, 4) if evaluations else None,
                   "seconds_per_generation": round(evolution.seconds / len(evolution.history), 3),
                   "evolution_evaluation_seconds": round(evaluation_seconds, 2)},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for result in (evolution, control):
        f = result.figures
        print(f"{result.method:<9} best {result.fitness:6.1%} after {result.evaluations} evaluations "
              f"({sum(result.rejected.values())} rejected: " + ", ".join(f"{k} {v}" for k, v in result.rejected.items())
              + f"): {result.best}")
        print(f"{'':<9} predicted peak SRAM {f.peak_sram_bytes:,} B, flash {f.flash_bytes:,} B, latency "
              f"{f.latency:,.0f} {f.latency_unit}, {f.macs / 1e6:.2f} MMACs"
              + (f", with patches {f.patches}" if f.patches else ""))
    t = report["timing"]
    print(f"set-up {t['setup_seconds']:.1f} s (overhead, latency table); evolution {t['evolution_seconds']:.1f} s "
          f"({t['seconds_per_generation']:.2f} s per generation), random search {t['random_seconds']:.1f} s; "
          f"{t['seconds_per_evaluation']:.3f} s per evaluation on {len(data.validation):,} images")
    return 0


def supernet_of(args: argparse.Namespace, say, action: str):
    """The trained supernet that `args` name: --checkpoint, or the training flags (--width and
    --resolution together, or neither: the (W, R) that 'nas space' chooses for the budgets)."""
    from nas.fitness import load_supernet
    from nas.train import TrainConfig

    if args.checkpoint is None:
        if (args.width is None) != (args.resolution is None):
            raise LabError(f"nas {action} takes the supernet's --width and --resolution together, or neither (then the "
                           "(W, R) that 'nas space' chooses for --board, --sram and --flash, as 'nas train'), or "
                           "--checkpoint PATH")
        if args.width is None:
            from tinylab_cli.nas import space_grid

            grid = space_grid(args, say)
            if grid.chosen is None:
                raise LabError(f"no --width and --resolution given, and 'nas space' chose none: {grid.refusal}")
            args.width, args.resolution = grid.chosen.width, grid.chosen.resolution
        train_config = TrainConfig(width=args.width, resolution=args.resolution, space=args.space, dataset=args.dataset,
                                   epochs=args.epochs, batch_size=args.batch_size, subnets=args.subnets,
                                   seed=args.seed, optimizer=args.optimizer, lr=args.lr,
                                   label_smoothing=args.label_smoothing, distill=args.distill,
                                   train_images=args.train_images)
        net, data, train_config, path = load_supernet(train_config)
    else:
        net, data, train_config, path = load_supernet(path=args.checkpoint)
    return net, data, train_config, path


def latency_table(board, space, args: argparse.Namespace, say):
    """The board's latency table, completed with the keys of `space` that it lacks (on QEMU or the
    board), and with `--patches auto`, with the cost of a patch op measured on networks of `space`."""
    from hil.store.results import open_store
    from nas.lut import open_table
    from nas.lutkey import current_key
    from nas.lutunit import requested_model
    from nas.measure import build_table, missing_keys
    from tinylab_cli.lut import measure_patches, measuring_jobs

    model = requested_model(board, getattr(args, "unit", None), getattr(args, "cycle_model", None))
    table, path = open_table(None, current_key(board), model)
    missing = missing_keys(space, table)
    patch_cost = getattr(args, "patches", "off") == "auto" and space.name not in table.patch_cost
    if not missing and not patch_cost:
        return table, path, 0
    jobs = measuring_jobs(args.jobs, board)
    measured = 0
    with open_store(getattr(args, "store", None)) as store:
        if missing:
            say(f"measuring {len(missing)} latency table entries on {board.name} ({jobs} at once)")
            measured += len(build_table(board, space, table, path, store=store, jobs=jobs,
                                        progress=ProgressBar(len(missing), "lut build").advance).measured)
        if patch_cost:
            measure_patches(board, space, table, path, store, jobs, say)
            measured += 1
    return table, path, measured
