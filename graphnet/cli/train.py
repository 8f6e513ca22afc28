"""``graphnet train``, ``graphnet eval`` and ``graphnet ablate``: the bag of tricks from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from . import distributed
from .args import (SPEC_HELP, add_spec_source_arguments, import_modules, parse_rewrite, pass_name, positive_float,
                   positive_int)

def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("the output folder is empty: give a folder")
    return Path(text)


def _size(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more")
    return value


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    from ..train import DEFAULT, RECIPES, REPLAYS

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
    _add_common(p)
    distributed.add_arguments(p)
    p.set_defaults(run=run_train)

    p = subparsers.add_parser(
        "eval", help="re-evaluate a checkpoint",
        description="Rebuild a checkpoint's network from its saved spec, load its weights and evaluate it "
                    "(with TTA if it was trained with it) on the test images it was trained with.")
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a checkpoint.pt or the folder holding it")
    p.add_argument("--data", metavar="SOURCE", help="the data set (default: the one it was trained on)")
    p.add_argument("--test-subset", type=positive_int, metavar="N", help="evaluate N test images (default: as trained)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--batch-size", type=positive_int, default=512, metavar="B", help="evaluation batch size")
    add_spec_source_arguments(p, num_classes=False)
    p.set_defaults(run=run_eval)

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
    _add_common(p)
    p.set_defaults(run=run_ablate)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=positive_int, metavar="B",
                   help="batch size (lr and weight decay keep their per-sample values)")
    p.add_argument("--data", default="cifar10", metavar="SOURCE",
                   help="cifar10 (torchvision download into the cache), an ImageFolder folder or .tar.gz")
    p.add_argument("--subset", type=positive_int, metavar="N", help="train on N images (class-balanced)")
    p.add_argument("--test-subset", type=positive_int, metavar="N",
                   help="test on N images (default: in proportion to --subset)")
    p.add_argument("--width-mult", type=positive_float, metavar="F", help="passed to the spec's build(width_mult=F)")
    p.add_argument("--runs", type=positive_int, default=1, metavar="K", help="train K runs, seeds S..S+K-1")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the first run's seed (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto: bf16 autocast on CUDA, fp32 on CPU; fp16: as Page, batch norms in fp32")
    p.add_argument("--compile", action="store_true", help="torch.compile the forward passes")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   help="keep images and activations channels_last (default: on CUDA only)")
    p.add_argument("--ghost-bn-method", choices=("reshape", "view"),
                   help="how ghost batch norm computes its statistics: reshape (one batch_norm call; copies a "
                        "channels_last batch) or view (var_mean over a view; keeps the memory format)")
    p.add_argument("--out", "-o", type=_folder, metavar="DIR",
                   help="for logs and checkpoints (default runs/<time>-<command>); a folder holding an earlier "
                        "run is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace the earlier run in --out")


# -- shared ----------------------------------------------------------------------------------

def load_data(source: str, subset: int | None, test_subset: int | None, streamed=None):
    """``(dataset, config entries, record)``: the data set cut to the subsets (a test subset in
    proportion to ``subset`` if not given), its description, and what rebuilds the cut (the
    source as an absolute path, and as typed). ``streamed``: the source indexed
    (:func:`graphnet.data.stream.index_source`), to cut and stream instead of decoding it."""
    from ..data import DataError, load_dataset
    from ..data.stream import subset_source
    from ..train.loop import data_sizes

    start = time.perf_counter()
    dataset = load_dataset(source) if streamed is None else streamed
    seconds = time.perf_counter() - start
    full = data_sizes(dataset)[:2]
    for name, n, size, split in (("--subset", subset, full[0], "train"), ("--test-subset", test_subset, full[1], "test")):
        if n is not None and n > size:
            raise DataError(f"{name} {n} is more than the {size} images of the {split} split of {source}")
    if subset is not None and test_subset is None:
        test_subset = min(full[1], max(1, round(subset * full[1] / full[0])))
    if subset is not None or test_subset is not None:
        dataset = dataset.subset(train=subset, test=test_subset) if streamed is None else \
            subset_source(dataset, train=subset, test=test_subset)
    sizes = data_sizes(dataset)[:2]
    config = {"data": f"{source} (loaded in {seconds:.1f} s)" if streamed is None else f"{source} (streamed)",
              "subset": (f"{sizes[0]} train, {sizes[1]} test images of {full[0]}, {full[1]} (class-balanced)"
                         if sizes != full else f"none: {sizes[0]} train, {sizes[1]} test images")}
    absolute = source if source == "cifar10" else str(Path(source).expanduser().resolve())
    return dataset, config, {"source": absolute, "typed": source, "subset": subset, "test_subset": test_subset}


def _options(args: argparse.Namespace):
    from ..train import Options, resolve_device, resolve_memory_format, resolve_precision

    device = resolve_device(args.device)
    memory_format = {None: "auto", True: "channels_last", False: "contiguous"}[args.channels_last]
    resolve_memory_format(memory_format, device)
    return Options(device=str(device), precision=resolve_precision(args.precision, device), compile=args.compile,
                   memory_format=memory_format, ghost_bn_method=args.ghost_bn_method)


def _run_config(args: argparse.Namespace, options) -> dict[str, Any]:
    import torch

    from ..train import resolve_memory_format

    memory_format = resolve_memory_format(options.memory_format, torch.device(options.device))
    return {"precision": options.precision, "device": options.device,
            "memory_format": "channels_last" if memory_format == torch.channels_last else "contiguous",
            "ghost_bn_method": options.ghost_bn_method or "reshape",
            "compile": "on" if options.compile else "off", "seed": args.seed, "runs": args.runs}


def _out(args: argparse.Namespace, command: str) -> Path:
    """The output folder, checked (and made) before any data loads."""
    from ..train import prepare_out

    return prepare_out(args.out or Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{command}", args.overwrite)


def _build(spec: str, width_mult: float | None, num_classes: int | None = None):
    from ..graph import build
    from ..spec import load_spec

    kwargs = {k: v for k, v in (("width_mult", width_mult), ("num_classes", num_classes)) if v is not None}
    return build(load_spec(spec, **kwargs))


def _width(args: argparse.Namespace) -> str:
    return f" (width x{args.width_mult:g})" if args.width_mult is not None else ""


def _say(*lines: str) -> None:
    print(*lines, sep="\n", flush=True)


# -- train -----------------------------------------------------------------------------------

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


def setup_from_args(args: argparse.Namespace, config: dict[str, Any]):
    """What ``graphnet train`` runs: SPEC (default Page's ResNet-9) with the resolved passes."""
    from ..train import make_setup

    recipe = resolve_recipe(args)
    spec = args.spec or recipe.network
    if args.spec:
        import_modules(args)
    net = _build(spec, args.width_mult, args.num_classes)
    return make_setup(net, recipe, resolve_passes(args, recipe), spec + _width(args), **config)


def run_train(args: argparse.Namespace) -> int:
    from ..train import check_data, train_runs
    from ..train.distributed import process_group
    from ..train.runner import header, training_compute

    options = replace(_options(args), sync_bn=args.sync_bn)  # everything is checked before the data loads
    setup = setup_from_args(args, _run_config(args, options))
    launched = distributed.launch_if_asked(args, setup)
    if launched is not None:
        return launched
    with process_group(options.device) as dist:
        options = replace(options, device=str(dist.device))
        out = _out(args, "train") if dist.is_main else Path()  # rank 0 alone writes
        dataset, data_config, data = distributed.load_train_data(args, options, dist)
        check_data(setup.recipe, dataset)
        setup = replace(setup, config={**setup.config, **data_config, **training_compute(setup, dataset),
                                       **distributed.describe(dist, setup.recipe)})
        if dist.is_main:
            _say("graphnet train", header({**setup.config, "out": out}))
        train_runs(setup, dataset, options, range(args.seed, args.seed + args.runs), out, sys.stdout, data,
                   args.command_line, dist)
    return 0


# -- eval ------------------------------------------------------------------------------------

def run_eval(args: argparse.Namespace) -> int:
    import contextlib

    from ..data import Dataset, DeviceData
    from ..data.stream import StreamData, streamed_source
    from ..train import TrainError, evaluate, load_checkpoint, loss_and_correct, rebuild, resolve_device
    from ..train.loop import data_sizes

    import_modules(args)
    checkpoint = load_checkpoint(args.checkpoint)
    device = resolve_device(args.device)
    data = checkpoint["data"]
    source = args.data or data.get("source")
    if source is None:
        raise TrainError("the checkpoint does not record its data set: pass --data")
    _, eval_net, loss_net = rebuild(checkpoint)
    eval_net.to(device).eval()
    streamed, _ = streamed_source(source, device)  # a set too big to decode is streamed, as in training
    dataset, data_config, _ = load_data(source, data.get("subset"), args.test_subset or data.get("test_subset"),
                                        streamed=streamed)
    if streamed is not None:
        test = StreamData(dataset, device)
    else:  # only the test split goes to the device
        d = dataset
        test = DeviceData(Dataset(d.train_images[:0], d.train_labels[:0], d.test_images, d.test_labels, d.classes),
                          device)
    fn = loss_and_correct(eval_net, loss_net.to(device), contextlib.nullcontext)
    loss, acc, seconds = evaluate(fn, test.test_batches(args.batch_size), device)
    last = checkpoint["log"][-1] if checkpoint["log"] else {}
    logged = last.get("tta_acc", last.get("test_acc", float("nan")))
    tta = " (TTA)" if checkpoint["config"].get("TTA", "off") != "off" else ""
    _say(f"graphnet eval {args.checkpoint}", f"  data  {data_config['data']}; {data_config['subset']}",
         f"test acc {acc:.4f}{tta}, loss {loss:.4f}, {data_sizes(dataset)[1]} images in {seconds:.2f} s "
         f"on {device} (logged at the end of training: {logged:.4f})")
    return 0


# -- ablate ----------------------------------------------------------------------------------

def run_ablate(args: argparse.Namespace) -> int:
    from ..train import REPLAYS, TrainError, make_setup, train_runs
    from ..train.flops import training_flops
    from ..train.log import ABLATION_COLUMNS, plot_ablation, summarise, table_header, table_row, write_json, write_tsv
    from ..train.runner import header, training_compute

    replay = REPLAYS[args.recipe]
    names = [r.name for r in replay]
    steps = args.steps or names
    unknown = [s for s in steps if s not in names]
    if unknown:
        raise TrainError(f"unknown step(s) {', '.join(unknown)} of replay {args.recipe} (known: {', '.join(names)})")
    options = _options(args)  # everything is checked before the data loads
    nets: dict[str, Any] = {}
    setups = []
    for step in (r for r in replay if r.name in steps):
        recipe = step.scaled(args.epochs_scale)
        if args.batch_size is not None:
            recipe = replace(recipe, batch_size=args.batch_size)
        if recipe.network not in nets:
            nets[recipe.network] = _build(recipe.network, args.width_mult)
        setups.append((step, make_setup(nets[recipe.network], recipe, spec=recipe.network + _width(args),
                                        **_run_config(args, options))))
    out = _out(args, "ablate")
    dataset, data_config, data = load_data(args.data, args.subset, args.test_subset)
    rows = []
    for step, setup in setups:
        setup = replace(setup, config={**setup.config, **data_config, **training_compute(setup, dataset)})
        recipe = setup.recipe
        _say(f"== step {replay.index(step)}: {recipe.title}", header(setup.config))
        seeds = range(args.seed, args.seed + args.runs)
        try:
            results = train_runs(setup, dataset, options, seeds, out / recipe.name, sys.stdout, data,
                                 args.command_line)
        except TrainError as e:  # the step's log says why; the other steps go on
            _say(f"step {recipe.name}: {e}")
            results = []
        acc = summarise([r.test_acc for r in results] or [float("nan")])
        seconds = summarise([r.train_time for r in results] or [float("nan")])
        rows.append({"step": recipe.name, "epochs": recipe.epochs, "runs": len(results),
                     "pflop": training_flops(setup.graphs.net, recipe.epochs, batch_size=recipe.batch_size) / 1e15,
                     "time_mean": seconds["mean"], "time_std": seconds["std"],
                     "acc_mean": acc["mean"], "acc_std": acc["std"], "acc_min": acc["min"], "acc_max": acc["max"],
                     "published_time": step.published_time, "published_acc": step.published_acc,
                     "published_on": step.published_on})
    _say("", f"ablation ({args.recipe}): train time and final test accuracy (mean ± std over runs); PFLOP of "
             "training on 50,000 images; published figures",
         table_header(ABLATION_COLUMNS), *(table_row(r, ABLATION_COLUMNS) for r in rows))
    write_tsv(rows, out / "ablate.tsv")
    write_json({"config": {**_run_config(args, options), **data_config, "replay": args.recipe,
                           "epochs_scale": args.epochs_scale}, "rows": rows}, out / "ablate.json")
    written = [out / "ablate.tsv", out / "ablate.json"]
    if plot_ablation(rows, out / "ablate.png"):
        written.append(out / "ablate.png")
    _say("written: " + ", ".join(map(str, written)))
    return 0
