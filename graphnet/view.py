"""What a drawing shows, for the Graphviz and the HTML renderers alike.

``view(graph_or_diff, ...)`` turns a ``Graph`` (or a ``GraphDiff``: the union of both graphs)
into a ``View``: items (nodes, graph inputs, boxes) with their label lines, diff status and
details (path, op, params, shape, parameter count, FLOPs, trainer hints, changes), the
namespaces as nested clusters, and the edges. ``fold=True`` folds runs of structurally
identical sibling namespaces into their first one, marked ×N; ``collapse(view, namespaces)``
draws each given namespace as one box. ``op_colour`` is a node's fill colour in both drawings.
"""

from __future__ import annotations

import colorsys
import hashlib
from dataclasses import dataclass, field, replace
from math import prod
from typing import Any, Iterable, Mapping, Sequence

from .diff import GraphDiff
from .graph import Graph, Node
from .labels import fmt, hint_lines, op_label, shape_label, si
from .spec import SEP, namespaces, parent
from .summary import Row, Summary

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


def op_colour(op: str) -> str:
    """The fill colour of ``op``: from PALETTE, else a pastel hue from an MD5 of the name (stable across runs)."""
    if op in PALETTE:
        return PALETTE[op]
    hue = int.from_bytes(hashlib.md5(op.encode()).digest()[:4], "big") / 2**32
    r, g, b = colorsys.hsv_to_rgb(hue, 0.3, 0.95)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


@dataclass(frozen=True)
class Item:
    """A drawn node: a graph node ('node'), a graph input ('input') or a collapsed namespace ('box')."""

    id: str
    kind: str
    cluster: str  # the enclosing cluster's id; '' at the top
    lines: tuple[str, ...]  # the label, line by line
    op: str
    status: str  # 'same', 'added', 'removed' or 'changed'
    info: Mapping[str, str]  # details for a tooltip, in display order
    hinted: bool = False  # carries trainer hints (frozen params, lr/wd multipliers, an initialiser)


@dataclass(frozen=True)
class Cluster:
    """A namespace: ``fold`` > 1 where it stands for that many identical siblings."""

    id: str
    parent: str
    label: str
    status: str
    box_lines: tuple[str, ...]  # the label of its box when collapsed (after its name)
    fold: int = 1


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    status: str
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class View:
    items: Mapping[str, Item]  # in execution order
    clusters: Mapping[str, Cluster]  # outer before inner
    edges: tuple[Edge, ...]
    output: str
    is_diff: bool = False
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # cluster -> its node paths (all depths)


def view(source: Graph | GraphDiff, summary: Summary | Sequence[Summary] | None = None,
         fold: bool = False, edge_shapes: Mapping[str, Any] | None = None) -> View:
    """The View of a graph or a diff; ``summary`` (one per graph of a diff: before, after) adds shapes,
    parameter counts and FLOPs; ``edge_shapes`` (path -> shape) labels the edges."""
    summaries = [] if summary is None else [summary] if isinstance(summary, Summary) else list(summary)
    rows: dict[str, Row] = {r.path: r for s in summaries for r in s.rows}
    tensor_shapes = {k: v for s in summaries for k, v in s.shapes.items()}
    if isinstance(source, GraphDiff):
        d = source
        nodes = {p: d.node(p) for p in d.order}
        status = {p: d.status(p) for p in d.order}
        changes = {p: d.change_lines(p) for p in d.changed}
        op_changed = {p for p, cs in d.changed.items() if any(c.kind == "op" for c in cs)}
        changed_attrs = {p: {c.name for c in cs if c.kind == "attr"} for p, cs in d.changed.items()}
        inputs = list(dict.fromkeys((*d.b.inputs, *d.a.inputs)))
        input_status = {i: "same" if i in d.a.inputs and i in d.b.inputs else "added" if i in d.b.inputs
                        else "removed" for i in inputs}
        old_edges = {(s, n.path) for n in d.a.nodes for s in n.inputs}
        new_edges = {(s, n.path) for n in d.b.nodes for s in n.inputs}
        edges = [(s, p, "same" if (s, p) in old_edges and (s, p) in new_edges else
                  "added" if (s, p) in new_edges else "removed")
                 for p in d.order for s in dict.fromkeys((*(d.a[p].inputs if p in d.a else ()),
                                                           *(d.b[p].inputs if p in d.b else ())))]
        output = d.b.output
    else:
        nodes = {n.path: n for n in source.nodes}
        status = dict.fromkeys(nodes, "same")
        changes, changed_attrs, op_changed = {}, {}, set()
        inputs = list(source.inputs)
        input_status = dict.fromkeys(inputs, "same")
        edges = [(s, n.path, "same") for n in source.nodes for s in n.inputs]
        output = source.output

    items: dict[str, Item] = {}
    for name in inputs:
        shape = tensor_shapes.get(name)
        info = {"input": name, **({"shape": shape_label(shape)} if shape else {})}
        items[name] = Item(name, "input", "", (name,), "input", input_status[name], info)
    for path, node in nodes.items():
        hints = hint_lines(node.attrs, skip=changed_attrs.get(path, ()))
        row = rows.get(path)
        lines = [node.name] if node.name != node.op else []
        described = changes.get(path, [])
        if path in op_changed:
            lines += described  # 'relu → celu(0.075)' stands for the op label
        else:
            lines += [op_label(node), *described]
        info = {"path": path, "op": node.op, "params": fmt(dict(node.params)) or "none"}
        if row is not None:
            info.update({"output shape": shape_label(row.shape), "parameters": f"{row.params:,}",
                         "FLOPs": f"{row.flops:,}"})
        if node.attrs:
            info["hints"] = "; ".join(hint_lines(node.attrs))
        if described:
            info["changes"] = "; ".join(described)
        if status[path] != "same":
            info["status"] = status[path]
        items[path] = Item(path, "node", node.namespace, (*lines, *hints), node.op, status[path], info,
                           hinted=bool(node.attrs))

    v = View(items, {}, tuple(Edge(s, t, st, (edge_shapes or {}).get(s)) for s, t, st in edges),
             output, is_diff=isinstance(source, GraphDiff))
    folds = _fold(v, nodes) if fold else {}
    return _with_clusters(_folded(v, folds), rows, folds)


# -- folding ---------------------------------------------------------------------------------

def _children(paths: Iterable[str]) -> dict[str, list[str]]:
    """Namespace -> its direct children (node paths and sub-namespaces) in order of first use."""
    out: dict[str, dict[str, None]] = {}
    for p in paths:
        chain = ["", *namespaces(p), p]
        for outer, inner in zip(chain, chain[1:]):
            out.setdefault(outer, {})[inner] = None
    return {k: list(v) for k, v in out.items()}


def _signature(block: list[str], v: View, nodes: Mapping[str, Node]) -> tuple:
    """The block's structure up to renaming: per node its op, params, attrs, diff status and the
    inputs as positions inside the block or the order of first use outside it."""
    index = {p: i for i, p in enumerate(block)}
    external: dict[str, int] = {}
    sig = []
    for p in block:
        n = nodes[p]
        ins = tuple(("in", index[i]) if i in index else ("out", external.setdefault(i, len(external)))
                    for i in n.inputs)
        sig.append((n.op, repr(dict(n.params)), repr(dict(n.attrs)), v.items[p].status, v.items[p].lines[1:], ins))
    return tuple(sig)


def _fold(v: View, nodes: Mapping[str, Node]) -> dict[str, list[str]]:
    """The runs of ≥2 consecutive sibling namespaces that are structurally identical and chained
    (each reads only the one before it from outside): first namespace -> the run."""
    children = _children(p for p in v.items if v.items[p].kind == "node")
    members = {ns: [p for p in v.items if p.startswith(ns + SEP)] for ns in children if ns}
    folds: dict[str, list[str]] = {}
    dropped_ns: set[str] = set()
    for ns, kids in children.items():  # outer namespaces first
        if ns in dropped_ns or any(ns.startswith(d + SEP) for d in dropped_ns):
            continue
        run: list[str] = []
        for kid in [*kids, None]:
            if kid in members and run and _signature(members[kid], v, nodes) == _signature(members[run[0]], v, nodes) \
                    and all(i in members[run[-1]] for p in members[kid] for i in nodes[p].inputs
                            if not i.startswith(kid + SEP)):
                run.append(kid)
                continue
            if len(run) > 1:
                folds[run[0]] = run
                dropped_ns.update(run[1:])
            run = [kid] if kid in members else []
    return folds


def _folded(v: View, folds: Mapping[str, list[str]]) -> View:
    """``v`` with each run in ``folds`` drawn as its first namespace: the others' nodes gone, their
    edges to the outside moved to the first's counterparts."""
    if not folds:
        return v
    members = {ns: [p for p in v.items if p.startswith(ns + SEP)] for run in folds.values() for ns in run}
    alias = {p: q for first, run in folds.items() for other in run[1:] for p, q in zip(members[other], members[first])}
    run_of = {p: {q for ns in run for q in members[ns]} for run in folds.values() for ns in run[1:] for p in members[ns]}

    def kept(p: str) -> str:  # through nested folds: stage3/5/x -> stage2/5/x -> stage2/0/x
        while p in alias:
            p = alias[p]
        return p

    edges: dict[tuple[str, str], Edge] = {}
    for e in v.edges:
        if e.src in run_of.get(e.dst, ()):
            continue  # from one block of a folded run to the next
        key = (kept(e.src), kept(e.dst))
        if key[0] != key[1]:
            edges.setdefault(key, replace(e, src=key[0], dst=key[1]))
    items = {p: it for p, it in v.items.items() if p not in alias}
    return replace(v, items=items, edges=tuple(edges.values()))


def _with_clusters(v: View, rows: Mapping[str, Row], folds: Mapping[str, list[str]]) -> View:
    """``v`` with its Clusters: every namespace of its nodes, with the label and box lines of each.

    A box counts all it stands for: a node inside folded runs (the box's own, or inner ones) counts
    once per block it stands for."""
    node_paths = [p for p, it in v.items.items() if it.kind == "node"]

    def copies(p: str, ns: str) -> int:
        return prod(len(folds[f]) for f in namespaces(p) if f in folds and (f == ns or f.startswith(ns + SEP)))

    clusters: dict[str, Cluster] = {}
    members: dict[str, tuple[str, ...]] = {}
    for ns in dict.fromkeys(ns for p in node_paths for ns in namespaces(p)):
        inside = tuple(p for p in node_paths if p.startswith(ns + SEP))
        run = folds.get(ns, [ns])
        n = len(run)
        label = ns.rpartition(SEP)[2] + (f"…{run[-1].rpartition(SEP)[2]} ×{n}" if n > 1 else "")
        statuses = [v.items[p].status for p in inside]
        status = statuses[0] if len(set(statuses)) == 1 and statuses[0] in ("added", "removed") else \
            "same" if set(statuses) == {"same"} else "changed"
        lines = [f"{sum(copies(p, ns) for p in inside)} nodes"]
        if inside and all(p in rows for p in inside):
            params = sum(rows[p].params * copies(p, ns) for p in inside)
            flops = sum(rows[p].flops * copies(p, ns) for p in inside)
            lines.append(f"{si(params)} params · {si(flops)} FLOPs")
        counts = {s: statuses.count(s) for s in ("changed", "added", "removed") if s in statuses}
        if v.is_diff and counts and status == "changed":
            lines.append(", ".join(f"{c} {s}" for s, c in counts.items()))
        clusters[ns] = Cluster(ns, parent(ns), label, status, tuple(lines), n)
        members[ns] = inside
    return replace(v, clusters=clusters, members=members)


def collapse(v: View, boxes: Iterable[str]) -> View:
    """``v`` with each namespace in ``boxes`` drawn as one box (its contents and sub-clusters gone)."""
    boxes = [b for b in boxes if b in v.clusters]
    outer = [b for b in boxes if not any(b.startswith(o + SEP) for o in boxes)]
    owner = {p: b for b in outer for p in v.members[b]}
    items: dict[str, Item] = {}
    for p, it in v.items.items():
        b = owner.get(p)
        if b is None:
            items[p] = it
        elif b not in items:
            c = v.clusters[b]
            items[b] = Item(b, "box", c.parent, (c.label, *c.box_lines), "", c.status,
                            {"namespace": b, "contents": "; ".join(c.box_lines)})
    edges: dict[tuple[str, str], Edge] = {}
    for e in v.edges:
        key = (owner.get(e.src, e.src), owner.get(e.dst, e.dst))
        if key[0] != key[1]:
            edges.setdefault(key, replace(e, src=key[0], dst=key[1]))
    clusters = {k: c for k, c in v.clusters.items() if not any(k == o or k.startswith(o + SEP) for o in outer)}
    return replace(v, items=items, edges=tuple(edges.values()), clusters=clusters,
                   output=owner.get(v.output, v.output))


def at_depth(v: View, depth: int) -> list[str]:
    """The namespaces ``depth`` levels down (``layer1`` is at depth 1, ``layer1/residual`` at 2)."""
    return [ns for ns in v.clusters if ns.count(SEP) + 1 == depth]
