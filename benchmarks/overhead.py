"""Overhead of graphnet's generated code: compiled ResNet-9 (or airbench94) vs the same network written by hand.

Times forward + backward on CPU for both in one process, with the same weights and batch.
Each round warms both up, then times ``repeats`` steps of each, interleaved, with the
first model alternating between rounds; a round's ratio compares the best steps. The
report is the median over rounds of the compiled/hand-written ratio.

Run: python benchmarks/overhead.py [--net resnet9|airbench94] [--batch 64] [--rounds 7] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "specs"), str(ROOT / "benchmarks")]

import graphnet  # noqa: E402
import resnet9  # noqa: E402
from graphnet.zoo import airbench94  # noqa: E402
from handwritten import Airbench94, ResNet9  # noqa: E402

NETS = {"resnet9": (resnet9.net, ResNet9), "airbench94": (airbench94.net, Airbench94)}


def step_time(model: nn.Module, x: torch.Tensor) -> float:
    """Seconds for one forward + backward."""
    start = time.perf_counter()
    model(x).sum().backward()
    elapsed = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return elapsed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", choices=list(NETS), default="resnet9")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--repeats", type=int, default=3, help="timed steps per model per round (the best counts)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    spec, written = NETS[args.net]
    compiled = graphnet.compile(graphnet.build(spec))
    hand = written()
    hand.load_state_dict(compiled.state_dict())
    models = {"graphnet": compiled, "hand-written": hand}
    x = torch.randn(args.batch, 3, 32, 32)

    print(f"{args.net}: torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"best of {args.repeats} per round")
    ratios = []
    for r in range(args.rounds):
        names = list(models) if r % 2 == 0 else list(reversed(models))
        for name in names:
            step_time(models[name], x)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeats):  # interleaved, so a burst of load from elsewhere hits both
            for name in names:
                times[name].append(step_time(models[name], x))
        best = {name: min(t) for name, t in times.items()}
        ratios.append(best["graphnet"] / best["hand-written"])
        print(f"round {r + 1} ({names[0]} first): graphnet {best['graphnet'] * 1e3:7.1f} ms   "
              f"hand-written {best['hand-written'] * 1e3:7.1f} ms   ratio {ratios[-1]:.3f}")
    print(f"median ratio graphnet / hand-written: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
