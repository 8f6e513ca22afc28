"""``graphnet train`` on several processes and on streamed data: its options, the launch
under torchrun, and the choice between the on-device and the streaming data path."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .args import positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nproc", type=positive_int, metavar="N",
                   help="train in N processes on this machine, one per GPU (on the CPU: per core), started by "
                        "torchrun with DistributedDataParallel; --batch-size stays the global batch")
    p.add_argument("--sync-bn", action="store_true",
                   help="several processes: batch norm statistics over the global batch, not per process "
                        "(plain batch norms only: refused with ghost_bn)")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction,
                   help="stream an ImageFolder source through DataLoader workers instead of keeping it decoded "
                        "on the device (default: only when it would not fit)")


def launch_if_asked(args: argparse.Namespace, setup) -> int | None:
    """With ``--nproc N`` outside torchrun (no ``WORLD_SIZE``): check N, the batch's split over
    N processes, ``--sync-bn`` against the network and the output folder, run this command
    line less ``--nproc`` under torchrun and return its exit status. None when this process trains itself (no ``--nproc``,
    ``--nproc 1``, or a torchrun rank)."""
    from ..train import check_batch_size
    from ..train.distributed import DistributedError
    from ..train.launch import check_nproc, launch

    if args.nproc is None:
        return None
    if "WORLD_SIZE" in os.environ:
        raise DistributedError("--nproc starts torchrun itself: under torchrun leave it out")
    check_nproc(args.nproc, args.device)
    if args.nproc == 1:
        return None
    check_batch_size(setup.graphs.net, setup.recipe.batch_size, args.nproc)
    if args.sync_bn:
        from ..compile import compile
        from ..train.distributed import sync_batch_norm

        sync_batch_norm(compile(setup.graphs.net))  # DistributedError on ghost batch norm
    if args.out is not None:  # a refused folder is one line before anything starts
        from ..train import prepare_out

        prepare_out(args.out, args.overwrite)
    return launch(args.argv, args.nproc, args.device)


def describe(dist, recipe) -> dict[str, str]:
    """The header's ``processes`` entry when there are several."""
    if not dist.distributed:
        return {}
    backend = "NCCL" if dist.device.type == "cuda" else "gloo"
    local = dist.local_batch(recipe.batch_size)
    return {"processes": f"{dist.world_size} (DistributedDataParallel, {backend}), each {local} images of the "
                         f"batch of {recipe.batch_size} per step"}


def load_train_data(args: argparse.Namespace, options, dist) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """``load_data``'s ``(data, config entries, record)`` for ``graphnet train``: ``data`` a
    decoded Dataset, or an indexed Source to stream (``--stream``, or when
    :func:`~graphnet.data.stream.plan` finds that the decoded set would not fit: said in a
    note). Rank 0 loads first, so that the others read the decoded set from its cache."""
    import torch

    from ..data import DataError
    from ..data.stream import is_torchvision, streamed_source
    from ..train.loop import data_dtype
    from .train import load_data

    with dist.main_first():
        if args.stream and is_torchvision(args.data):
            raise DataError(f"--stream reads ImageFolder folders and archives, not torchvision's {args.data}: "
                            "leave it out")
        source, note = streamed_source(args.data, torch.device(options.device), data_dtype(options.precision),
                                       args.stream)
        loaded = load_data(args.data, args.subset, args.test_subset, streamed=source)
    if source is not None and args.stream is None and dist.is_main:
        print(f"graphnet train: note: {note}", file=sys.stderr, flush=True)
    return loaded
