"""``graphnet ablate``: cumulative steps trained one by one: a replay of the bag of tricks (or
airbench94's) compared with the published figures, or the user's SPEC with ``--steps`` passes
added one at a time to the baseline recipe. With ``--target`` each step is trimmed to the fewest
epochs that reach it (Page's table: every row at equal accuracy, docs/method.md)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from typing import Any

from .args import add_spec_source_arguments, import_modules, positive_float
from .training import (add_run_arguments, add_search_arguments, build_net, data_fit, make_engine, output_folder,
                       run_config, run_options, say, search, tensorboard, width_note)

BASE = "baseline"  # the recipe a SPEC's steps start from


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    from ..train import REPLAYS

    p = subparsers.add_parser(
        "ablate", help="the table of tricks: cumulative steps, trained (or trimmed to --target) one by one",
        description="Train each cumulative step and tabulate train time and test accuracy. Without SPEC: a replay "
                    "by its own recipes, with the published figures: bag_of_tricks (Page's post, V100) or "
                    "airbench94 (from Page's final recipe to airbench94 and airbench94_muon, A100). With SPEC: "
                    f"the {BASE} recipe on SPEC, then each --steps pass added in turn (a pass that finds nothing to "
                    "rewrite is reported and skipped). With --target ACC each step is trimmed to the fewest epochs "
                    "whose mean test accuracy reaches ACC, as in Page's table.")
    p.add_argument("spec", nargs="?", metavar="SPEC",
                   help="your network (a .py or JSON spec, module:attr, torchvision:NAME); its steps are --steps")
    add_spec_source_arguments(p)
    p.add_argument("--recipe", default="bag_of_tricks", choices=list(REPLAYS), metavar="REPLAY",
                   help=f"without SPEC, the replay: {', '.join(REPLAYS)} (default bag_of_tricks)")
    p.add_argument("--steps", type=lambda s: s.split(","), metavar="A,B,...",
                   help="with SPEC, the passes to add in turn (required); without, the replay's steps to run, in "
                        "order (default all; " + "; ".join(
                            f"{k}: {','.join(r.name for r in v)}" for k, v in REPLAYS.items()) + ")")
    p.add_argument("--epochs-scale", type=positive_float, default=1.0, metavar="F",
                   help="scale every step's epochs by F (with --target: its first guess and --max-epochs default)")
    add_search_arguments(p, target_required=False)
    add_run_arguments(p)
    p.set_defaults(run=run_ablate)


@dataclass(frozen=True)
class Step:
    """One row of the table: its recipe, what it adds, and the setup that trains it."""

    recipe: Any  # train.Recipe
    adds: str
    setup: Any  # train.Setup
    published: dict[str, Any]


def replay_steps(args: argparse.Namespace, config: dict[str, Any], fit: dict[str, int] | None = None) -> list[Step]:
    """The replay's steps that ``--steps`` names (default all), each by its own recipe, its
    network built with ``fit``'s options (:func:`~.training.data_fit`)."""
    from ..train import REPLAYS, TrainError, make_setup

    replay = REPLAYS[args.recipe]
    names = [r.name for r in replay]
    unknown = [s for s in args.steps or () if s not in names]
    if unknown:
        raise TrainError(f"unknown step(s) {', '.join(unknown)} of replay {args.recipe} (known: {', '.join(names)})")
    nets: dict[str, Any] = {}
    steps = []
    for step in (r for r in replay if r.name in (args.steps or names)):
        recipe = _sized(args, step)
        if recipe.network not in nets:
            nets[recipe.network] = build_net(recipe.network, args.width_mult, **(fit or {}))
        setup = make_setup(nets[recipe.network], recipe, spec=recipe.network + width_note(args), **config)
        steps.append(Step(recipe, recipe.title, setup, {"published_time": step.published_time,
                                                       "published_acc": step.published_acc,
                                                       "published_on": step.published_on}))
    return steps


def spec_steps(args: argparse.Namespace, config: dict[str, Any]) -> tuple[list[Step], list[str]]:
    """SPEC by the baseline recipe, then each ``--steps`` pass added to the passes before; a pass
    that finds nothing to rewrite is left out, with the line saying why (its nearest miss)."""
    from ..rewrites import NoMatchError
    from ..rewrites.registry import get_pass
    from ..train import TrainError, as_pass, get_recipe, make_graphs, make_setup

    if not args.steps:
        raise TrainError("ablate SPEC needs --steps PASS[,PASS...]: the passes to add in turn")
    for name in args.steps:
        get_pass(name)  # an unknown pass is one line, naming the known ones
    import_modules(args)
    net = build_net(args.spec, args.width_mult, args.num_classes)
    spec = args.spec + width_note(args)
    base = _sized(args, get_recipe(BASE))
    steps = [Step(base, f"{BASE} recipe", make_setup(net, base, spec=spec, **config), {})]
    skipped = []
    for name in args.steps:
        passes = steps[-1].recipe.passes + (as_pass(name),)
        try:
            make_graphs(net, passes)
        except NoMatchError as e:
            skipped.append(f"step {name}: skipped: {e}")
            continue
        recipe = replace(steps[-1].recipe, name=name, title=f"+ {name}", passes=passes)
        steps.append(Step(recipe, f"+ {name}", make_setup(net, recipe, spec=spec, **config), {}))
    return steps, skipped


def _sized(args: argparse.Namespace, recipe):
    recipe = recipe.scaled(args.epochs_scale)
    return recipe if args.batch_size is None else replace(recipe, batch_size=args.batch_size)


def trimmed_row(step: Step, found, setup, runs: int, n: int, shape) -> dict[str, Any]:
    """The table's row of ``step`` trimmed by the Search ``found`` (empty figures if it found no answer)."""
    from ..train.flops import training_flops

    row = {"step": step.recipe.name, "adds": step.adds, "epochs": None, "runs": runs, "trials": len(found.trials),
           "acc_mean": None, "acc_std": None, "time_mean": None, "time_std": None, "pflop": None, **step.published}
    answer = found.answer
    if answer is not None:
        flops = training_flops(setup.graphs.net, answer.epochs, n, step.recipe.batch_size, shape)
        row.update(epochs=answer.epochs, acc_mean=answer.acc_mean, acc_std=answer.acc_std,
                   time_mean=answer.time_mean, time_std=answer.time_std, pflop=flops.total / 1e15)
    return row


def trained_row(step: Step, results: list, setup, shape) -> dict[str, Any]:
    """The table's row of ``step`` from its runs' ``results`` (NaN figures if none finished)."""
    from ..train.flops import training_flops
    from ..train.log import summarise

    recipe = step.recipe
    acc = summarise([r.test_acc for r in results] or [float("nan")])
    seconds = summarise([r.train_time for r in results] or [float("nan")])
    return {"step": recipe.name, "adds": step.adds, "epochs": recipe.epochs, "runs": len(results),
            "pflop": training_flops(setup.graphs.net, recipe.epochs, batch_size=recipe.batch_size,
                                    input_shape=shape).total / 1e15,
            "time_mean": seconds["mean"], "time_std": seconds["std"],
            "acc_mean": acc["mean"], "acc_std": acc["std"], "acc_min": acc["min"], "acc_max": acc["max"],
            **step.published}


def run_ablate(args: argparse.Namespace) -> int:
    from ..data.load import data_sizes, load_data
    from ..train import TrainError, check_data, resolve_runtime, train_runs
    from ..train.log import (ABLATION_COLUMNS, TARGET_COLUMNS, plot_ablation, table_header, table_row, write_json,
                             write_tsv)
    from ..train.runner import describe_compute, header

    options = run_options(args)
    runtime = resolve_runtime(options)  # everything is checked before the data loads
    config = run_config(args, options, runtime)
    steps, skipped = spec_steps(args, config) if args.spec else (replay_steps(args, config), [])
    for line in skipped:
        say(line)
    board = tensorboard(args)
    out = output_folder(args, "ablate")
    engine = make_engine(args) if args.target is not None else None
    dataset, data_config, data_record = load_data(args.data, args.subset, args.test_subset)
    n, _, shape, _ = data_sizes(dataset)
    if not args.spec:  # the replay's networks fitted to the data
        steps = replay_steps(args, config, data_fit(dataset))
    for step in steps:
        check_data(step.recipe, step.setup.graphs.net, dataset)
    setups = {s.recipe.name: replace(s.setup, config={**s.setup.config, **data_config,
                                                      **describe_compute(s.setup, dataset)}) for s in steps}
    title = args.spec or args.recipe
    rows = []
    if engine is not None:
        say(f"graphnet ablate: {len(steps)} steps of {title}, each trimmed to {args.target:g}",
            header(next(iter(setups.values())).config))
        searches = search(args, setups, dataset, options, engine, board)
        for step in steps:
            found = searches[step.recipe.name]
            try:
                found.check()
            except TrainError as e:  # the other steps are still a table
                say(f"step {step.recipe.name}: {e}")
            rows.append(trimmed_row(step, found, setups[step.recipe.name], args.runs, n, shape))
        columns = TARGET_COLUMNS + (ABLATION_COLUMNS[-2:] if not args.spec else ())
        caption = (f"ablation ({title}) at mean test acc {args.target:g} over {args.runs} seed(s): the fewest epochs "
                   f"(steps of {args.resolution:g}) that reach it, test acc and train time there (mean ± std), PFLOP "
                   f"of training on the {n:,} images" + ("; published figures" if not args.spec else ""))
    else:
        for step in steps:
            setup, recipe = setups[step.recipe.name], step.recipe
            say(f"== step {len(rows)}: {recipe.title}", header(setup.config))
            seeds = range(args.seed, args.seed + args.runs)
            try:
                results = train_runs(setup, dataset, options, seeds, out / recipe.name, sys.stdout, data_record,
                                     args.command_line, runtime)
            except TrainError as e:  # the step's log says why; the other steps go on
                say(f"step {recipe.name}: {e}")
                results = []
            rows.append(trained_row(step, results, setup, shape))
        columns = ABLATION_COLUMNS
        caption = (f"ablation ({title}): train time and final test accuracy (mean ± std over runs); PFLOP of "
                   "training on 50,000 images of the data's size; published figures")
    say("", caption, table_header(columns), *(table_row(r, columns) for r in rows), *skipped)
    write_tsv(rows, out / "ablate.tsv")
    write_json({"config": {**config, **data_config, "steps_of": title, "epochs_scale": args.epochs_scale,
                           "target": args.target}, "rows": rows, "skipped": skipped,
                **({"searches": {k: s.to_dict() for k, s in searches.items()}} if engine is not None else {})},
               out / "ablate.json")
    written = [out / "ablate.tsv", out / "ablate.json"]
    charted = [r for r in rows if r["acc_mean"] is not None]
    if charted and plot_ablation(charted, out / "ablate.png"):
        written.append(out / "ablate.png")
    say("written: " + ", ".join(map(str, written)))
    return 0
