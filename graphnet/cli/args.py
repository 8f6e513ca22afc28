"""Arguments the commands share: a spec, its build options and rewrite passes -> a Graph."""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from typing import Any

from ..errors import SpecError
from ..graph import Graph, build
from ..spec_source import load_spec

SPEC_HELP = ("a Python file defining `net` or `build()`, module:attr (a spec or an nn.Module), a JSON spec, "
             "torchvision:NAME or timm:NAME (a torchvision.models or timm network, traced)")


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _int_at_least(text: str, minimum: int) -> int:
    value = int(text)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text}: must be at least {minimum}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: must be a finite number greater than 0")
    return value


def accuracy(text: str) -> float:
    """An accuracy as a fraction: above 0, at most 1 (0.94, not 94)."""
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: an accuracy is a fraction above 0 and at most 1, e.g. 0.94")
    return value


def pass_name(text: str) -> str:
    """``text`` if it names a registered pass (for ``--without``)."""
    from ..rewrites import RewriteError
    from ..rewrites.registry import get_pass

    try:
        return get_pass(text).name
    except RewriteError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_rewrite(text: str) -> str | tuple[str, dict[str, Any]]:
    """``NAME`` -> ``'NAME'``; ``NAME:k=v,k2=v2`` -> ``('NAME', {'k': v, 'k2': v2})``.

    Values are read with ``ast.literal_eval`` (``0.2``, ``(1, 2)``, ``'a,b'``; ``none`` is None),
    else kept as strings. Commas inside brackets or quotes do not split.
    """
    name, colon, rest = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"{text!r}: a rewrite is NAME or NAME:key=value,...")
    if not colon:
        return name
    params: dict[str, Any] = {}
    for item in _split_top_level(rest):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise argparse.ArgumentTypeError(f"{text!r}: {item!r} is not key=value")
        params[key.strip()] = _literal(value.strip())
    return name, params


def _literal(text: str) -> Any:
    if text.lower() == "none":  # an optional param left out: `final_scale=none`
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and quotes; empty items dropped."""
    items, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(text):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item for item in items if item.strip()]


def parse_shape(text: str) -> tuple[int, ...]:
    """``3,32,32`` -> ``(3, 32, 32)``."""
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a shape is positive integers separated by commas")
    return shape


def add_graph_arguments(parser: argparse.ArgumentParser) -> None:
    """SPEC, ``--width-mult``, ``--num-classes``, ``--import`` and ``--rewrite``: what ``graph_from_args`` reads."""
    parser.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    parser.add_argument("--width-mult", type=positive_float, metavar="F",
                        help="passed to the spec's build(width_mult=F)")
    add_spec_source_arguments(parser)
    parser.add_argument("--rewrite", type=parse_rewrite, action="append", default=[], metavar="NAME[:k=v,...]",
                        help="apply a rewrite pass to the network (repeatable, applied in order)")


def add_spec_source_arguments(parser: argparse.ArgumentParser, num_classes: bool = True) -> None:
    """``--import MODULE`` (repeatable) and, with ``num_classes``, ``--num-classes N``."""
    if num_classes:
        parser.add_argument("--num-classes", type=positive_int, metavar="N",
                            help="passed to the spec's build(num_classes=N) or the torchvision or timm builder")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first, to register the ops a JSON spec or checkpoint uses (repeatable; "
                             "loading a spec never imports on its own)")


def import_modules(args: argparse.Namespace) -> None:
    """Import the ``--import`` modules; a missing one is a SpecError."""
    for name in args.imports:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            raise SpecError(f"--import {name}: no module named {e.name!r}") from None


def spec_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The build options given on the command line: ``width_mult``, ``num_classes``."""
    return {k: v for k in ("width_mult", "num_classes") if (v := getattr(args, k, None)) is not None}


def graph_from_args(args: argparse.Namespace) -> Graph:
    """The spec built into a Graph, with the ``--rewrite`` passes that apply to a network.

    Passes for the loss or evaluation graph (``label_smoothing``, ``tta_flip``) are skipped
    with a note on stderr.
    """
    import_modules(args)
    graph = build(load_spec(args.spec, **spec_kwargs(args)))
    if args.rewrite:
        from ..rewrites import NoMatchError, rewrite, split_passes
        passes = split_passes(args.rewrite)
        skipped = [p if isinstance(p, str) else p[0] for p in passes["loss"] + passes["eval"]]
        if skipped:
            print(f"graphnet {args.command}: note: skipped passes for the loss or eval graph: {', '.join(skipped)}",
                  file=sys.stderr)
        try:
            graph = rewrite(graph, passes["net"])
        except NoMatchError as e:
            raise NoMatchError(e.pass_name, f"{e.message}; drop --rewrite {e.pass_name} for this spec", e.path) from None
    return graph
