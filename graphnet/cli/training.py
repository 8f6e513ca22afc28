"""What ``graphnet train``, ``trim`` and ``ablate`` share: their run options (read into
:class:`~graphnet.train.Options`), the header lines those resolve to, the output folder, the
network built from a spec (a recipe's network fitted to the data); the recipe options of
train and trim; and the search options and driver of trim and ablate (``--target``, the
engine, a line per trial, TensorBoard records)."""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .args import (SPEC_HELP, accuracy, add_spec_source_arguments, import_modules, non_negative_int, parse_rewrite,
                   pass_name, positive_float, positive_int)


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("the output folder is empty: give a folder")
    return Path(text)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The data, runs, device and output options of a training command."""
    p.add_argument("--batch-size", type=positive_int, metavar="B",
                   help="batch size (lr and weight decay keep their per-sample values)")
    p.add_argument("--data", default="cifar10", metavar="SOURCE",
                   help="cifar10, cifar100, svhn, mnist, fashionmnist or stl10 (torchvision download into the cache), "
                        "or an ImageFolder folder or .tar.gz (any image size, RGB or grayscale)")
    p.add_argument("--subset", type=positive_int, metavar="N", help="train on N images (class-balanced)")
    p.add_argument("--test-subset", type=positive_int, metavar="N",
                   help="test on N images (default: in proportion to --subset)")
    p.add_argument("--width-mult", type=positive_float, metavar="F", help="passed to the spec's build(width_mult=F)")
    p.add_argument("--runs", type=positive_int, default=1, metavar="K", help="train K runs, seeds S..S+K-1")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the first run's seed (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto: bf16 autocast on CUDA and on a CPU with bf16 units (AMX or AVX512-BF16), else fp32; "
                        "fp16 (CUDA): as Page, batch norms in fp32")
    p.add_argument("--compile", action="store_true", help="torch.compile the forward passes")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   help="keep images and activations channels_last (default: on)")
    p.add_argument("--ghost-bn-method", choices=("auto", "reshape", "view", "chunks"),
                   help="how ghost batch norm computes its statistics: reshape (one batch_norm call; copies a "
                        "channels_last batch), view (var_mean over a view), chunks (one batch_norm call per ghost "
                        "batch; keeps the memory format), auto (default: chunks on the CPU in channels_last, else "
                        "reshape)")
    p.add_argument("--out", "-o", type=_folder, metavar="DIR",
                   help="for logs and checkpoints (default runs/<time>-<command>); a folder holding an earlier "
                        "run is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace the earlier run in --out")
    p.add_argument("--tensorboard", type=_folder, metavar="DIR",
                   help="write each run's per-epoch scalars and each run's (and trial's) hyperparameters and result "
                        "for TensorBoard into DIR (needs graphnet[tensorboard])")


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """SPEC, ``--recipe`` and the recipe's changes (passes, cutout, EMA, TTA, preprocessing):
    what :func:`base_recipe` and :func:`recipe_setup` read."""
    from ..train import DEFAULT, RECIPES

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
    p.add_argument("--cutout", type=non_negative_int, metavar="N", help="cutout square size (0: none)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, help="evaluate a moving average of the weights")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, help="flip test-time augmentation")
    p.add_argument("--gpu-preprocessing", action=argparse.BooleanOptionalAction,
                   help="augment on the device (--no-gpu-preprocessing: on the CPU, as the baseline)")


def base_recipe(args: argparse.Namespace):
    """``--recipe`` with the command line's changes: batch size, cutout, EMA, preprocessing."""
    from ..train import EMA_SETTINGS, get_recipe

    recipe = get_recipe(args.recipe)
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


def recipe_setup(args: argparse.Namespace, options, runtime, recipe, world_size: int = 1,
                 fit: dict[str, int] | None = None, **config: Any):
    """SPEC (default the recipe's network, built with ``fit``'s options: :func:`data_fit`) with
    :func:`resolve_passes`, trained by ``recipe`` (``make_setup``; ``config`` adds header entries)."""
    from ..train import make_setup

    spec = args.spec or recipe.network
    if args.spec:
        import_modules(args)
    build_options = fit if fit is not None and not args.spec else {"num_classes": args.num_classes}
    net = build_net(spec, args.width_mult, **build_options)
    setup = make_setup(net, recipe, resolve_passes(args, recipe), spec + width_note(args), world_size, **config)
    return replace(setup, config={**setup.config, **run_config(args, options, runtime)})


def add_search_arguments(p: argparse.ArgumentParser, target_required: bool) -> None:
    """``--target`` and the search's bounds, and the engine the trials run on."""
    from ..train.engine import ENGINES

    p.add_argument("--target", type=accuracy, required=target_required, metavar="ACC",
                   help="the mean test accuracy (over --runs seeds) to reach, e.g. 0.94"
                        + ("" if target_required else ": each step trimmed to the fewest epochs that reach it"))
    p.add_argument("--max-epochs", type=positive_float, metavar="E",
                   help="try at most E epochs (default: twice the recipe's)")
    p.add_argument("--resolution", type=positive_float, default=0.25, metavar="R",
                   help="search the epochs in steps of R (default 0.25)")
    p.add_argument("--engine", choices=ENGINES, default="embedded",
                   help="embedded: trials one after another in this process (default); ray: independent runs in "
                        "parallel on Ray (needs graphnet[ray]), one per GPU or per --cpus-per-run cores")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="the Ray cluster to use (auto, ray://host:10001; default: start one on this machine)")
    p.add_argument("--cpus-per-run", type=positive_int, default=1, metavar="N",
                   help="with --engine ray on CPUs: cores (torch threads) per run (default 1)")


def make_engine(args: argparse.Namespace):
    """The engine ``--engine`` names, started (Ray connects here, before any data loads)."""
    from ..train.engine import make_engine

    return make_engine(args.engine, args.ray_address, args.cpus_per_run, args.device)


def tensorboard(args: argparse.Namespace):
    """The ``--tensorboard`` Board, or None; TrainError naming the extra when TensorBoard is missing."""
    from ..train.tensorboard import Board

    return None if args.tensorboard is None else Board(args.tensorboard)


def record_runs(board, setup, results) -> None:
    """Each run of ``graphnet train`` in TensorBoard: its epochs, its settings and its result."""
    for result in results:
        board.record(f"{setup.recipe.name}/seed{result.seed}", {**_hparams(setup), "seed": result.seed},
                     {"test_acc": result.test_acc, "train_time": result.train_time}, result.rows)


def _hparams(setup) -> dict[str, Any]:
    keys = ("recipe", "spec", "epochs", "batch_size", "net_passes", "loss_passes", "eval_passes", "EMA", "TTA")
    return {key: setup.config[key] for key in keys}


def search(args: argparse.Namespace, setups: dict[str, Any], dataset, options, engine, board) -> dict[str, Any]:
    """Trim each of ``setups`` (by name) to ``--target``: their searches driven together on
    ``engine`` (``trim.run_searches``), a line per finished trial, each run and trial recorded
    in ``board`` (if any). The Searches by name (``Search.check`` says whether each reached it)."""
    from ..train.trim import FIRST_GUESS, Search, TrialData, epochs_text, run_searches, train_trial

    searches = {name: Search(args.target, FIRST_GUESS * setup.recipe.epochs,
                             args.max_epochs or 2 * setup.recipe.epochs, args.resolution)
                for name, setup in setups.items()}
    seeds = tuple(range(args.seed, args.seed + args.runs))
    shared = TrialData(setups, dataset, options)
    count = itertools.count(1)

    def on_trial(name: str, trial) -> None:
        n = next(count)
        reached = trial.reached(args.target)
        seeds_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
        say(f"trial {n}: {name + ', ' if len(setups) > 1 else ''}{epochs_text(trial.epochs)} epochs, {seeds_text}: "
            f"test acc {trial.acc_mean:.4f} ± {trial.acc_std:.4f} {'>=' if reached else '<'} {args.target:g} | "
            f"train time {trial.time_mean:.2f} ± {trial.time_std:.2f} s")
        if board is None:
            return
        hparams = {**_hparams(setups[name]), "step": name, "target": args.target, "epochs": trial.epochs}
        for run in trial.runs:
            board.record(f"{name}/{epochs_text(trial.epochs)}ep/seed{run.seed}", {**hparams, "seed": run.seed},
                         {"test_acc": run.test_acc, "train_time": run.train_time}, run.rows)
        board.record(f"{name}/trial{n}", {**hparams, "runs": len(trial.runs)},
                     {"acc_mean": trial.acc_mean, "acc_std": trial.acc_std, "time_mean": trial.time_mean,
                      "reached": float(reached)})

    say(f"trimming to mean test acc {args.target:g} over {len(seeds)} seed(s), in steps of "
        f"{epochs_text(args.resolution)} epochs; engine {engine.describe()}")
    try:
        run_searches(searches, seeds, lambda jobs: engine.map(train_trial, shared, jobs), engine.slots, on_trial)
    finally:
        engine.close()
    return searches


def run_options(args: argparse.Namespace):
    """The run options as given (``resolve_runtime`` checks and resolves them)."""
    from ..train import Options

    memory_format = {None: "auto", True: "channels_last", False: "contiguous"}[args.channels_last]
    return Options(device=args.device, precision=args.precision, compile=args.compile, memory_format=memory_format,
                   ghost_bn_method=args.ghost_bn_method)


def run_config(args: argparse.Namespace, options, runtime) -> dict[str, Any]:
    """The header's lines for how the runs compute (``describe_runtime``) and their seeds."""
    from ..train.runner import describe_runtime

    return {**describe_runtime(runtime, options), "seed": args.seed, "runs": args.runs}


def output_folder(args: argparse.Namespace, command: str) -> Path:
    """The output folder, checked (and made) before any data loads."""
    from ..train import prepare_out

    return prepare_out(args.out or Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{command}", args.overwrite)


def build_net(spec: str, width_mult: float | None, num_classes: int | None = None, in_channels: int | None = None):
    """``spec`` built with the build options given (None: the builder's default)."""
    from ..graph import build
    from ..spec_source import load_spec

    kwargs = {k: v for k, v in (("width_mult", width_mult), ("num_classes", num_classes),
                                ("in_channels", in_channels)) if v is not None}
    return build(load_spec(spec, **kwargs))


def data_fit(dataset, num_classes: int | None = None) -> dict[str, int]:
    """The build options that fit a recipe's network (a zoo builder) to ``dataset``: its
    channels and classes (``num_classes`` instead, when given)."""
    from ..data.load import data_sizes

    _, _, shape, classes = data_sizes(dataset)
    return {"in_channels": shape[0], "num_classes": num_classes or classes}


def width_note(args: argparse.Namespace) -> str:
    """The spec's note in the header: `` (width x0.125)``, or nothing."""
    return f" (width x{args.width_mult:g})" if args.width_mult is not None else ""


def say(*lines: str) -> None:
    print(*lines, sep="\n", flush=True)
