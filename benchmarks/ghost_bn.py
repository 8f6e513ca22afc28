"""Ghost batch norm's methods, forward + backward of one layer, side by side with plain batch norm.

    PYTHONPATH=. python benchmarks/ghost_bn.py [--shape 512,128,32,32] [--splits 16] [--reps 5] [--device cpu]

For each dtype (fp32, bf16) × memory format (contiguous, channels_last), times
``GhostBatchNorm`` with each ``method`` and ``nn.BatchNorm2d`` on the same batch (the shape of
bag_of_tricks' first residual layer at batch 512), the methods alternating within each of
``--reps`` rounds; prints the median milliseconds, the ratio to plain batch norm, and which
method ``'auto'`` takes there.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from graphnet.rewrites.ghost_bn import GhostBatchNorm

METHODS = [m for m in GhostBatchNorm.METHODS if m != "auto"]


def forward_backward(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> float:
    x = x.detach().requires_grad_()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    module(x).backward(grad)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="512,128,32,32", help="N,C,H,W")
    parser.add_argument("--splits", type=int, default=16)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    n, c, h, w = map(int, args.shape.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}, batch {n}x{c}x{h}x{w}, "
          f"{args.splits} ghost batches; median of {args.reps} rounds after one untimed")
    print("\n| dtype | memory format | method | ms (fwd + bwd) | × batch norm |\n|---|---|---|---|---|")
    for dtype in (torch.float32, torch.bfloat16):
        for fmt_name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
            x = torch.randn(n, c, h, w, device=args.device, dtype=dtype).contiguous(memory_format=fmt)
            grad = torch.randn_like(x)
            modules = {"batch norm": nn.BatchNorm2d(c)}
            modules.update({m: GhostBatchNorm(c, args.splits, method=m) for m in METHODS})
            modules = {name: m.to(args.device) for name, m in modules.items()}
            times: dict[str, list[float]] = {name: [] for name in modules}
            for rep in range(args.reps + 1):
                for name, module in modules.items():
                    t = forward_backward(module, x, grad)
                    if rep:
                        times[name].append(t)
            auto = GhostBatchNorm(c, args.splits).method_for(x)
            base = statistics.median(times["batch norm"])
            for name, ts in times.items():
                mark = " (auto)" if name == auto else ""
                t = statistics.median(ts)
                print(f"| {str(dtype).removeprefix('torch.')} | {fmt_name} | {name}{mark} | {1000 * t:.1f} | "
                      f"{t / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
