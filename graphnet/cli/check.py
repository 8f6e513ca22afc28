"""``graphnet check PASS SPEC``: whether a rewrite pass keeps what it declares (exact, eval, changes) on SPEC."""

from __future__ import annotations

import argparse

from .args import add_graph_arguments, graph_from_args, parse_rewrite, parse_shape, positive_int


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("check", help="check that a rewrite pass keeps what it declares, on random inputs",
                              description="Apply PASS to SPEC (after the --rewrite passes) and check its contract "
                                          "on random inputs, with random weights carried over by node path and "
                                          "the pass's state map: 'exact' passes give the same outputs in train "
                                          "and eval mode, 'eval' passes in eval mode, 'changes' passes keep the "
                                          "output shape. Applying PASS again must be refused or change nothing. "
                                          "A failure names the first node whose output differs; exit status 1.")
    p.add_argument("pass_", type=parse_rewrite, metavar="PASS", help="the pass to check: NAME or NAME:k=v,...")
    add_graph_arguments(p)
    p.add_argument("--input-shape", type=parse_shape, default=(3, 32, 32), metavar="C,H,W",
                   help="the random inputs' shape without the batch dim (default: 3,32,32)")
    p.add_argument("--batch", type=positive_int, default=2, metavar="N", help="images per random batch (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (default: 0)")
    p.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    from ..rewrites import check

    name, params = (args.pass_, {}) if isinstance(args.pass_, str) else args.pass_
    result = check(graph_from_args(args), name, params, input_shape=args.input_shape, batch=args.batch,
                   seed=args.seed)
    print(f"{args.spec}: {result}")
    return 0 if result.ok else 1
