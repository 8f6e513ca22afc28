"""The optimizer step as a share of a training step on the CPU, and SGD's three kernels side by side.

    PYTHONPATH=. python benchmarks/optimizer_step.py [--batch-size 2000] [--steps 2] [--repeats 10]

airbench94_muon's network at full width (fp32, contiguous) takes ``--steps`` forward + backward
passes of a random batch of ``--batch-size`` (airbench94_muon's 2,000); its optimizers (Muon for
the conv filters, with Newton–Schulz; Nesterov SGD for the rest, as ``make_optimization`` makes
them) then step ``--repeats`` times on the last gradients. The SGD rows step airbench94's
decoupled SGD over all of airbench94's params with the per-param loop, foreach and fused
kernels, alternating within each repeat. Each figure is the median; the share is of a training
step (forward + backward + the optimizer step).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def network(recipe_name: str):
    from graphnet import build, compile
    from graphnet.spec_source import load_spec
    from graphnet.train import get_recipe, make_setup

    recipe = get_recipe(recipe_name)
    graphs = make_setup(build(load_spec(recipe.network)), recipe).graphs
    return recipe, compile(graphs.net), compile(graphs.loss)


def main() -> None:
    from graphnet.rewrites import param_groups
    from graphnet.train import make_optimization
    from graphnet.train.decoupled import Decoupled

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    recipe, net, loss = network("airbench94_muon")
    x = torch.randn(args.batch_size, 3, 32, 32)
    y = torch.randint(10, (args.batch_size,))
    optimization = make_optimization(net, recipe, args.batch_size)
    optimization.schedule(1.0, 0.0)

    def backward() -> None:
        optimization.zero_grad()
        loss(net(x), y).sum().backward()

    backward()  # first calls
    passes = [seconds(backward) for _ in range(args.steps)]
    sgd, muon = optimization.optimizers
    step = {"Muon (filters)": [], "SGD (the rest)": []}
    for _ in range(args.repeats):
        step["Muon (filters)"].append(seconds(muon.step))
        step["SGD (the rest)"].append(seconds(sgd.step))
    forward_backward = statistics.median(passes)
    both = sum(statistics.median(t) for t in step.values())
    train_step = forward_backward + both
    print(f"\nairbench94_muon, batch {args.batch_size}: forward + backward {forward_backward:.2f} s\n")
    print("| optimizer step | ms (median) | share of a training step |\n|---|---|---|")
    for name, times in step.items():
        print(f"| {name} | {1000 * statistics.median(times):.1f} | {statistics.median(times) / train_step:.2%} |")
    print(f"| both | {1000 * both:.1f} | {both / train_step:.2%} |")

    recipe, net, loss = network("airbench94")
    loss(net(x[:256]), y[:256]).sum().backward()
    groups = Decoupled(**recipe.optimizer_params, batch_size=recipe.batch_size).groups(param_groups(net))
    kernels = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    sgds = {name: torch.optim.SGD([{**g, "params": list(g["params"])} for g in groups], lr=0.0, momentum=0.85,
                                  nesterov=True, **kw) for name, kw in kernels.items()}
    times = {name: [] for name in sgds}
    for _ in range(args.repeats + 1):  # the first fills the momentum buffers
        for name, opt in sgds.items():
            times[name].append(seconds(opt.step))
    print(f"\n| SGD over airbench94's {sum(len(g['params']) for g in groups)} params | ms (median) |\n|---|---|")
    for name, t in times.items():
        print(f"| {name} | {1000 * statistics.median(t[1:]):.2f} |")


if __name__ == "__main__":
    main()
