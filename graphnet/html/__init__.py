"""The interactive view: one self-contained HTML file (no network, no Graphviz needed).

``to_html(view)`` writes a ``graphnet.view.View`` as JSON into a page with this package's
``view.js`` and ``view.css`` inlined. The script lays the graph out in the browser (layered,
namespaces as nested boxes) so that collapsing a namespace lays the rest out again; hovering a
node shows its details, clicking pins them, clicking a namespace's box collapses or expands it,
and the search box finds a node by path.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from typing import Iterable

from ..graph import Graph
from ..labels import shape_label
from ..view import View, op_colour, view

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title><style>{css}</style></head>
<body>
<div id="bar"><input id="search" list="paths" placeholder="find a node by path (Enter)"><datalist id="paths"></datalist>
<button id="expand">expand all</button><button id="collapse">collapse all</button><button id="flip">TB/LR</button>
<button id="zoomin">+</button><button id="zoomout">−</button><span id="status"></span>
<span class="legend"><span class="st-added">added</span><span class="st-removed">removed</span>
<span class="st-changed">changed</span></span>
<span>{summary}</span></div>
<div id="stage"></div><div id="info"></div>
<script type="application/json" id="graphnet-data">{data}</script>
<script>{js}</script>
</body></html>
"""


def to_html(v: View, rankdir: str = "TB", collapsed: Iterable[str] = (), title: str = "graphnet") -> str:
    """The page for ``v``: ``rankdir`` 'TB' or 'LR' to start with, ``collapsed`` the namespaces shown as boxes."""
    nodes = [it for it in v.items.values() if it.kind == "node"]
    data = {
        "rankdir": rankdir,
        "diff": v.is_diff,
        "collapsed": list(collapsed),
        "items": [{"id": it.id, "kind": it.kind, "cluster": it.cluster, "lines": list(it.lines), "status": it.status,
                   "info": dict(it.info), "hinted": it.hinted, "colour": op_colour(it.op)} for it in v.items.values()],
        "clusters": [{"id": c.id, "parent": c.parent, "label": c.label, "status": c.status, "box": list(c.box_lines),
                      "fold": c.fold} for c in v.clusters.values()],
        "edges": [[e.src, e.dst, e.status, shape_label(e.shape) if e.shape else ""] for e in v.edges],
    }
    text = json.dumps(data, ensure_ascii=False).replace("</", "<\\/").replace("<!--", "<\\!--")
    package = files(__name__)
    return PAGE.format(title=html.escape(title), css=package.joinpath("view.css").read_text(encoding="utf-8"),
                       js=package.joinpath("view.js").read_text(encoding="utf-8"), data=text,
                       summary=html.escape(f"{len(nodes)} nodes, {len(v.clusters)} namespaces"))


def notebook_html(graph: Graph, height: int = 600) -> str:
    """The page for ``graph`` in an iframe (its own document, so scripts and styles stay apart):
    what a notebook shows for a Graph (``Graph._repr_html_``)."""
    page = to_html(view(graph))
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width: 100%; height: {height}px; '
            'border: 1px solid #ddd"></iframe>')
