"""The trainer's step time on the CPU in each precision × memory format, side by side.

    PYTHONPATH=. python benchmarks/cpu_speed.py [--recipes airbench94,bag_of_tricks] [--steps 4] [--rounds 2]

For each recipe (its own network at full width, its batch size), trains ``--steps`` timed
steps after one untimed epoch of the same length, on random images of CIFAR-10's shape, in
each of fp32 / bf16 × contiguous / channels_last, and prints the mean seconds per step and the
ratio to fp32 + contiguous (graphnet's CPU default before bf16 came to the CPU). The
configurations alternate within each of ``--rounds`` rounds, so a drift in the machine's
speed touches them all alike; the table gives each configuration's median over the rounds.
``auto`` is what ``--precision auto`` and ``--channels-last`` (unset) resolve to here.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

CONFIGS = [(p, m) for p in ("fp32", "bf16") for m in ("contiguous", "channels_last")]


def random_dataset(n_train: int, n_test: int, size: int = 32, classes: int = 10, seed: int = 0):
    from graphnet.data import Dataset

    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randint(256, (n, size, size, 3), generator=g, dtype=torch.uint8),
                torch.randint(classes, (n,), generator=g))

    return Dataset(*split(n_train), *split(n_test), [str(i) for i in range(classes)])


def seconds_per_step(recipe_name: str, precision: str, memory_format: str, steps: int) -> float:
    """Seconds per training step of ``recipe_name`` (second epoch of ``steps`` steps)."""
    from graphnet import build
    from graphnet.spec_source import load_spec
    from graphnet.train import Options, Trainer, get_recipe, make_setup

    recipe = get_recipe(recipe_name).with_epochs(2)
    setup = make_setup(build(load_spec(recipe.network)), recipe)
    dataset = random_dataset(steps * recipe.batch_size, 100)
    trainer = Trainer(setup.graphs, recipe, dataset,
                      Options(device="cpu", precision=precision, memory_format=memory_format, progress=False))
    rows = trainer.run(0).rows
    return rows[1]["train_time"] / steps


def auto_choice() -> tuple[str, str]:
    """What ``--precision auto`` and an unset ``--channels-last`` resolve to here."""
    from graphnet.train import Options, resolve_runtime

    runtime = resolve_runtime(Options(device="cpu"))
    return runtime.precision, "channels_last" if runtime.memory_format == torch.channels_last else "contiguous"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="airbench94,bag_of_tricks")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    auto = auto_choice()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}; auto: {auto[0]} + {auto[1]}", flush=True)
    times: dict[tuple[str, str, str], list[float]] = {}
    start = time.perf_counter()
    for round_ in range(args.rounds):
        for recipe in args.recipes.split(","):
            for config in CONFIGS:
                t = seconds_per_step(recipe, *config, args.steps)
                times.setdefault((recipe, *config), []).append(t)
                print(f"round {round_ + 1} {recipe:14s} {config[0]} {config[1]:13s} {t:7.3f} s/step "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    print("\n| recipe | precision | memory format | s/step (median) | × fp32 + contiguous |\n|---|---|---|---|---|")
    for recipe in args.recipes.split(","):
        base = statistics.median(times[(recipe, "fp32", "contiguous")])
        for config in CONFIGS:
            t = statistics.median(times[(recipe, *config)])
            mark = " (auto)" if config == auto else ""
            print(f"| {recipe} | {config[0]} | {config[1]}{mark} | {t:.3f} | {t / base:.2f} |")


if __name__ == "__main__":
    main()
