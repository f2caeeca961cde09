"""`tinylab nas run`: the whole search in one command, under one work budget (`nas/budgets.py`):

1. the space optimisation chooses (W, R) for the board's SRAM and flash budgets (`nas space`);
2. the board's latency table is completed for that (W, R) (`nas search`'s table, timed apart);
3. the supernet is trained, or resumed from its checkpoint (`nas train`);
4. evolution and, as its control, random search with as many evaluations (`nas search`);
5. the baseline: the uniformly scaled network (k3, e6, full depth) with the most MACs over the
   grid that fits the budgets, trained from scratch for as many epochs (`nas/baseline.py`);
6. evolution's best, random search's best and the baseline deployed and measured on the board
   (`nas deploy`): measured against predicted, TFLM match, float and int8 test accuracy.

Every figure goes to the results store under one run id (`nas/records.py`), where `tinylab
report` shows the search."""
from __future__ import annotations

import argparse
import copy
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator

from hil.errors import LabError
from hil.progress import ProgressBar, progress_printer

DEFAULT_BUDGET = "quick"
BUDGET_CHOICES = ("quick", "full")  # nas.budgets.BUDGETS; tests/test_nas_run.py keeps them equal


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run", "the whole search: space, table, supernet, evolution, baseline, deployment")
    group.add_argument("--budget", choices=BUDGET_CHOICES, default=DEFAULT_BUDGET,
                       help="how much work; it sets the data, training and search sizes, so 'nas run' takes none "
                            "of those flags: quick (about 3 minutes on 2 cores: 2,048 training images, 1 epoch, "
                            "population 6 over 1 generation; checks the path, not the accuracy) or full (the whole "
                            "training split, 10 epochs, population 50 over 20 generations, 2,000 validation images; "
                            f"about 75 minutes) (default: {DEFAULT_BUDGET})")


def latency_argument(text: str) -> float | str:
    """--latency: a number in the latency table's unit, or `median` (nas run: the median predicted latency
    of the fitting networks of the chosen (W, R), a budget that binds)."""
    if text.strip().lower() == "median":
        return "median"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of the latency table's unit, nor 'median'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a latency budget must be positive, not {text}")
    return value


class Steps:
    """Says what each step does (on stderr when stdout carries the JSON) and times it."""

    def __init__(self, as_json: bool) -> None:
        self.say = progress_printer(as_json)
        self.seconds: dict[str, float] = {}
        self.started = time.monotonic()

    @contextmanager
    def step(self, name: str, what: str) -> Iterator[None]:
        self.say(f"== {what}")
        begun = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - begun

    def total(self) -> float:
        return time.monotonic() - self.started


def run_nas(args: argparse.Namespace) -> int:
    report = nas_run_report(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_summary(report)
    return 0


def nas_run_report(args: argparse.Namespace) -> dict:
    """Every step of `nas run`, its progress printed as it goes; the run's record."""
    from hil.store.results import open_store
    from hil.experiments.modelrun import engine_provenance
    from hil.targets.boards import load_board
    from nas.budgets import run_budget
    from nas.constraints import Constraints, Figures, median_latency
    from nas.data import load_dataset
    from nas.deploy import deploy
    from nas.fitness import SupernetFitness, validation_subset
    from nas.overhead import board_overhead
    from nas.records import deployment_rows
    from nas.space import load_space
    from nas.space_opt import Budget
    from nas.train import TrainConfig
    from tinylab_cli.nas import check_budget, space_grid
    from nas.measure import cycle_model_choice
    from tinylab_cli.nas_search import latency_table

    budget = run_budget(args.budget)
    if args.finetune_epochs < 0:
        raise LabError(f"--finetune-epochs must be 0 or more, not {args.finetune_epochs}")
    steps = Steps(args.json)
    say = steps.say
    board = load_board(args.board)
    space = load_space(args.space)
    check_budget(Budget(args.sram, args.flash), board)
    load_dataset(args.dataset)  # a missing data set is refused now, not after the space and the table
    say(f"tinylab nas run, {budget.name} budget, on {board.name}: SRAM {args.sram:,} B, flash {args.flash:,} B, "
        f"latency {args.latency if args.latency is not None else 'no budget'}; {space.name} on {args.dataset}, "
        f"seed {args.seed}")

    with steps.step("space", f"1/6 search space: {budget.samples} networks per (W, R)"):
        grid_args = copy.copy(args)
        grid_args.samples = budget.samples
        grid = space_grid(grid_args, say)
        if grid.chosen is None:
            raise LabError(f"the space optimisation chose no (W, R): {grid.refusal}")
        width, resolution = grid.chosen.width, grid.chosen.resolution
        say(f"chose W={width:g}, R={resolution}: {grid.chosen.fit_share:.0%} of its networks fit, mean "
            f"{grid.chosen.mean_macs / 1e6:.2f} MMACs")
    patches = args.patches == "auto"
    overhead, _ = board_overhead(board, space, patches=patches)
    with steps.step("latency_table", f"2/6 latency table of {board.name} at W={width:g}, R={resolution}"):
        table, table_path, table_measured = latency_table(board, space.at(width, resolution), args, say)
        say(f"{table_path}: {table_measured} entries measured now, in {table.describe_unit()}")
    constraints = Constraints(space, width, resolution, overhead, args.sram, args.flash, None, table, patches=patches)
    latency = args.latency
    if latency == "median":
        latency = median_latency(constraints, budget.samples, args.seed)
        say(f"latency budget: {latency:,.0f} {table.unit}, the median of the fitting sampled networks")
    constraints = replace(constraints, latency=latency)

    config = TrainConfig(width=width, resolution=resolution, space=args.space, dataset=args.dataset,
                         epochs=budget.epochs, batch_size=budget.batch_size, subnets=budget.subnets, seed=args.seed,
                         recalibration_images=budget.recalibration_images, train_images=budget.train_images)
    with steps.step("train", f"3/6 supernet: {config.epochs} epoch(s), largest + {config.subnets} random subnet(s) "
                    "per step"):
        trained = trained_net(config)
        say(f"checkpoint {trained.checkpoint} ({len(trained.data.train):,} training images)")

    provenance = engine_provenance(board, board.backend)  # one run id for every row of the search
    stored = {"rows": 0, "path": None}

    def store(rows) -> None:
        """Rows go to the store as soon as they exist: a later failure loses none of them."""
        with open_store(args.store) as opened:
            opened.add(rows)
            stored["path"] = str(opened.path)
        stored["rows"] += len(rows)

    budget_json = {"sram_bytes": args.sram, "flash_bytes": args.flash, "latency": latency,
                   "latency_unit": table.unit if latency is not None else None, "patches": args.patches}
    context = {"width": width, "resolution": resolution, "dataset": args.dataset, "space": space.name,
               "budget": budget_json, "work_budget": budget.name, "seed": args.seed,
               **({"cycle_model": table.cycle_model.name} if table.cycle_model else {})}
    with steps.step("search", f"4/6 evolution (population {budget.population}, {budget.generations} generations) "
                    "and random search"):
        data = validation_subset(trained.data, budget.val_images, args.seed)
        fitness = SupernetFitness(trained.supernet, data, config)
        evolution, control, predictor = run_searches(constraints, fitness, budget, args.seed, say)
        for result in (evolution, control):
            say(f"{result.method}: best {result.fitness:.1%} on {len(data.validation):,} validation images after "
                f"{result.evaluations} evaluations: {result.best}")
        store(search_rows(provenance, evolution, control, predictor, constraints.figures,
                          {**context, "validation_images": len(data.validation)}))

    with steps.step("baseline", "5/6 baseline: the uniformly scaled network, trained from scratch"):
        baseline, baseline_config, baseline_trained = uniform_baseline_of(board, space, overhead, args, latency,
                                                                          config, say, table)

    deployments = {}
    with steps.step("deploy", "6/6 deployment on the board"):
        plan = [("winner", evolution.best, trained, config, constraints, budget.target_images),
                ("random", control.best, trained, config, constraints, budget.baseline_target_images)]
        uniform_constraints = Constraints(space, baseline.width, baseline.resolution, overhead, args.sram, args.flash)
        plan.append(("uniform", baseline.arch, baseline_trained, baseline_config, uniform_constraints,
                     budget.baseline_target_images))
        for role, arch, run_of, run_config, role_constraints, target_images in plan:
            say(f"deploying the {role} network {arch}")
            deployment = deploy(run_of.supernet, arch, run_of.data, run_config, board, role_constraints,
                                finetune_epochs=args.finetune_epochs if role != "uniform" else 0,
                                target_images=target_images, test_images=budget.test_images,
                                progress=lambda line: say(f"  {line}"), cycle_model=cycle_model_choice(table))
            role_context = context
            if role == "uniform":
                # Its prediction is its measurement with seeded weights when it was chosen (the
                # table covers the search's (W, R) only): the same network, other weights.
                m = baseline.measured
                deployment = replace(deployment, predicted=Figures(m.peak_sram_bytes, m.flash_bytes, baseline.macs,
                                                                   m.latency, m.latency_unit))
                role_context = {**context, "width": baseline.width, "resolution": baseline.resolution}
            deployments[role] = deployment
            store(deployment_rows(provenance, deployment, role, role_context))

    report = {
        "board": board.name, "space": space.name, "dataset": args.dataset, "seed": args.seed,
        "work_budget": budget.to_json(), "budget": budget_json,
        "space_choice": {"width": width, "resolution": resolution, "fit_share": round(grid.chosen.fit_share, 4),
                         "mean_macs_fitting": round(grid.chosen.mean_macs, 1), "samples": budget.samples,
                         "points_sampled_before": grid.cached},
        "latency_table": {"path": str(table_path), "measured_now": table_measured, "unit": table.unit,
                          "cycle_model": table.cycle_model.name if table.cycle_model else None},
        "supernet": {"checkpoint": str(trained.checkpoint), "epochs": config.epochs,
                     "train_images": len(trained.data.train), "resumed_from": trained.resumed_from},
        "search": {"validation_images": len(data.validation), "evolution": evolution.to_json(),
                   "random": control.to_json(), "scored_for_real": fitness.calls, "seconds_per_evaluation":
                       round(fitness.seconds / fitness.calls, 4) if fitness.calls else None,
                   "predictor": None if predictor is None else predictor.to_json()},
        "winner": {**deployments["winner"].to_json(budget_json), "validation_accuracy": evolution.fitness},
        "baselines": [
            {"name": "random search", **deployments["random"].to_json(budget_json),
             "accuracy": deployments["random"].int8_accuracy, "validation_accuracy": control.fitness},
            {"name": "uniform (k3 e6, full depth, trained from scratch)", **deployments["uniform"].to_json(budget_json),
             "accuracy": deployments["uniform"].int8_accuracy, "width": baseline.width,
             "resolution": baseline.resolution, "passed_over": baseline.tried},
        ],
    }
    report["store"] = {"path": stored["path"], "run_id": provenance.run_id, "rows": stored["rows"]}
    total = steps.total()
    report["timing"] = {**{f"{k}_seconds": round(v, 1) for k, v in steps.seconds.items()},
                        "total_seconds": round(total, 1),
                        "total_without_latency_table_seconds": round(total - steps.seconds.get("latency_table", 0), 1)}
    return report


def search_rows(provenance, evolution, control, predictor, figures_of, context: dict) -> list:
    """The store's rows of the searches: what was scored for real, and apart, what a predictor scored."""
    from nas.records import PREDICTED_ACCURACY_METRIC, candidate_rows

    if predictor is None:
        return [row for result in (evolution, control)
                for row in candidate_rows(provenance, result.method, result.evaluated, figures_of, context)]
    rows = candidate_rows(provenance, "sample", predictor.samples, figures_of, context)
    for result in (evolution, control):
        rows += candidate_rows(provenance, result.method, predictor.finalists[result.method], figures_of, context)
        rows += candidate_rows(provenance, result.method, result.evaluated, figures_of,
                               {**context, "scored_by": "predictor"}, metric=PREDICTED_ACCURACY_METRIC)
    return rows


@dataclass
class PredictedSearch:
    """How the searches used an accuracy predictor: the subnets it learnt from (scored for real),
    its error on held-out ones, and each search's finalists scored for real."""

    samples: dict
    error: object  # nas.predictor.PredictorError
    finalists: dict[str, dict]  # method -> {arch: validation accuracy}
    seconds: float

    def to_json(self) -> dict:
        return {"samples": len(self.samples), "held_out_error": self.error.to_json(),
                "finalists": {m: {str(a): round(v, 6) for a, v in f.items()} for m, f in self.finalists.items()},
                "seconds": round(self.seconds, 2)}


def run_searches(constraints, fitness, budget, seed: int, say):
    """Evolution and random search with as many evaluations. With `budget.predictor_samples`,
    both score candidates with an accuracy predictor trained on that many subnets scored for
    real, and each one's `budget.finalists` best are scored for real to pick its best."""
    from nas.evolution import EvolutionConfig, evolve, random_search
    from nas.predictor import AccuracyPredictor

    config = EvolutionConfig(population=budget.population, generations=budget.generations, seed=seed)
    batches = -(-budget.predictor_samples // budget.population)
    score, predicted = fitness, None
    if budget.predictor_samples:
        started = time.monotonic()
        samples = random_search(constraints, fitness, budget.predictor_samples, replace(config, seed=seed + 1_000_003),
                                generation_bar("predictor samples", batches))
        score = AccuracyPredictor(constraints.space.stages, seed)
        error = score.fit(samples.evaluated)
        say(f"accuracy predictor: {len(samples.evaluated)} subnets scored for real; on {error.held_out} held out, "
            f"RMSE {error.rmse * 100:.2f} points, MAE {error.mae * 100:.2f}, Spearman {error.spearman:.3f}")
        predicted = PredictedSearch(samples.evaluated, error, {}, time.monotonic() - started)
    evolution = evolve(constraints, score, config, generation_bar("evolution", budget.generations + 1))
    control = random_search(constraints, score, evolution.evaluations, config,
                            generation_bar("random search", -(-evolution.evaluations // budget.population)))
    if predicted is None:
        return evolution, control, None
    results = []
    for result in (evolution, control):
        ranked = sorted(result.evaluated, key=lambda a: (-result.evaluated[a], str(a)))[:budget.finalists]
        real = {arch: fitness(arch) for arch in ranked}
        best = max(real, key=lambda a: (real[a], str(a)))
        predicted.finalists[result.method] = real
        results.append(replace(result, best=best, fitness=real[best], figures=constraints.figures(best)))
    return results[0], results[1], predicted


def trained_net(config):
    from nas.train import train

    from tinylab_cli.nas_train import epoch_bars

    return train(config, progress=epoch_bars(config.epochs))


def generation_bar(label: str, total: int):
    """A search's progress callback: one bar, advanced once per generation."""
    bar = ProgressBar(max(total, 1), label)
    return lambda g: bar.advance(
        f"best {g.best:.1%}, mean {g.mean:.1%}, {g.evaluations} evaluated, {sum(g.rejected.values())} rejected")


def uniform_baseline_of(board, space, overhead, args, latency, config, say, table):
    """The baseline network (measured on the board to choose it, its latency in the unit of the
    latency `table`) and its training (from scratch, the supernet's epochs and data)."""
    from engine.errors import DoesNotFitError
    from nas.baseline import Measured, uniform_baseline
    from nas.measure import cycle_model_choice, measure_network, table_latency

    def measure_of(width: float, resolution: int, network):
        name = f"nas-baseline:W{width:g}-R{resolution}"
        try:
            run = measure_network(board, network, name, args.seed, args.flash, None, cycle_model_choice(table))
        except DoesNotFitError:
            say(f"  uniform network at W={width:g}, R={resolution}: its image exceeds the flash budget")
            return None
        measured = table_latency(table, name, run)
        say(f"  uniform network at W={width:g}, R={resolution}: {measured:,.0f} {table.unit}, peak SRAM "
            f"{run.peak_sram:,} B, flash {run.flash:,} B measured")
        return Measured(measured, table.unit, run.peak_sram, run.flash)

    baseline = uniform_baseline(space, overhead, args.sram, args.flash, latency, measure_of)
    say(f"baseline {baseline.arch} at W={baseline.width:g}, R={baseline.resolution}, {baseline.macs / 1e6:.2f} MMACs")
    base_config = replace(config, width=baseline.width, resolution=baseline.resolution, subnets=0,
                          fixed_arch=str(baseline.arch))
    return baseline, base_config, trained_net(base_config)


def print_summary(report: dict) -> None:
    b = report["budget"]
    unit = report["latency_table"]["unit"]
    print(f"\nbudgets: SRAM {b['sram_bytes']:,} B, flash {b['flash_bytes']:,} B, latency "
          f"{'none' if b['latency'] is None else format(b['latency'], ',.0f') + ' ' + unit}"
          + ("; patches allowed (the uniform baseline stays whole)" if b.get("patches") == "auto" else ""))
    rows = [("evolution (winner)", report["winner"])] + [(x["name"], x) for x in report["baselines"]]
    print(f"{'network':<52} {'int8 acc':>8} {'float':>7} {'peak SRAM':>10} {'flash':>9} {'latency':>13} "
          f"{'pred.':>6} {'TFLM':>5}")
    for name, x in rows:
        m = x["measured"]
        ratio = x.get("latency_ratio")
        print(f"{name[:52]:<52} {x['int8_accuracy']:8.2%} {x['float_accuracy']:7.2%} {m['peak_sram_bytes']:>10,} "
              f"{m['flash_bytes']:>9,} {m['latency']:>13,.0f} {'' if ratio is None else format((ratio - 1) * 100, '+.1f') + '%':>6} "
              f"{'yes' if x['matches_reference'] else 'NO':>5}")
        patches = m.get("patches", "off")
        print(f"  {x['architecture']}" + (f"  (patches {patches})" if patches != "off" else ""))
    print(f"latency in {unit}; 'pred.' is measured against the table's prediction; accuracies on "
          f"{report['winner']['test_images']:,} test images")
    t = report["timing"]
    print(f"time: {t['total_seconds']:.0f} s in all, {t['total_without_latency_table_seconds']:.0f} s without the "
          f"latency table's build (" + ", ".join(f"{k[:-8]} {v:.0f} s" for k, v in t.items()
                                                  if k.endswith("_seconds") and not k.startswith("total")) + ")")
    print(f"stored: {report['store']['rows']} rows in {report['store']['path']} (run {report['store']['run_id']}); "
          "see 'tinylab report'")
