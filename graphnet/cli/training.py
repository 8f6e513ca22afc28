"""What ``graphnet train`` and ``graphnet ablate`` share: their run options (read into
:class:`~graphnet.train.Options`), the header lines those resolve to, the output folder, and
the network built from a spec."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from .args import positive_float, positive_int


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("the output folder is empty: give a folder")
    return Path(text)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The data, runs, device and output options of a training command."""
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
                   help="auto: bf16 autocast on CUDA, fp32 on the CPU (bf16 runs there too); fp16 (CUDA): as Page, "
                        "batch norms in fp32")
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


def build_net(spec: str, width_mult: float | None, num_classes: int | None = None):
    from ..graph import build
    from ..spec_source import load_spec

    kwargs = {k: v for k, v in (("width_mult", width_mult), ("num_classes", num_classes)) if v is not None}
    return build(load_spec(spec, **kwargs))


def width_note(args: argparse.Namespace) -> str:
    """The spec's note in the header: `` (width x0.125)``, or nothing."""
    return f" (width x{args.width_mult:g})" if args.width_mult is not None else ""


def say(*lines: str) -> None:
    print(*lines, sep="\n", flush=True)
