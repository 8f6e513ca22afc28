"""``graphnet ablate``: a replay of the bag of tricks (or airbench94's) trained step by step
and compared with the published figures."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from .args import positive_float
from .training import add_run_arguments, build_net, output_folder, run_config, run_options, say, width_note


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    from ..train import REPLAYS

    p = subparsers.add_parser(
        "ablate", help="replay the bag of tricks (or airbench94's) step by step",
        description="Train each cumulative step of a replay by its own recipe, and compare train time and "
                    "test accuracy with the published figures: bag_of_tricks (Page's post, V100) or airbench94 "
                    "(from Page's final recipe to airbench94 and airbench94_muon, A100).")
    p.add_argument("--recipe", default="bag_of_tricks", choices=list(REPLAYS), metavar="REPLAY",
                   help=f"the replay: {', '.join(REPLAYS)} (default bag_of_tricks)")
    p.add_argument("--steps", type=lambda s: s.split(","), metavar="A,B,...",
                   help="the steps to run, in order (default all; " + "; ".join(
                       f"{k}: {','.join(r.name for r in v)}" for k, v in REPLAYS.items()) + ")")
    p.add_argument("--epochs-scale", type=positive_float, default=1.0, metavar="F", help="scale every step's epochs by F")
    add_run_arguments(p)
    p.set_defaults(run=run_ablate)


def run_ablate(args: argparse.Namespace) -> int:
    from ..data.load import load_data
    from ..train import REPLAYS, TrainError, make_setup, resolve_runtime, train_runs
    from ..train.flops import training_flops
    from ..train.log import ABLATION_COLUMNS, plot_ablation, summarise, table_header, table_row, write_json, write_tsv
    from ..train.runner import describe_compute, header

    replay = REPLAYS[args.recipe]
    names = [r.name for r in replay]
    steps = args.steps or names
    unknown = [s for s in steps if s not in names]
    if unknown:
        raise TrainError(f"unknown step(s) {', '.join(unknown)} of replay {args.recipe} (known: {', '.join(names)})")
    options = run_options(args)
    runtime = resolve_runtime(options)  # everything is checked before the data loads
    nets: dict[str, Any] = {}
    setups = []
    for step in (r for r in replay if r.name in steps):
        recipe = step.scaled(args.epochs_scale)
        if args.batch_size is not None:
            recipe = replace(recipe, batch_size=args.batch_size)
        if recipe.network not in nets:
            nets[recipe.network] = build_net(recipe.network, args.width_mult)
        setups.append((step, make_setup(nets[recipe.network], recipe, spec=recipe.network + width_note(args),
                                        **run_config(args, options, runtime))))
    out = output_folder(args, "ablate")
    dataset, data_config, data_record = load_data(args.data, args.subset, args.test_subset)
    rows = []
    for step, setup in setups:
        setup = replace(setup, config={**setup.config, **data_config, **describe_compute(setup, dataset)})
        recipe = setup.recipe
        say(f"== step {replay.index(step)}: {recipe.title}", header(setup.config))
        seeds = range(args.seed, args.seed + args.runs)
        try:
            results = train_runs(setup, dataset, options, seeds, out / recipe.name, sys.stdout, data_record,
                                 args.command_line, runtime)
        except TrainError as e:  # the step's log says why; the other steps go on
            say(f"step {recipe.name}: {e}")
            results = []
        acc = summarise([r.test_acc for r in results] or [float("nan")])
        seconds = summarise([r.train_time for r in results] or [float("nan")])
        rows.append({"step": recipe.name, "epochs": recipe.epochs, "runs": len(results),
                     "pflop": training_flops(setup.graphs.net, recipe.epochs, batch_size=recipe.batch_size).total / 1e15,
                     "time_mean": seconds["mean"], "time_std": seconds["std"],
                     "acc_mean": acc["mean"], "acc_std": acc["std"], "acc_min": acc["min"], "acc_max": acc["max"],
                     "published_time": step.published_time, "published_acc": step.published_acc,
                     "published_on": step.published_on})
    say("", f"ablation ({args.recipe}): train time and final test accuracy (mean ± std over runs); PFLOP of "
            "training on 50,000 images; published figures",
        table_header(ABLATION_COLUMNS), *(table_row(r, ABLATION_COLUMNS) for r in rows))
    write_tsv(rows, out / "ablate.tsv")
    write_json({"config": {**run_config(args, options, runtime), **data_config, "replay": args.recipe,
                           "epochs_scale": args.epochs_scale}, "rows": rows}, out / "ablate.json")
    written = [out / "ablate.tsv", out / "ablate.json"]
    if plot_ablation(rows, out / "ablate.png"):
        written.append(out / "ablate.png")
    say("written: " + ", ".join(map(str, written)))
    return 0
