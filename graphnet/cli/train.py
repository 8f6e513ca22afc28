"""``graphnet train``: a spec trained by a recipe of the bag of tricks, in one process or
several (``--nproc``, under torchrun), on data decoded onto the device or streamed."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from .args import positive_float, positive_int
from .training import (add_recipe_arguments, add_run_arguments, base_recipe, data_fit, output_folder, recipe_setup,
                       record_runs, run_options, say, tensorboard)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a spec by a recipe of the bag of tricks",
        description="Train SPEC by a recipe (default: the final bag-of-tricks network and recipe). The recipe's "
                    "passes apply to the net, the loss graph and the eval graph; --rewrite passes replace them.")
    add_recipe_arguments(p)
    epochs = p.add_mutually_exclusive_group()
    epochs.add_argument("--epochs", type=positive_float, metavar="N",
                        help="train N epochs, whole or not (9.9 stops within the tenth); the lr knots scale in proportion")
    epochs.add_argument("--epochs-scale", type=positive_float, metavar="F", help="scale the recipe's epochs by F")
    add_run_arguments(p)
    p.add_argument("--nproc", type=positive_int, metavar="N",
                   help="train in N processes on this machine, one per GPU (on the CPU: per core), started by "
                        "torchrun with DistributedDataParallel; --batch-size stays the global batch")
    p.add_argument("--sync-bn", action="store_true",
                   help="several processes: batch norm statistics over the global batch, not per process "
                        "(plain batch norms only: refused with ghost_bn)")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction,
                   help="stream an ImageFolder source through DataLoader workers instead of keeping it decoded "
                        "on the device (default: only when it would not fit)")
    p.set_defaults(run=run_train)


def processes(args: argparse.Namespace, runtime) -> int:
    """How many processes will train: ``--nproc N`` (checked against the machine, and refused
    under torchrun, which started this one), else torchrun's world size."""
    from ..train import DistributedError
    from ..train.launch import check_nproc

    if args.nproc is None:
        return runtime.dist.world_size
    if "WORLD_SIZE" in os.environ:
        raise DistributedError("--nproc starts torchrun itself: under torchrun leave it out")
    check_nproc(args.nproc, runtime.device)
    return args.nproc


def setup_from_args(args: argparse.Namespace, options, runtime, fit: dict[str, int] | None = None):
    """What ``graphnet train`` runs: SPEC (default the recipe's network, built with ``fit``'s
    options: :func:`~.training.data_fit`) with the resolved passes, its batch size checked for
    the :func:`processes` that will train it."""
    from ..train.runner import describe_processes

    recipe = base_recipe(args)
    if args.epochs is not None:  # whole epochs stay an int (8, not 8.0)
        recipe = recipe.with_epochs(int(args.epochs) if args.epochs.is_integer() else args.epochs)
    if args.epochs_scale is not None:
        recipe = recipe.scaled(args.epochs_scale)
    return recipe_setup(args, options, runtime, recipe, processes(args, runtime), fit,
                        **describe_processes(runtime.dist, recipe.batch_size))


def launch_if_asked(args: argparse.Namespace, setup) -> int | None:
    """With ``--nproc N`` above 1 (already checked by :func:`processes`): check ``--sync-bn``
    against the network and the output folder, run this command line less ``--nproc`` under
    torchrun and return its exit status. None when this process trains itself."""
    from ..train.launch import launch

    if args.nproc is None or args.nproc == 1:
        return None
    if args.sync_bn:
        from ..compile import compile
        from ..train.distributed import sync_batch_norm

        sync_batch_norm(compile(setup.graphs.net))  # DistributedError on ghost batch norm
    if args.out is not None:  # a refused folder is one line before anything starts
        from ..train import prepare_out

        prepare_out(args.out, args.overwrite)
    return launch(args.argv, args.nproc)


def load_train_data(args: argparse.Namespace, runtime) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """``load_data``'s ``(data, config entries, record)`` for ``graphnet train``: ``data`` a
    decoded Dataset, or an indexed Source to stream (``--stream``, or when
    :func:`~graphnet.data.memory.plan` finds that the decoded set would not fit: said in a
    note). Rank 0 loads first, so that the others read the decoded set from its cache."""
    from ..data import DataError
    from ..data.imagefolder import is_torchvision
    from ..data.load import load_data
    from ..data.memory import streamed_source

    dist = runtime.dist
    with dist.main_first():
        if args.stream and is_torchvision(args.data):
            raise DataError(f"--stream reads ImageFolder folders and archives, not torchvision's {args.data}: "
                            "leave it out")
        source, note = streamed_source(args.data, runtime.device, runtime.data_dtype, args.stream)
        loaded = load_data(args.data, args.subset, args.test_subset, streamed=source)
    if source is not None and args.stream is None and dist.is_main:
        print(f"graphnet train: note: {note}", file=sys.stderr, flush=True)
    return loaded


def run_train(args: argparse.Namespace) -> int:
    from ..train import check_data, resolve_runtime, train_runs
    from ..train.distributed import process_group
    from ..train.runner import describe_compute, header

    options = replace(run_options(args), sync_bn=args.sync_bn)
    runtime = resolve_runtime(options)  # everything is checked before the data loads
    setup = setup_from_args(args, options, runtime)  # the recipe's network is fitted to the data once it loads
    launched = launch_if_asked(args, setup)
    if launched is not None:
        return launched
    with process_group(runtime.dist):
        main = runtime.dist.is_main
        out = output_folder(args, "train") if main else Path()  # rank 0 alone writes
        board = tensorboard(args) if main else None
        dataset, data_config, data_record = load_train_data(args, runtime)
        if not args.spec:
            setup = setup_from_args(args, options, runtime, data_fit(dataset, args.num_classes))
        check_data(setup.recipe, setup.graphs.net, dataset)
        setup = replace(setup, config={**setup.config, **data_config, **describe_compute(setup, dataset)})
        if main:
            say("graphnet train", header({**setup.config, "out": out}))
        results = train_runs(setup, dataset, options, range(args.seed, args.seed + args.runs), out, sys.stdout,
                             data_record, args.command_line, runtime)
        if board is not None:
            record_runs(board, setup, results)
    return 0
