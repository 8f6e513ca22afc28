"""``graphnet trim``: the fewest epochs at which a recipe's mean test accuracy over K seeds
reaches a target (Page's method, docs/method.md), printed as the command that trains it."""

from __future__ import annotations

import argparse
import shlex
import time
from dataclasses import replace

from .training import (add_recipe_arguments, add_run_arguments, add_search_arguments, base_recipe, data_fit,
                       make_engine, output_folder, recipe_setup, run_options, say, search, tensorboard)

# trim's own options (each with a value), left out of the command that trains the answer
SEARCH_OPTIONS = ("--target", "--max-epochs", "--resolution", "--engine", "--ray-address", "--cpus-per-run",
                  "--out", "-o", "--tensorboard")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trim", help="find the fewest epochs at which a recipe reaches a target accuracy", allow_abbrev=False,
        description="Trim a recipe's epochs (its schedule rescaled) to the fewest at which the mean test accuracy "
                    "over --runs seeds reaches --target: bracketed, then bisected to --resolution, each trial "
                    "printed and written; the answer is printed as the graphnet train command that trains it and "
                    "saved in trim.json.")
    add_recipe_arguments(p)
    add_search_arguments(p, target_required=True)
    add_run_arguments(p)
    p.set_defaults(run=run_trim)


def train_command(argv: list[str], epochs: str) -> str:
    """``argv`` (trim's, as typed) as the ``graphnet train`` command for ``epochs``: trim's own
    options and the output folder left out."""
    tokens, rest = [], iter(argv)
    for token in rest:
        name = token.partition("=")[0]
        if name in SEARCH_OPTIONS:
            if "=" not in token:
                next(rest, None)
        elif token != "--overwrite":
            tokens.append(token)
    tokens[tokens.index("trim")] = "train"
    return shlex.join(["graphnet", *tokens, "--epochs", epochs])


def run_trim(args: argparse.Namespace) -> int:
    from ..data.load import data_sizes, load_data
    from ..train import check_data, resolve_runtime
    from ..train.flops import training_flops
    from ..train.log import write_json, write_tsv
    from ..train.runner import header
    from ..train.trim import epochs_text

    options = run_options(args)
    runtime = resolve_runtime(options)  # everything is checked before the data loads
    recipe = base_recipe(args)
    setup = recipe_setup(args, options, runtime, recipe)  # the recipe's network is fitted to the data once it loads
    board = tensorboard(args)
    out = output_folder(args, "trim")
    engine = make_engine(args)
    dataset, data_config, data_record = load_data(args.data, args.subset, args.test_subset)
    if not args.spec:
        setup = recipe_setup(args, options, runtime, recipe, fit=data_fit(dataset, args.num_classes))
    check_data(recipe, setup.graphs.net, dataset)
    setup = replace(setup, config={**setup.config, **data_config,
                                   "epochs": f"trimmed (the recipe's: {epochs_text(recipe.epochs)})", "out": out})
    say("graphnet trim", header(setup.config))
    start = time.perf_counter()
    found = search(args, {recipe.name: setup}, dataset, options, engine, board)[recipe.name]
    wall = time.perf_counter() - start
    trials = [{"trial": k, **t.to_dict()} for k, t in enumerate(found.trials.values(), 1)]
    write_tsv([{**t, "seeds": ",".join(map(str, t["seeds"])), "test_acc": ",".join(f"{a:.4f}" for a in t["test_acc"]),
                "train_time": ",".join(f"{s:.2f}" for s in t["train_time"])} for t in trials], out / "trials.tsv")
    answer = found.answer
    command = None if answer is None else train_command(args.argv, epochs_text(answer.epochs))
    write_json({"config": {**setup.config, "data_record": data_record, "command": args.command_line},
                **found.to_dict(), "train_command": command, "wall_time": wall}, out / "trim.json")
    found.check()
    below = found.below
    runs = sum(len(t.runs) for t in found.trials.values())
    n, _, shape, _ = data_sizes(dataset)
    compute = training_flops(setup.graphs.net, answer.epochs, n, recipe.batch_size, shape)
    say(f"answer: {epochs_text(answer.epochs)} epochs reach {args.target:g} (test acc {answer.acc_mean:.4f} ± "
        f"{answer.acc_std:.4f}; " + (f"{epochs_text(below.epochs)} epochs: {below.acc_mean:.4f}" if below else
                                      "the first step of the grid") + f"), training compute {compute}",
        f"found in {len(trials)} trials ({runs} runs) and {wall:.0f} s", f"train it: {command}", f"written: {out / 'trim.json'}, {out / 'trials.tsv'}")
    return 0
