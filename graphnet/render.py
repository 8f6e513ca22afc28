"""Draw a Graph, or a diff of two, with Graphviz: namespaces as nested clusters, one edge per node input.

``to_dot`` builds a ``pydot.Dot`` from a ``View`` (graphnet.view); ``render`` writes it as
.dot (text, no layout engine), .svg or .png, or writes the interactive .html view (graphnet.html,
laid out in the browser). Layout needs a ``dot`` program: the system's Graphviz if it is on
PATH, else the one the pip package ``graphviz-pure`` installs beside the Python executable.
pydot is imported only when a drawing is made.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .diff import GraphDiff
from .graph import Graph
from .html import to_html
from .labels import op_label, shape_label  # noqa: F401  (graphnet.render.op_label, as before)
from .summary import Summary
from .view import View, at_depth, collapse, op_colour, view

if TYPE_CHECKING:
    import pydot

INPUT_COLOUR = "#525252"
FORMATS = (".dot", ".svg", ".png", ".html")
ENGINES = ("dot", "graphviz-pure")


class RenderError(RuntimeError):
    """No layout engine, or it failed, or the output format is not one of FORMATS."""


# diff styles: border, line style and text colour of added, removed and changed items and edges
STATUS_STYLE = {
    "added": {"color": "#1a9850", "penwidth": "2.5", "fontcolor": "#14602f"},
    "removed": {"color": "#a0a0a0", "fontcolor": "#a0a0a0", "fillcolor": "#f4f4f4", "dashed": True},
    "changed": {"color": "#d95f02", "penwidth": "2.5"},
}
EDGE_STYLE = {"added": {"color": "#1a9850", "penwidth": "2"}, "removed": {"color": "#b0b0b0", "style": "dashed"}}
HINT_COLOUR = "#2b5797"  # the border of a node with trainer hints
RANKDIRS = ("TB", "LR")


def to_dot(source: Graph | GraphDiff, shapes: Mapping[str, Any] | None = None, *,
           summary: Summary | Sequence[Summary] | None = None, rankdir: str = "TB", depth: int | None = None,
           fold: bool = False) -> pydot.Dot:
    """The drawing of a graph, or of a diff (the union of its two graphs), as a ``pydot.Dot``.

    ``shapes`` (``Summary.shapes``) labels each edge with its tensor's shape; ``summary`` adds
    parameter counts and FLOPs to tooltips and boxes; ``rankdir`` is 'TB' (top to bottom) or
    'LR'; ``depth`` draws each namespace that many levels down as one box; ``fold`` folds
    runs of structurally identical sibling namespaces into the first, marked ×N.
    """
    v = view(source, summary, fold=fold, edge_shapes=shapes)
    if depth is not None:
        v = collapse(v, at_depth(v, _depth(depth)))
    return dot_of(v, rankdir)


def _depth(depth: int) -> int:
    if depth < 1:
        raise RenderError(f"depth must be at least 1, not {depth}")
    return depth


def dot_of(v: View, rankdir: str = "TB") -> pydot.Dot:
    """A View as a ``pydot.Dot``: clusters nested, one edge per input, diff styles and a legend."""
    import pydot

    if rankdir not in RANKDIRS:
        raise RenderError(f"unknown rankdir {rankdir!r}; use one of {', '.join(RANKDIRS)}")
    dot = pydot.Dot("graphnet", graph_type="digraph", rankdir=rankdir, nodesep="0.25", ranksep="0.3",
                    fontname="Helvetica", fontsize="11")
    dot.set_node_defaults(fontname="Helvetica", fontsize="10", shape="box", style="rounded,filled")
    dot.set_edge_defaults(fontname="Helvetica", fontsize="8", color="#555555")
    clusters: dict[str, Any] = {"": dot}
    for c in v.clusters.values():
        attrs = {"label": c.label, "style": "rounded", "color": "#999999", "fontcolor": "#333333"}
        if c.fold > 1:
            attrs.update(style="rounded,bold", penwidth="2", fontcolor="#000000")
        if c.status in ("added", "removed"):  # a cluster with changes inside is not itself changed
            attrs.update(_status_attrs(c.status, cluster=True))
        cluster = pydot.Cluster(c.id, **attrs)
        clusters[c.parent].add_subgraph(cluster)
        clusters[c.id] = cluster

    for it in v.items.values():
        attrs = {"label": "\n".join(it.lines), "tooltip": "\n".join(f"{k}: {val}" for k, val in it.info.items())}
        if it.kind == "input":
            attrs.update(shape="invhouse", style="filled", fillcolor=INPUT_COLOUR, fontcolor="white")
        elif it.kind == "box":
            attrs.update(shape="box3d", style="filled", fillcolor="#ececec")
        else:
            attrs["fillcolor"] = op_colour(it.op)
            if it.hinted:
                attrs.update(color=HINT_COLOUR, penwidth="2")
        if it.id == v.output:
            attrs["peripheries"] = "2"
        attrs.update(_status_attrs(it.status, base=attrs.get("style", "rounded,filled")))
        clusters[it.cluster].add_node(pydot.Node(_id(it.id), **attrs))
    for e in v.edges:
        attrs = dict(EDGE_STYLE.get(e.status, {}))
        if e.shape:
            attrs["label"] = shape_label(e.shape)
        dot.add_edge(pydot.Edge(_id(e.src), _id(e.dst), **attrs))
    if v.is_diff:
        _legend(dot, rankdir)
    return dot


def _status_attrs(status: str, base: str = "rounded,filled", cluster: bool = False) -> dict[str, str]:
    """The diff style of an item (or a cluster's border) with this status."""
    style = dict(STATUS_STYLE.get(status, {}))
    if cluster:
        style = {k: val for k, val in style.items() if k in ("color", "penwidth", "dashed")}
    if style.pop("dashed", False):
        style["style"] = "rounded,dashed" if cluster else base + ",dashed"
    return style


def _legend(dot: pydot.Dot, rankdir: str) -> None:
    """A small cluster naming the diff styles, in one rank (a row, or a column left to right)."""
    import pydot

    legend = pydot.Cluster("legend", label="diff", style="rounded", color="#cccccc", fontcolor="#555555", rank="same")
    names = ["unchanged", "added", "removed", "changed"]
    if rankdir == "LR":  # dot stacks one rank's nodes bottom up there
        names.reverse()
    for name in names:
        attrs = {"label": name, "fillcolor": "#ffffff", "fontsize": "8", "height": "0.2", "width": "0.4",
                 "margin": "0.05,0.02"}
        attrs.update(_status_attrs("same" if name == "unchanged" else name))
        legend.add_node(pydot.Node(_id(f"legend:{name}"), **attrs))
    dot.add_subgraph(legend)


def _id(path: str) -> str:
    """A quoted DOT id, so that paths like 'graph' or 'node' are not read as keywords."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


def render(graph: Graph | GraphDiff, path: str | Path, shapes: Mapping[str, Any] | None = None,
           prog: str | None = None, *, summary: Summary | Sequence[Summary] | None = None, rankdir: str = "TB",
           depth: int | None = None, fold: bool = False) -> Path:
    """Write the drawing of a graph or a diff to ``path`` (making its folder): .dot (no layout
    engine needed), .svg, .png, or .html (the interactive view; no layout engine needed).

    ``prog`` forces the layout engine: 'dot' (system Graphviz) or 'graphviz-pure'; the other
    options are ``to_dot``'s (``depth`` collapses the HTML view's namespaces at that depth to
    start with, each can be expanded). Returns ``path``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise RenderError(f"cannot write {path.name}: the output must end in {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        v = view(graph, summary, fold=fold, edge_shapes=shapes)
        path.write_text(to_html(v, rankdir=rankdir, collapsed=at_depth(v, _depth(depth)) if depth else ()),
                        encoding="utf-8")
        return path
    dot = to_dot(graph, shapes, summary=summary, rankdir=rankdir, depth=depth, fold=fold)
    if suffix == ".dot":
        path.write_text(dot.to_string(), encoding="utf-8")
    else:
        path.write_bytes(_layout(dot, suffix[1:], prog))
    return path


def to_svg(graph: Graph | GraphDiff, shapes: Mapping[str, Any] | None = None, prog: str | None = None,
           **options: Any) -> str:
    """The drawing as SVG text (``Graph._repr_svg_``: what a notebook shows); ``options`` are ``to_dot``'s."""
    return _layout(to_dot(graph, shapes, **options), "svg", prog).decode()


def _layout(dot: pydot.Dot, fmt: str, prog: str | None) -> bytes:
    engine = find_engine(prog)
    try:
        return dot.create(prog=engine, format=fmt, encoding="utf-8")
    except AssertionError as e:  # pydot reports a failed run as an AssertionError
        raise RenderError(f"{engine} failed: {e}") from None
