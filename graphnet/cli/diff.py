"""``graphnet diff A [B] [--rewrite P ...]``: what changes from spec A to spec B (default: A itself)
with the passes applied, as a short change log. ``graphnet render --diff`` draws the same pair."""

from __future__ import annotations

import argparse

from ..diff import diff
from ..errors import SpecError
from ..graph import Graph
from .args import add_graph_arguments, graph_from_args


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("diff", help="print what changes from one spec to another, or under rewrites",
                              description="Compare spec A (as written) with spec B (default: A) after the "
                                          "--rewrite passes, node by node: + added, - removed, ~ changed.")
    add_graph_arguments(p)
    p.add_argument("other", nargs="?", metavar="B", help="the spec to compare with (default: A itself)")
    p.set_defaults(run=run_diff)


def run_diff(args: argparse.Namespace) -> int:
    print(diff(*sides(args, args.other)))
    return 0


def sides(args: argparse.Namespace, other: str | None) -> tuple[Graph, Graph]:
    """(before, after): the spec as written, and ``other`` (default: the spec) with the ``--rewrite`` passes."""
    before = graph_from_args(argparse.Namespace(**{**vars(args), "rewrite": []}))
    if other is None and not args.rewrite:
        raise SpecError("nothing to compare: give a second spec or --rewrite passes")
    after = graph_from_args(argparse.Namespace(**{**vars(args), "spec": other or args.spec}))
    return before, after
