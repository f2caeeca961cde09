"""`tinylab nas deploy`: one subnet of the trained supernet (--arch, or the best of a 'nas search
--json' output, --search-json) extracted, batch-norm recalibrated, optionally fine-tuned,
quantised to int8, compiled, built and measured on the board (`nas/deploy.py`): measured peak
SRAM, flash and latency against the search's predictions and the budget, bit-exactness with TFLite
Micro, float and int8 test accuracy. The measured figures go to the results store."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from hil.errors import LabError
from hil.progress import progress_printer
from hil.store.option import add_store_argument

DEFAULT_TARGET_IMAGES = 50


def add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deploy", "one subnet compiled, built and measured on the board")
    group.add_argument("--arch", metavar="ARCH", help='the subnet, e.g. "k3e4-k5e6 | k3e3" (one stage per |)')
    group.add_argument("--search-json", type=Path, metavar="FILE",
                       help="a 'nas search --json' output: deploy its evolution's best architecture")
    group.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                       help="epochs of fine-tuning of the extracted subnet (default: 0)")
    group.add_argument("--target-images", type=int, default=DEFAULT_TARGET_IMAGES, metavar="N",
                       help=f"test images also run on the target, to equal the host's outputs "
                            f"(default: {DEFAULT_TARGET_IMAGES})")
    group.add_argument("--test-images", type=int, default=0, metavar="N",
                       help="test images the accuracies are measured on (default: 0, all)")
    group.add_argument("--no-store", action="store_true", help="do not write the figures to the results store")
    add_store_argument(group)


def chosen_arch(args: argparse.Namespace):
    from nas.arch import Arch

    if (args.arch is None) == (args.search_json is None):
        raise LabError("nas deploy takes the subnet as --arch ARCH or --search-json FILE (a 'nas search --json' "
                       "output), one of them")
    if args.arch is not None:
        return Arch.parse(args.arch)
    try:
        report = json.loads(args.search_json.read_text())
        return Arch.parse(report["evolution"]["architecture"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise LabError(f"--search-json {args.search_json}: not a 'nas search --json' output ({error})") from None


def run_deploy(args: argparse.Namespace) -> int:
    from hil.store.results import open_store
    from hil.experiments.modelrun import engine_provenance
    from hil.targets.boards import load_board
    from nas.constraints import Constraints
    from nas.deploy import deploy
    from nas.overhead import board_overhead
    from nas.records import deployment_rows
    from nas.space import load_space
    from nas.space_opt import Budget
    from tinylab_cli.nas import check_budget
    from tinylab_cli.nas_search import latency_table, supernet_of

    say = progress_printer(args.json)
    if args.finetune_epochs < 0 or args.target_images < 0 or args.test_images < 0:
        raise LabError("--finetune-epochs, --target-images and --test-images must be 0 or more")
    arch = chosen_arch(args)
    board = load_board(args.board)
    check_budget(Budget(args.sram, args.flash), board)
    net, data, train_config, path = supernet_of(args, say, "deploy")
    space = load_space(train_config.space)
    arch.check(space.stages)  # an ArchError names what does not fit
    width, resolution = train_config.width, train_config.resolution
    say(f"supernet {path}: {space.name} at W={width:g}, R={resolution} on {data.name}; deploying {arch}")
    patches = args.patches == "auto"
    overhead, _ = board_overhead(board, space, progress=lambda line: say(f"  {line}"), patches=patches)
    table, _, _ = latency_table(board, space.at(width, resolution), args, say)
    constraints = Constraints(space, width, resolution, overhead, args.sram, args.flash, None, table, patches=patches)
    result = deploy(net, arch, data, train_config, board, constraints, finetune_epochs=args.finetune_epochs,
                    target_images=args.target_images, test_images=args.test_images or None, progress=say)
    budget = {"sram_bytes": args.sram, "flash_bytes": args.flash}
    report = {"board": board.name, "checkpoint": str(path), **result.to_json(budget)}
    if not args.no_store:
        with open_store(args.store) as store:
            provenance = engine_provenance(board, result.run.backend)
            store.add(deployment_rows(provenance, result, "deployed", {"checkpoint": str(path), "width": width,
                                                                       "resolution": resolution,
                                                                       "dataset": data.name, "budget": budget}))
            report["store"] = str(store.path)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    p, m = report["predicted"], report["measured"]
    ratio = report["latency_ratio"]
    print(f"{arch} on {board.name}:")
    print(f"  peak SRAM {m['peak_sram_bytes']:,} B measured, {p['peak_sram_bytes']:,} B predicted "
          f"(budget {args.sram:,} B)" + (f"; patches {m['patches']}" if m["patches"] != "off" else ""))
    print(f"  flash     {m['flash_bytes']:,} B measured, {p['flash_bytes']:,} B predicted (budget {args.flash:,} B)")
    print(f"  latency   {m['latency']:,.0f} {m['latency_unit']} measured, {p['latency']:,.0f} predicted "
          f"({(ratio - 1) * 100:+.2f}%)")
    print(f"  matches TFLite Micro: {'yes' if report['matches_reference'] else 'NO'}; "
          f"{report['target_images']} test images on the target equal the host's: "
          f"{'yes' if report['target_matches_host'] else 'NO'}")
    print(f"  test accuracy: float {report['float_accuracy']:.2%}, int8 {report['int8_accuracy']:.2%} "
          f"({report['test_images']:,} images)")
    return 0
