"""``graphnet train``: a spec trained by a recipe of the bag of tricks, in one process or
several (``--nproc``, under torchrun), on data decoded onto the device or streamed."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from .args import (SPEC_HELP, add_spec_source_arguments, import_modules, parse_rewrite, pass_name, positive_float,
                   positive_int)
from .training import add_run_arguments, build_net, output_folder, run_config, run_options, say, width_note


def _size(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more")
    return value


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    from ..train import DEFAULT, RECIPES

    p = subparsers.add_parser(
        "train", help="train a spec by a recipe of the bag of tricks",
        description="Train SPEC by a recipe (default: the final bag-of-tricks network and recipe). The recipe's "
                    "passes apply to the net, the loss graph and the eval graph; --rewrite passes replace them.")
    p.add_argument("spec", nargs="?", metavar="SPEC",
                   help=f"{SPEC_HELP} (default: the recipe's network, e.g. graphnet.zoo.resnet9:build, Page's "
                        "ResNet-9, which Page's recipes' passes turn into the final network)")
    add_spec_source_arguments(p)
    p.add_argument("--recipe", default=DEFAULT, choices=list(RECIPES), metavar="NAME",
                   help=f"one of {', '.join(RECIPES)} (default {DEFAULT})")
    p.add_argument("--rewrite", type=parse_rewrite, action="append", default=[], metavar="NAME[:k=v,...]",
                   help="apply this pass instead of the recipe's (repeatable, applied in order)")
    p.add_argument("--without", type=pass_name, action="append", default=[], metavar="NAME",
                   help="leave this pass out (repeatable)")
    epochs = p.add_mutually_exclusive_group()
    epochs.add_argument("--epochs", type=positive_float, metavar="N",
                        help="train N epochs, whole or not (9.9 stops within the tenth); the lr knots scale in proportion")
    epochs.add_argument("--epochs-scale", type=positive_float, metavar="F", help="scale the recipe's epochs by F")
    p.add_argument("--cutout", type=_size, metavar="N", help="cutout square size (0: none)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, help="evaluate a moving average of the weights")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, help="flip test-time augmentation")
    p.add_argument("--gpu-preprocessing", action=argparse.BooleanOptionalAction,
                   help="augment on the device (--no-gpu-preprocessing: on the CPU, as the baseline)")
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


def resolve_recipe(args: argparse.Namespace):
    """The recipe with the command line's changes: epochs, batch size, cutout, EMA, preprocessing."""
    from ..train import EMA_SETTINGS, get_recipe

    recipe = get_recipe(args.recipe)
    if args.epochs is not None:  # whole epochs stay an int (8, not 8.0)
        recipe = recipe.with_epochs(int(args.epochs) if args.epochs.is_integer() else args.epochs)
    if args.epochs_scale is not None:
        recipe = recipe.scaled(args.epochs_scale)
    changes: dict[str, Any] = {}
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    if args.cutout is not None:
        changes["cutout"] = args.cutout
    if args.ema is not None:
        changes["ema"] = (recipe.ema or dict(EMA_SETTINGS)) if args.ema else None
    if args.gpu_preprocessing is not None:
        changes["gpu_preprocessing"] = args.gpu_preprocessing
    return replace(recipe, **changes)


def resolve_passes(args: argparse.Namespace, recipe) -> list:
    """The recipe's passes (or --rewrite's), less --without's, with tta_flip as --tta says."""
    from ..train import as_pass

    passes = [as_pass(p) for p in (args.rewrite or recipe.passes)]
    passes = [p for p in passes if p[0] not in args.without]
    if args.tta is False:
        passes = [p for p in passes if p[0] != "tta_flip"]
    elif args.tta and not any(p[0] == "tta_flip" for p in passes):
        passes.append(("tta_flip", {}))
    return passes


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


def setup_from_args(args: argparse.Namespace, options, runtime):
    """What ``graphnet train`` runs: SPEC (default Page's ResNet-9) with the resolved passes, its
    batch size checked for the :func:`processes` that will train it."""
    from ..train import make_setup
    from ..train.runner import describe_processes

    recipe = resolve_recipe(args)
    spec = args.spec or recipe.network
    if args.spec:
        import_modules(args)
    net = build_net(spec, args.width_mult, args.num_classes)
    return make_setup(net, recipe, resolve_passes(args, recipe), spec + width_note(args), processes(args, runtime),
                      **run_config(args, options, runtime), **describe_processes(runtime.dist, recipe.batch_size))


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
    setup = setup_from_args(args, options, runtime)
    launched = launch_if_asked(args, setup)
    if launched is not None:
        return launched
    with process_group(runtime.dist):
        main = runtime.dist.is_main
        out = output_folder(args, "train") if main else Path()  # rank 0 alone writes
        dataset, data_config, data_record = load_train_data(args, runtime)
        check_data(setup.recipe, dataset)
        setup = replace(setup, config={**setup.config, **data_config, **describe_compute(setup, dataset)})
        if main:
            say("graphnet train", header({**setup.config, "out": out}))
        train_runs(setup, dataset, options, range(args.seed, args.seed + args.runs), out, sys.stdout, data_record,
                   args.command_line, runtime)
    return 0
