"""`tinylab lut`: build a per-layer latency lookup table for a search space on a board, and
validate it against whole networks of the space. It needs the search (`nas`), so it lives here,
above the lab, and imports `nas` only when it runs."""
from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import asdict

from hil.destinations import add_output_argument
from hil.errors import LabError
from hil.progress import ProgressBar, progress_printer
from hil.store.option import add_store_argument
from hil.store.results import open_store
from hil.targets.boards import load_board
from hil.targets.boardspec import BoardSpec

SUMMARY = "build a per-layer latency lookup table on a board, or validate it against whole networks"
EXAMPLES = """\
  tinylab lut build --board qemu-f746 --space tiny        # measure the keys missing from the table
  tinylab lut build --board qemu-f412 --space fashion-mnist --patches   # and the cost of a patch op
  tinylab lut validate --board qemu-f746 --space tiny --samples 50
  tinylab lut build --board qemu-f746 --space tiny --unit estimated_cycles   # cycles the M7 model estimates
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nas.lutunit import add_unit_arguments

    parser.add_argument("action", choices=("build", "validate"), help="build the table, or validate it")
    parser.add_argument("--board", default="qemu-f746", help="board name or file (default: qemu-f746)")
    parser.add_argument("--space", default="tiny", help="search space: a name or a JSON/YAML space file (default: tiny)")
    add_output_argument(parser, "--table", type=str, help="table file (default: the cache's for what determines a "
                        "latency: board, kernels, compiler, flags, and for estimated cycles the cycle model)")
    parser.add_argument("--samples", type=int, default=50, help="validate: random networks to measure (default: 50)")
    parser.add_argument("--seed", type=int, default=0, help="validate: seed of the random networks")
    parser.add_argument("--patches", nargs="?", type=int, const=0, default=None, metavar="SIDE",
                        help="build: also measure what patches cost beyond the MACs they compute again, a base and "
                             "per patch op (the search's --patches auto predicts a patched network's latency with "
                             "it), on networks of the space "
                             "at its largest width and resolution, whole and with their first stage on patches; "
                             "validate: measure each network with its first stage on SIDE x SIDE patches (default 3) "
                             "against the table's prediction with patches")
    parser.add_argument("--jobs", "-j", type=int, default=None,
                        help="QEMU instances measuring at once (default: one per core); 1 on a physical board")
    add_unit_arguments(parser)
    add_store_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nas.layers import space_layers
    from nas.lut import open_table
    from nas.lutkey import current_key
    from nas.lutunit import requested_model
    from nas.measure import build_table, missing_keys, validate_table
    from nas.space import load_space

    board = load_board(args.board)
    space = load_space(args.space)
    jobs = measuring_jobs(args.jobs, board)
    table, path = open_table(args.table, current_key(board), requested_model(board, args.unit, args.cycle_model))
    say = progress_printer(args.json)
    with open_store(args.store) as store:
        if args.action == "build":
            missing = missing_keys(space, table)
            say(f"{len(missing)} of {len(space_layers(space)) + 1} entries to measure on {board.name} "
                f"({jobs} at once); table {path}")
            report = build_table(board, space, table, path, store=store, jobs=jobs,
                                 progress=ProgressBar(len(missing), "lut build").advance)
            costs = measure_patches(board, space, table, path, store, jobs, say) if args.patches is not None else []
            summary = {"table": str(path), "board": board.name, "key": table.key.to_json(),
                       "space": space.name, "keys": report.total_keys, "measured": report.measured,
                       "unit": table.unit, "cycle_model": table.cycle_model.name if table.cycle_model else None,
                       "store": str(store.path), "patch_cost": table.patch_cost.get(space.name),
                       "patch_cost_pairs": [asdict(c) for c in costs]}
            if args.json:
                print(json.dumps(summary, indent=2))
            else:
                print(f"{len(report.measured)} of {report.total_keys} entries measured (overhead included); "
                      f"table {path} ({table.describe_unit()})")
            return 0
        missing = missing_keys(space, table)
        if missing:
            raise LabError(f"the latency table {path} lacks {len(missing)} of the {len(space_layers(space)) + 1} "
                           f"entries of space {space.name} on {board.name}: run "
                           f"'{build_command(args)}' first (it measures only what is missing)")
        if args.samples < 3:
            raise LabError("--samples must be at least 3 (the MACs-linear baseline is fitted to all networks but "
                           "the one it predicts, and a line needs two)")
        patches = None
        if args.patches is not None:
            from nas.overhead import board_overhead

            side = args.patches or 3
            if side < 2:
                raise LabError(f"--patches {side}: a grid of at least 2 x 2 patches")
            if space.name not in table.patch_cost:
                raise LabError(f"the table {path} has no patch cost for {space.name}: run '{build_command(args)} "
                               f"--patches' first")
            overhead, _ = board_overhead(board, space, patches=True)
            patches = (side, overhead.patch_code_bytes)
        how = f", each with its first stage on {patches[0]}x{patches[0]} patches" if patches else ""
        say(f"measuring {args.samples} random networks of {space.name} on {board.name}{how} ({jobs} at once)")
        result = validate_table(board, space, table, args.samples, seed=args.seed, store=store, jobs=jobs,
                                progress=ProgressBar(args.samples, "lut validate").advance,
                                patches=patches)
        stored = str(store.path)
    if args.json:
        print(json.dumps({"board": board.name, "space": space.name, "patches": args.patches, "unit": result.unit,
                          "cycle_model": table.cycle_model.name if table.cycle_model else None,
                          "lut": result.lut,
                          "macs_linear": result.macs_linear, "macs_fit": result.fit, "flash": result.flash,
                          "samples": result.samples, "store": stored}, indent=2))
        return 0
    print(f"{'predictor':<12} {'RMSE':>12} {'MAPE %':>8} {'±5% %':>7} {'±10% %':>7} {'Spearman':>9}")
    for label, f in (("LUT", result.lut), ("MACs-linear", result.macs_linear)):
        print(f"{label:<12} {f['rmse']:>12,.0f} {f['mape']:>8.2f} {f['within_5pct']:>7.1f} "
              f"{f['within_10pct']:>7.1f} {f['spearman']:>9.3f}")
    print(f"RMSE in {table.describe_unit()}; MACs-linear: latency = a·MACs + b, each network predicted by the least-squares "
          f"fit to the other {len(result.samples) - 1} (fit to all: a = {result.fit[0]:.4g}, b = {result.fit[1]:,.0f}); "
          f"figures stored in {stored}")
    f = result.flash
    print(f"flash (the table's code sizes + constants, against the image less int16 weight copies): MAPE "
          f"{f['mape']:.2f} %, {f['within_5pct']:.0f} % of the networks within ±5 %")
    return 0


def build_command(args: argparse.Namespace) -> str:
    """The `tinylab lut build` command that fills the table `args` name, for their board and space."""
    table = f" --table {shlex.quote(str(args.table))}" if args.table else ""
    unit = f" --unit {args.unit}" if getattr(args, "unit", None) else ""
    model = f" --cycle-model {args.cycle_model}" if getattr(args, "cycle_model", None) else ""
    return f"tinylab lut build --board {shlex.quote(args.board)} --space {shlex.quote(args.space)}{table}{unit}{model}"


def measure_patches(board: BoardSpec, space, table, path, store, jobs: int, say) -> list:
    """Measure the table's patch cost (nas.measure.measure_patch_cost), saying each pair's figure."""
    from nas.measure import PATCH_COST_GRIDS, PATCH_COST_NETWORKS, measure_patch_cost

    say(f"measuring what patches cost on {board.name}: {PATCH_COST_NETWORKS} networks of {space.name}, whole and "
        f"on {', '.join(f'{g}x{g}' for g in PATCH_COST_GRIDS)} patches of their first stage ({jobs} at once)")
    costs = measure_patch_cost(board, space, table, path, store=store, jobs=jobs)
    for c in costs:
        say(f"  {c.network} at {c.grid}: {c.patched:,.0f} against {c.whole:,.0f} whole, halo {c.halo:,.0f} (the "
            f"table's layers), {c.patch_ops} patch ops: {c.own:,.0f} {table.unit} beyond the halo")
    base, per_op = table.patch_cost[space.name]
    say(f"patches on {space.name} cost {base:,.0f} + {per_op:,.0f} {table.unit} per patch op beyond their halo "
        "(least squares)")
    return costs


def measuring_jobs(requested: int | None, board: BoardSpec) -> int:
    """How many networks to measure at once: one per core under QEMU, one on a physical board."""
    from nas.measure import default_jobs

    emulated = board.emulated
    if requested is None:
        return default_jobs() if emulated else 1
    if requested < 1:
        raise LabError(f"--jobs must be at least 1, not {requested}")
    if requested > 1 and not emulated:
        raise LabError(f"{board.name} is a physical board: one probe measures one network at a time, use --jobs 1")
    return requested
