"""``graphnet eval``: a checkpoint's network rebuilt from its saved specs and evaluated again."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import add_spec_source_arguments, import_modules, positive_int
from .training import say


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="re-evaluate a checkpoint",
        description="Rebuild a checkpoint's network from its saved spec, load its weights and evaluate it "
                    "(with TTA if it was trained with it) on the test images it was trained with, normalised as "
                    "in training; the data's class names must be the checkpoint's.")
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a checkpoint.pt or the folder holding it")
    p.add_argument("--data", metavar="SOURCE", help="the data set (default: the one it was trained on)")
    p.add_argument("--test-subset", type=positive_int, metavar="N", help="evaluate N test images (default: as trained)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--batch-size", type=positive_int, default=512, metavar="B", help="evaluation batch size")
    add_spec_source_arguments(p, num_classes=False)
    p.set_defaults(run=run_eval)


def class_mismatch(trained: list[str], data: list[str]) -> str:
    """How the data's class names differ from those a network was trained on ('' when equal)."""
    if trained == data:
        return ""
    if len(trained) != len(data):
        return f"{len(trained)} in the checkpoint, {len(data)} in the data"
    k = next(i for i, (a, b) in enumerate(zip(trained, data)) if a != b)
    return f"class {k} is {trained[k]!r} in the checkpoint, {data[k]!r} in the data"


def run_eval(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..data import CIFAR10_MEAN, CIFAR10_STD, Dataset, DeviceData
    from ..data.load import data_sizes, load_data
    from ..data.memory import streamed_source
    from ..data.stream import StreamData
    from ..train import Options, TrainError, evaluate, load_checkpoint, loss_and_correct, rebuild, resolve_runtime

    import_modules(args)
    checkpoint = load_checkpoint(args.checkpoint)
    device = resolve_runtime(Options(device=args.device, precision="fp32")).device
    record = checkpoint["data"]
    source = args.data or record.get("source")
    if source is None:
        raise TrainError("the checkpoint does not record its data set: pass --data")
    _, eval_net, loss_net = rebuild(checkpoint)
    eval_net.to(device).eval()
    streamed, _ = streamed_source(source, device)  # a set too big to decode is streamed, as in training
    dataset, data_config, _ = load_data(source, record.get("subset"), args.test_subset or record.get("test_subset"),
                                        streamed=streamed)
    mismatch = class_mismatch(record.get("classes", dataset.classes), dataset.classes)
    if mismatch:
        raise TrainError(f"the classes of {source} are not the checkpoint's: {mismatch}")
    # the normalisation the network was trained with (checkpoints before it was recorded: CIFAR-10's)
    stats = {"mean": tuple(record.get("mean", CIFAR10_MEAN)), "std": tuple(record.get("std", CIFAR10_STD))}
    if streamed is not None:
        test = StreamData(replace(dataset, **stats), device)
    else:  # only the test split goes to the device
        d = dataset
        test = DeviceData(Dataset(d.train_images[:0], d.train_labels[:0], d.test_images, d.test_labels, d.classes,
                                  **stats), device)
    fn = loss_and_correct(eval_net, loss_net.to(device), device)
    loss, acc, seconds = evaluate(fn, test.test_batches(args.batch_size), device)
    last = checkpoint["log"][-1] if checkpoint["log"] else {}
    logged = last.get("tta_acc", last.get("test_acc", float("nan")))
    tta = " (TTA)" if checkpoint["tta"] else ""
    say(f"graphnet eval {args.checkpoint}", f"  data  {data_config['data']}; {data_config['subset']}",
        f"test acc {acc:.4f}{tta}, loss {loss:.4f}, {data_sizes(dataset)[1]} images in {seconds:.2f} s "
        f"on {device} (logged at the end of training: {logged:.4f})")
    return 0
