"""``graphnet export SPEC [--rewrite ...] -o FILE``: the network as a standalone .py file, a
torch.export program (.pt2) or ONNX (.onnx), by ``graphnet.export``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..export import export
from .args import add_graph_arguments, graph_from_args, parse_shape, positive_int


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="write the network as PyTorch source (.py), torch.export (.pt2) or ONNX",
                              description="Write the network, with the --rewrite passes, out of graphnet: .py is a "
                                          "standalone PyTorch file (no graphnet needed) whose Network loads the "
                                          "compiled graph's state_dict; .pt2 and .onnx are the eval-mode program "
                                          "traced at the input shape, with fresh weights.")
    add_graph_arguments(p)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="output .py, .pt2 or .onnx")
    p.add_argument("--input-shape", type=parse_shape, default=(3, 32, 32), metavar="C,H,W",
                   help="the input's shape without the batch dim, for .pt2 and .onnx (default: 3,32,32)")
    p.add_argument("--batch", type=positive_int, default=1, metavar="N",
                   help="the batch size .pt2 and .onnx are traced at (default: 1)")
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    print(export(graph_from_args(args), args.output, input_shape=(args.batch, *args.input_shape)))
    return 0
