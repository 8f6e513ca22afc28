"""Draw a Graph with Graphviz: namespaces as nested clusters, one edge per node input.

``to_dot`` builds a ``pydot.Dot``; ``render`` writes it as .dot (text, no layout engine),
.svg or .png. Layout needs a ``dot`` program: the system's Graphviz if it is on PATH, else
the one the pip package ``graphviz-pure`` installs beside the Python executable. pydot is
imported only when a drawing is made.
"""

from __future__ import annotations

import colorsys
import hashlib
import inspect
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .graph import Graph, Node
from .ops import get_op
from .spec import SEP, namespaces

if TYPE_CHECKING:
    import pydot

# Fill colours of the built-in ops; any other op gets one from a hash of its name.
PALETTE = {
    "conv": "#9ecae1",
    "linear": "#bcbddc",
    "batch_norm": "#fdd49e",
    "relu": "#c7e9c0",
    "celu": "#c7e9c0",
    "gelu": "#c7e9c0",
    "max_pool": "#fdae6b",
    "add": "#fcbba1",
    "add_weighted": "#fcbba1",
    "concat": "#fcbba1",
    "identity": "#f0f0f0",
    "flatten": "#d9d9d9",
    "mul": "#d9d9d9",
    "flip_lr": "#d9d9d9",
    "log_softmax": "#e5c4de",
    "nll": "#e5c4de",
    "neg_mean": "#e5c4de",
}
INPUT_COLOUR = "#525252"
FORMATS = (".dot", ".svg", ".png")
ENGINES = ("dot", "graphviz-pure")


class RenderError(RuntimeError):
    """No layout engine, or it failed, or the output format is not one of FORMATS."""


def op_colour(op: str) -> str:
    """The fill colour of ``op``: from PALETTE, else a pastel hue from an MD5 of the name (stable across runs)."""
    if op in PALETTE:
        return PALETTE[op]
    hue = int.from_bytes(hashlib.md5(op.encode()).digest()[:4], "big") / 2**32
    r, g, b = colorsys.hsv_to_rgb(hue, 0.3, 0.95)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def op_label(node: Node) -> str:
    """The op with its key params: ``conv 64→128``, ``max_pool 4``, ``linear 512→10 bias=False``.

    ``c_in``/``c_out`` read as an arrow; the op's first param is shown bare; other params
    only where they differ from the op's default.
    """
    signature = get_op(node.op).signature.parameters
    params = dict(node.params)
    parts = []
    if "c_in" in params and "c_out" in params:
        parts.append(f"{params.pop('c_in')}→{params.pop('c_out')}")
    first = next(iter(signature), None)
    if first in params:
        parts.append(_value(params.pop(first)))
    for name, value in params.items():
        default = signature[name].default if name in signature else inspect.Parameter.empty
        if value != default:
            parts.append(f"{name}={_value(value)}")
    return " ".join([node.op, *parts])


def _value(value: Any) -> str:
    return "×".join(map(str, value)) if isinstance(value, tuple) else str(value)


def to_dot(graph: Graph, shapes: Mapping[str, Any] | None = None) -> pydot.Dot:
    """The graph as a ``pydot.Dot``; ``shapes`` (``Summary.shapes``) labels each edge with its tensor's shape."""
    import pydot

    dot = pydot.Dot("graphnet", graph_type="digraph", rankdir="TB", nodesep="0.25", ranksep="0.3",
                    fontname="Helvetica", fontsize="11")
    dot.set_node_defaults(fontname="Helvetica", fontsize="10", shape="box", style="rounded,filled")
    dot.set_edge_defaults(fontname="Helvetica", fontsize="8", color="#555555")
    clusters: dict[str, Any] = {"": dot}
    for node in graph.nodes:
        for ns in namespaces(node.path):
            if ns not in clusters:
                cluster = pydot.Cluster(ns, label=ns.rpartition(SEP)[2], style="rounded", color="#999999",
                                        fontcolor="#333333")
                clusters[ns.rpartition(SEP)[0]].add_subgraph(cluster)
                clusters[ns] = cluster

    for name in graph.inputs:
        dot.add_node(pydot.Node(_id(name), label=name, shape="invhouse", style="filled", fillcolor=INPUT_COLOUR,
                                fontcolor="white"))
    for node in graph.nodes:
        label = op_label(node)
        if node.name != node.op:
            label = f"{node.name}\n{label}"
        attrs = {"label": label, "fillcolor": op_colour(node.op), "tooltip": node.path}
        if node.path == graph.output:
            attrs["peripheries"] = "2"
        clusters[node.namespace].add_node(pydot.Node(_id(node.path), **attrs))
        for src in node.inputs:
            edge = {"label": _shape_label(shapes[src])} if shapes is not None and shapes.get(src) else {}
            dot.add_edge(pydot.Edge(_id(src), _id(node.path), **edge))
    return dot


def _id(path: str) -> str:
    """A quoted DOT id, so that paths like 'graph' or 'node' are not read as keywords."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shape_label(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def find_engine(prog: str | None = None) -> str:
    """The full path of the layout program: ``prog`` ('dot' or 'graphviz-pure'), else the first found."""
    if prog is not None and prog not in ENGINES:
        raise RenderError(f"unknown layout engine {prog!r}; use one of {', '.join(ENGINES)}")
    for name in (prog,) if prog else ENGINES:
        found = shutil.which("dot") if name == "dot" else _graphviz_pure()
        if found:
            return found
    wanted = f"the {prog!r} layout engine" if prog else "a Graphviz layout engine"
    raise RenderError(f"{wanted} was not found: install Graphviz (the `dot` program, e.g. "
                      "`apt-get install graphviz`) or `pip install graphviz-pure`")


def _graphviz_pure() -> str | None:
    """The ``graphviz-pure`` program: beside this Python (an unactivated venv), in its scripts dir, or on PATH."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "graphviz-pure"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("graphviz-pure")


def render(graph: Graph, path: str | Path, shapes: Mapping[str, Any] | None = None,
           prog: str | None = None) -> Path:
    """Write ``graph`` to ``path`` (making its folder): .dot (no layout engine needed), .svg or .png.

    ``prog`` forces the layout engine: 'dot' (system Graphviz) or 'graphviz-pure'. Returns ``path``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise RenderError(f"cannot write {path.name}: the output must end in {', '.join(FORMATS)}")
    dot = to_dot(graph, shapes)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".dot":
        path.write_text(dot.to_string(), encoding="utf-8")
    else:
        path.write_bytes(_layout(dot, suffix[1:], prog))
    return path


def to_svg(graph: Graph, shapes: Mapping[str, Any] | None = None, prog: str | None = None) -> str:
    """The drawing as SVG text (what ``Graph._repr_svg_`` shows in a notebook)."""
    return _layout(to_dot(graph, shapes), "svg", prog).decode()


def _layout(dot: pydot.Dot, fmt: str, prog: str | None) -> bytes:
    engine = find_engine(prog)
    try:
        return dot.create(prog=engine, format=fmt, encoding="utf-8")
    except AssertionError as e:  # pydot reports a failed run as an AssertionError
        raise RenderError(f"{engine} failed: {e}") from None
