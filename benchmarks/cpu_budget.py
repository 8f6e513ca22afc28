"""The final recipe on the CPU at a small budget, and the trainer's speed against a plain loop.

    PYTHONPATH=. python benchmarks/cpu_budget.py [--data PATH] [--subset 10000] [--epochs 3] [--width-mult 0.25]

Trains the final bag-of-tricks recipe (reduced width, a class-balanced subset, fewer
epochs, lr knots scaled) with graphnet's trainer and reports its test accuracy (with TTA)
and training images/s (augmentation, EMA and bookkeeping included; preprocessing and
evaluation excluded). Then times a hand-written minimal loop on the same compiled network
and batch size: plain ``torch.optim.SGD``, the normalised images already on the device as
one tensor, sliced into batches, no augmentation, no EMA. The plain loop is timed for two
epochs' worth of steps before and after the trainer (the machine's speed may drift), and
the ratio uses their mean.

The default data is the shared CIFAR-10 JPEG archive beside the repository; accuracies
on it run below the original CIFAR-10's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared/data/cifar10-jpeg.tar.gz"


def plain_loop_images_per_s(network: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                            batch_size: int, steps: int, warmup: int = 2) -> float:
    """Training images/s of a minimal loop (forward, summed smoothed cross-entropy, backward,
    SGD) over ``steps`` steps after ``warmup`` untimed ones."""
    params = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.4 / batch_size, momentum=0.9, nesterov=True,
                                weight_decay=5e-4 * batch_size)
    batches = len(images) // batch_size
    network.train()

    def step(i: int) -> None:
        x = images[i * batch_size:(i + 1) * batch_size]
        y = labels[i * batch_size:(i + 1) * batch_size]
        loss = F.cross_entropy(network(x), y, reduction="sum", label_smoothing=0.2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(warmup):  # the network's checked first call; allocator and oneDNN caches
        step(i % batches)
    start = time.perf_counter()
    for i in range(steps):
        step(i % batches)
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    from graphnet import build, compile
    from graphnet.data import DeviceData, load_dataset
    from graphnet.spec_source import load_spec
    from graphnet.train import Options, Trainer, get_recipe, make_setup
    from graphnet.train.log import table_header, table_row
    from graphnet.train.runner import header

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--subset", type=int, default=10_000, help="training images (default 10000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the final recipe (default 3)")
    parser.add_argument("--width-mult", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    full = load_dataset(args.data, progress=False)
    load_time = time.perf_counter() - start
    dataset = full.subset(train=args.subset, test=args.subset // 5)
    recipe = get_recipe("bag_of_tricks").with_epochs(args.epochs)
    spec = ROOT / "specs" / "bag_of_tricks.py"
    net = build(load_spec(spec, width_mult=args.width_mult))
    setup = make_setup(net, recipe, spec=f"specs/bag_of_tricks.py (width x{args.width_mult:g})",
                       net_passes_in_spec=True, threads=torch.get_num_threads(),
                       data=f"{args.data} (loaded from the cache in {load_time:.1f} s)",
                       subset=f"{len(dataset.train_images)} train, {len(dataset.test_images)} test images")
    print("cpu budget: the final recipe with graphnet's trainer", header(setup.config), sep="\n", flush=True)

    data = DeviceData(dataset, "cpu")
    images, labels = data.raw_train_images().contiguous(), data.train_labels
    steps = 2 * data.num_train_batches(recipe.batch_size)  # two epochs' worth

    def plain() -> float:
        torch.manual_seed(args.seed)
        return plain_loop_images_per_s(compile(setup.graphs.net), images, labels, recipe.batch_size, steps)

    before = plain()
    print(f"plain loop (before): {before:.1f} images/s over {steps} steps", flush=True)
    trainer = Trainer(setup.graphs, recipe, dataset, Options(device="cpu"))
    print(table_header(), flush=True)
    result = trainer.run(args.seed, on_epoch=lambda row: print(table_row(row), flush=True))
    after = plain()
    print(f"plain loop (after): {after:.1f} images/s over {steps} steps")
    plain_mean = statistics.fmean([before, after])
    print(f"trainer: test acc {result.test_acc:.4f} (TTA) after {recipe.epochs} epochs, "
          f"{result.images_per_s:.1f} train images/s, train time {result.train_time:.1f} s")
    print(f"plain loop: {plain_mean:.1f} images/s (mean of {before:.1f}, {after:.1f}); "
          f"trainer / plain loop = {result.images_per_s / plain_mean:.3f}")


if __name__ == "__main__":
    main()
