"""Images/s of data-parallel training (1 process vs N gloo/NCCL processes) and of the streaming
data path against the on-device one, with graphnet's building blocks.

    PYTHONPATH=. .venv/bin/python benchmarks/distributed.py ddp    [--nproc 2] [--batch 128] [--steps 10]
    PYTHONPATH=. .venv/bin/python benchmarks/distributed.py stream [--images 2048] [--workers 1] [--source PATH]
    PYTHONPATH=. .venv/bin/python benchmarks/distributed.py train  [--images 2048] [--epochs 2] [--nproc 2] [--source PATH]

``ddp``: the compiled ResNet-9 (``--width-mult``, default 0.25) takes ``--steps`` timed steps of
Page's SGD (after 2 untimed) on a global batch of ``--batch`` random 32x32 images: once in one
process with all the cores' threads, then in ``--nproc`` processes (torchrun's environment made
by hand, gloo on the CPU, NCCL on CUDA) with ``batch / nproc`` images and ``cores / nproc``
threads each. It prints global images/s for both.

``stream``: ``--images`` class-balanced training images of a source (default the shared CIFAR-10
JPEG archive; ``--source``) served by DeviceData (decoded once, on the device) and by StreamData (read and
decoded every epoch by ``--workers`` DataLoader workers; an archive's bytes sit in memory, so
no disk is read), both cropping, flipping and cutting out on the device: images/s of one
epoch of batches alone, then of one epoch of training steps fed by each.

``train``: ``graphnet train`` itself (the default recipe, ``--epochs`` epochs, ``--images`` of the
source, ``--batch`` the global batch), in one process, with ``--nproc`` processes, and with
``--stream``, one after the other; each run's training images/s (its log's ``images_per_s``,
preprocessing and evaluation excluded), test accuracy, and wall time (start-up and data loading
included).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import time
from pathlib import Path

import torch
import torch.nn.functional as F

# ../shared/data beside the repository (or beside the worktrees' folder)
SOURCE = next((p / "shared/data/cifar10-jpeg.tar.gz" for p in Path(__file__).resolve().parents[2:4]
               if (p / "shared/data/cifar10-jpeg.tar.gz").is_file()), Path("shared/data/cifar10-jpeg.tar.gz"))


def network(width_mult: float, device: torch.device):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "specs"))
    import resnet9

    from graphnet import build
    from graphnet.compile import compile

    torch.manual_seed(0)
    return compile(build(resnet9.build(width_mult=width_mult))).to(device)


def steps_per_second(model, optimizer, batches, local_batch: int, sync=lambda: None) -> float:
    """Seconds of one training step per batch in ``batches`` (the first 2 untimed)."""
    from graphnet.train import set_lr

    start = None
    for i, (images, labels) in enumerate(batches):
        if i == 2:
            sync()
            start = time.perf_counter()
        loss = F.cross_entropy(model(images), labels, reduction="sum")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        set_lr(optimizer, 0.4, local_batch)
        optimizer.step()
    sync()
    return (i - 1) / (time.perf_counter() - start)


def _ddp_rank(rank: int, world: int, port: int, args: argparse.Namespace, out: dict) -> None:
    from graphnet.train import get_recipe, make_optimizer
    from graphnet.train.distributed import from_env, process_group, unwrap

    if world > 1:
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    with process_group(from_env(args.device)) as dist:
        model = dist.wrap(dist.broadcast_(network(args.width_mult, dist.device)))
        local = dist.local_batch(args.batch)
        recipe = dataclasses.replace(get_recipe("baseline"), batch_size=local)
        optimizer = make_optimizer(unwrap(model), recipe)
        generator = torch.Generator().manual_seed(dist.augment_seed(0))
        batches = [(torch.randn(local, 3, 32, 32, generator=generator).to(dist.device),
                    torch.randint(10, (local,), generator=generator).to(dist.device))] * (args.steps + 2)
        sync = (lambda: torch.cuda.synchronize(dist.device)) if dist.device.type == "cuda" else (lambda: None)
        rate = steps_per_second(model, optimizer, batches, local, sync)
        if dist.is_main:
            out[world] = rate * args.batch


def run_ddp(args: argparse.Namespace) -> None:
    import torch.multiprocessing as mp

    out = mp.Manager().dict()
    _ddp_rank(0, 1, 0, args, out)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_rank, args=(args.nproc, port, args, out), nprocs=args.nproc)
    print(f"global batch {args.batch}, ResNet-9 x{args.width_mult}, {args.steps} steps, device {args.device}")
    for world, rate in sorted(out.items()):
        print(f"  {world} process(es): {rate:.0f} images/s")


def run_stream(args: argparse.Namespace) -> None:
    from graphnet.data import Dataset, DeviceData
    from graphnet.data.imagefolder import image_shape, index_source, subset_source
    from graphnet.data.stream import StreamData, _Images
    from graphnet.train import get_recipe, make_optimizer

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    source = subset_source(index_source(args.source), train=args.images)
    decoded = _Images(source, "train", image_shape(source), encoded=False)
    images = torch.stack([decoded[i][0] for i in range(len(decoded))]).permute(0, 2, 3, 1).contiguous()
    empty = images[:0]
    dataset = Dataset(images, torch.tensor(source.labels["train"]), empty, torch.zeros(0, dtype=torch.int64),
                      source.classes)
    paths = {"on device": DeviceData(dataset, device),
             "streamed": StreamData(source, device, workers=args.workers)}
    print(f"{args.images} images of {args.source}, batch {args.batch}, device {device}, "
          f"{args.workers} worker(s), {torch.get_num_threads()} threads")
    for name, data in paths.items():
        generator = torch.Generator(device=device).manual_seed(0)
        list(data.train_batches(args.batch, generator, cutout=8))  # warm: workers started, pages touched
        start = time.perf_counter()
        n = sum(len(labels) for _, labels in data.train_batches(args.batch, generator, cutout=8))
        data_rate = n / (time.perf_counter() - start)
        model = network(args.width_mult, device)
        optimizer = make_optimizer(model, dataclasses.replace(get_recipe("baseline"), batch_size=args.batch))
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        rate = steps_per_second(model, optimizer, data.train_batches(args.batch, generator, cutout=8), args.batch, sync)
        print(f"  {name:9}: batches alone {data_rate:.0f} images/s; training {rate * args.batch:.0f} images/s")


def run_train(args: argparse.Namespace) -> None:
    import json
    import subprocess
    import sys
    import tempfile

    common = ["train", "--data", args.source, "--subset", str(args.images), "--batch-size", str(args.batch),
              "--width-mult", str(args.width_mult), "--epochs", str(args.epochs), "--device", args.device]
    print(f"graphnet train: {args.images} images of {args.source}, global batch {args.batch}, ResNet-9 "
          f"x{args.width_mult}, {args.epochs} epochs, device {args.device}")
    for name, extra in (("1 process", []), (f"{args.nproc} processes", ["--nproc", str(args.nproc)]),
                        ("streamed", ["--stream"])):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "graphnet.cli", *common, *extra, "--out", out, "--overwrite"],
                           check=True, capture_output=True)
            wall = time.perf_counter() - start
            result = json.loads((Path(out) / "log.json").read_text())["result"]
        print(f"  {name:12}: training {result['images_per_s']:.0f} images/s; test acc {result['test_acc']:.3f}; "
              f"{wall:.1f} s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("ddp", "stream", "train"))
    parser.add_argument("--source", default=str(SOURCE), help="stream: an ImageFolder folder or archive")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2, help="train: epochs of each run")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--width-mult", type=float, default=0.25)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args()
    {"ddp": run_ddp, "stream": run_stream, "train": run_train}[args.part](args)


if __name__ == "__main__":
    main()
