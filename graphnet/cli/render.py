"""``graphnet render`` (draw a spec) and ``graphnet summary`` (its shapes, params, FLOPs and memory)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..render import RANKDIRS
from ..summary import summary
from .args import add_graph_arguments, graph_from_args, parse_shape, positive_int
from .diff import sides


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("render", help="draw a spec as .svg, .png, .dot or interactive .html",
                              description="Draw a spec: namespaces as nested boxes, one arrow per input.")
    add_graph_arguments(p)
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="output .svg, .png, .dot or .html (interactive: click a namespace to collapse it, "
                        "hover a node for its details; default: <spec name>.svg here)")
    p.add_argument("--diff", nargs="?", const="", metavar="B",
                   help="draw what changes from SPEC as written to B (default: SPEC) with the --rewrite passes")
    p.add_argument("--rankdir", choices=RANKDIRS, default="TB", help="TB: top to bottom (default); LR: left to right")
    p.add_argument("--depth", type=positive_int, metavar="N",
                   help="draw each namespace N levels down as one box (name, nodes, params, FLOPs)")
    p.add_argument("--fold", action="store_true",
                   help="fold runs of identical sibling blocks (layer1/0, layer1/1, ...) into one box marked ×N")
    p.add_argument("--shapes", action="store_true", help="label the edges with tensor shapes")
    p.add_argument("--summary", action="store_true", help="also print the summary table")
    _add_input_shape(p)
    p.add_argument("--engine", choices=("dot", "graphviz-pure"),
                   help="layout program (default: system dot if installed, else graphviz-pure)")
    p.set_defaults(run=run_render)

    p = subparsers.add_parser("summary", help="print each node's output shape, params, FLOPs and memory",
                              description="Print each node's output shape, parameter count, FLOPs, output bytes and "
                                          "parameter bytes, and torchinfo's memory sizes in total.")
    add_graph_arguments(p)
    _add_input_shape(p)
    p.set_defaults(run=run_summary)


def _add_input_shape(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", type=parse_shape, default=(3, 32, 32), metavar="C,H,W",
                   help="the input's shape without the batch dim (default: 3,32,32)")
    p.add_argument("--batch", type=positive_int, default=1, metavar="N", help="batch size the FLOPs count (default: 1)")


def run_render(args: argparse.Namespace) -> int:
    from ..diff import diff
    from ..render import render

    graphs = sides(args, args.diff or None) if args.diff is not None else (graph_from_args(args),)
    output = args.output or Path(f"{_stem(args.spec)}.svg")
    needed = args.shapes or args.summary or args.depth or output.suffix.lower() == ".html"
    tables = [summary(g, (args.batch, *args.input_shape)) for g in graphs] if needed else None
    if tables and args.summary:
        print(tables[-1])
    source = diff(*graphs) if len(graphs) == 2 else graphs[0]
    shapes = {k: v for t in tables for k, v in t.shapes.items()} if tables and args.shapes else None
    render(source, output, shapes=shapes, prog=args.engine, summary=tables, rankdir=args.rankdir, depth=args.depth,
           fold=args.fold)
    print(output)
    return 0


def run_summary(args: argparse.Namespace) -> int:
    print(summary(graph_from_args(args), (args.batch, *args.input_shape)))
    return 0


def _stem(source: str) -> str:
    """A file name for a spec: the file's stem, or the module's last part for module:attr."""
    if source.endswith((".py", ".json")) or ":" not in source:
        return Path(source).stem
    return source.split(":", 1)[0].rpartition(".")[2]
