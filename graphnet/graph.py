"""Specs as DAGs: ``build(spec) -> Graph``, with the queries and edits rewrite passes use.

A ``Graph`` is immutable: every edit returns a new Graph, validated like a built one, so a
rewrite pass is a pure function. Nodes are keyed by full path (``layer1/residual/res1/conv``);
``Graph.nx`` is a read-only ``networkx.DiGraph`` view with the graph inputs as nodes of op
``'input'``. Execution order is the topological order that keeps the spec's dict order
wherever the edges allow it.

Node ``attrs`` are hints for the compiler and trainer, kept through every edit:
``frozen`` (param names not trained), ``frozen_after`` (param name -> the epochs it trains),
``lr_mult`` and ``wd_mult`` (param name -> multiplier), ``init`` (a data initialiser:
``{'name': ..., 'params': {...}}``); ``spec.ATTRS`` gives each one's type.

Every node path is checked against the names the compiled network cannot hold
(``spec.check_path``: ``forward``, ``training``, ...): any name a Graph has compiles.

A Graph shows its drawing in a notebook (``_repr_svg_``, ``_repr_html_``): ``graphnet/__init__``
sets those from the drawing modules, which sit above this one, so this module imports none of them.
"""

from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping

import networkx as nx

from .errors import CycleError, DuplicatePathError, SpecError
from .ops import get_op
from .spec import SEP, check_path, flat_nodes, join, namespaces, normalise_node, parent, relative_ref, resolve


@dataclass(frozen=True)
class Node:
    """A node of a Graph: read-only ``params`` and ``attrs``, ``inputs`` as full paths."""

    path: str
    op: str
    params: Mapping[str, Any]
    inputs: tuple[str, ...]
    attrs: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.path.rpartition(SEP)[2]

    @property
    def namespace(self) -> str:
        return parent(self.path)


def _node(path: str, op: str, params: Mapping, inputs: Iterable[str], attrs: Mapping | None = None) -> Node:
    return Node(path, op, MappingProxyType(copy.deepcopy(dict(params))), tuple(inputs),
                MappingProxyType(copy.deepcopy(dict(attrs or {}))))


class Graph:
    """A validated DAG of nodes; see the module doc. Make one with ``build`` or an edit."""

    def __init__(self, nodes: Iterable[Node], inputs: tuple[str, ...] = ("input",), *,
                 _checked: Mapping[str, Node] | None = None):
        """``_checked`` (for the edits): an edited graph's own nodes, known valid; the same Node
        objects are not bound again."""
        self.inputs = tuple(inputs)
        checked = _checked or {}
        by_path: dict[str, Node] = {}
        for n in nodes:
            if n.path in by_path or n.path in self.inputs:
                raise DuplicatePathError("two nodes (or a node and a graph input) have this path", n.path)
            check_path(n.path)
            by_path[n.path] = n
        if not by_path:
            raise SpecError("a graph needs at least one node")
        for p in by_path:
            for ns in namespaces(p):
                if ns in by_path or ns in self.inputs:
                    raise DuplicatePathError(f"the namespace of {p!r} has the path of a node or graph input", ns)
        g = nx.DiGraph()
        g.add_nodes_from(self.inputs, op="input")
        for n in by_path.values():
            if checked.get(n.path) is not n:  # a Node is immutable: valid once, valid in every graph
                op = get_op(n.op, n.path)
                op.bind(dict(n.params), n.path)
                op.check_arity(len(n.inputs), n.path)
            g.add_node(n.path, op=n.op, params=n.params, attrs=n.attrs)
        for n in by_path.values():
            for i, src in enumerate(n.inputs):
                if src not in g:
                    raise SpecError(f"input {src!r} is not in the graph", n.path)
                g.add_edge(src, n.path, port=i)
        position = {p: i for i, p in enumerate((*self.inputs, *by_path))}
        try:
            order = list(nx.lexicographical_topological_sort(g, key=position.__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = [u for u, _ in nx.find_cycle(g)]
            raise CycleError("cycle: " + " -> ".join(cycle + cycle[:1]), cycle[0]) from None
        self._nodes = {p: by_path[p] for p in order if p in by_path}
        self._nx = g

    # -- queries ----------------------------------------------------------------------------

    def __getitem__(self, path: str) -> Node:
        try:
            return self._nodes[path]
        except KeyError:
            raise SpecError("no such node in the graph", path) from None

    def __contains__(self, path: object) -> bool:
        return path in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def nodes(self) -> tuple[Node, ...]:
        """All nodes in execution order."""
        return tuple(self._nodes.values())

    @property
    def order(self) -> tuple[str, ...]:
        """All node paths in execution order."""
        return tuple(self._nodes)

    @property
    def output(self) -> str:
        """The last node: what the graph computes unless told otherwise."""
        return next(reversed(self._nodes))

    @property
    def nx(self) -> nx.DiGraph:
        """A read-only networkx view: nodes carry op/params/attrs, edges their input ``port``."""
        return self._nx.copy(as_view=True)

    def find(self, op: str | tuple[str, ...] | None = None, pattern: str | None = None,
             where: Callable[[Node], bool] | None = None) -> list[str]:
        """Paths of the nodes matching all given filters, in execution order.

        ``op``: an op name or a tuple of them; ``pattern``: an fnmatch pattern on the full
        path (``'layer*/pool'``); ``where``: a predicate on the Node.
        """
        ops = (op,) if isinstance(op, str) else op
        return [n.path for n in self._nodes.values()
                if (ops is None or n.op in ops)
                and (pattern is None or fnmatch.fnmatchcase(n.path, pattern))
                and (where is None or where(n))]

    def predecessors(self, path: str) -> tuple[str, ...]:
        """The node's inputs, in order (graph inputs included)."""
        return self[path].inputs

    def successors(self, path: str) -> tuple[str, ...]:
        """The nodes that consume ``path``, in execution order."""
        if path not in self._nx:
            raise SpecError("no such node in the graph", path)
        consumers = set(self._nx.successors(path))
        return tuple(p for p in self._nodes if p in consumers)

    # -- edits (each returns a new Graph) -----------------------------------------------------

    def _with(self, nodes: Iterable[Node]) -> Graph:
        return Graph(nodes, self.inputs, _checked=self._nodes)

    def replace(self, path: str, op: str | None = None, params: Mapping | None = None,
                inputs: Iterable[str] | None = None, attrs: Mapping | None = None) -> Graph:
        """A copy where the node at ``path`` has the given op, params, inputs or attrs."""
        old = self[path]
        new = _node(path, old.op if op is None else get_op(op, path).name,
                    old.params if params is None else params,
                    old.inputs if inputs is None else inputs,
                    old.attrs if attrs is None else attrs)
        return self._with(new if n.path == path else n for n in self._nodes.values())

    def add(self, path: str, node: tuple, after: str | None = None) -> Graph:
        """A copy with a new node at ``path``; its inputs are full paths (default: ``after``).

        It is placed after ``after`` (default: at the end) in execution order.
        """
        after = after or self.output
        if after not in self._nodes:
            raise SpecError(f"cannot add after {after!r}: no such node", path)
        op, params, inputs, attrs = normalise_node(node, path)
        new = _node(path, op, params, (after,) if inputs is None else inputs, attrs)
        nodes: list[Node] = []
        for n in self._nodes.values():
            nodes.append(n)
            if n.path == after:
                nodes.append(new)
        return self._with(nodes)

    def replace_uses(self, old: str, new: str, consumers: Iterable[str] | None = None) -> Graph:
        """A copy where ``consumers`` (default: every consumer of ``old`` but ``new``) read ``new`` wherever they read ``old``.

        Like torch.fx's ``Node.replace_all_uses_with``; each consumer must read ``old``.
        """
        if new not in self._nx:
            raise SpecError(f"cannot read {new!r} instead of {old!r}: no such node", old)
        users = [c for c in self.successors(old) if c != new] if consumers is None else list(consumers)
        for c in users:
            if old not in self[c].inputs:
                raise SpecError(f"{c!r} does not read {old!r}", c)
        return self._with(_read_instead(self._nodes.values(), {old: new}, set(users)))

    def splice(self, remove: Iterable[str], add: Mapping[str, tuple], uses: Mapping[str, str] | None = None) -> Graph:
        """A copy without the nodes ``remove``, with the spec nodes ``add`` (path -> node, inputs as full paths).

        The new nodes take the place in execution order of the first removed node (or go at the
        end); a path both removed and added is a node rewritten in place. ``uses`` (old path ->
        new path) re-points the other nodes' inputs, as ``replace_uses`` does, in the same step.
        """
        gone = set(remove)
        missing = sorted(gone - set(self._nodes))
        if missing:
            raise SpecError("cannot remove: no such node", missing[0])
        new = []
        for path, node in add.items():
            op, params, inputs, attrs = normalise_node(node, path)
            new.append(_node(path, op, params, inputs or (), attrs))
        nodes: list[Node] = []
        for n in self._nodes.values():
            if n.path in gone:
                nodes.extend(new)
                new = []
            else:
                nodes.append(n)
        kept = [n for n in nodes if n.path not in add]
        return self._with(_read_instead(nodes, uses or {}, {n.path for n in kept}))

    def insert_after(self, path: str, name: str, node: tuple) -> Graph:
        """A copy with ``node`` (named ``name`` in ``path``'s namespace) between ``path`` and its consumers."""
        new_path = join(self[path].namespace, name)
        return self.add(new_path, (*node[:2], [path], *node[3:]), after=path).replace_uses(path, new_path)

    def remove(self, path: str) -> Graph:
        """A copy without the single-input node ``path``; its consumers take its input instead."""
        node = self[path]
        if len(node.inputs) != 1:
            raise SpecError(f"only a node with one input can be removed, this one has {len(node.inputs)}", path)
        return self.splice([path], {}, uses={path: node.inputs[0]})

    def swap(self, first: str, second: str) -> Graph:
        """A copy where the chain ``a -> first -> second -> consumers`` becomes ``a -> second -> first -> consumers``.

        ``second`` must consume only ``first``, and be its only consumer.
        """
        if self[second].inputs != (first,) or self.successors(first) != (second,):
            raise SpecError(f"cannot swap: {second!r} is not the only consumer and sole input user of {first!r}",
                            first)
        a, b = self[first], self[second]
        return self.splice([first, second], {second: _spec_node(b, a.inputs), first: _spec_node(a, (second,))},
                           uses={second: first})

    # -- conversions -------------------------------------------------------------------------

    def to_spec(self) -> dict:
        """The nested-dict spec of this graph; inputs are written only where the default differs."""
        root: dict = {}
        for n in self._nodes.values():
            d = root
            for part in n.path.split(SEP)[:-1]:
                d = d.setdefault(part, {})
            d[n.name] = n
        emitted = _order_of(root)
        if emitted[-1] != self.output:
            raise SpecError(f"to_spec: the output would not stay last, as a namespace in a spec cannot be split; "
                            f"{emitted[-1]!r} would follow it", self.output)
        previous = self.inputs[0]
        for path in emitted:
            n = self[path]
            spec_node: tuple = (n.op, dict(n.params))
            if n.inputs != (previous,) or n.attrs:
                spec_node += ([self._input_ref(n.namespace, i) if i in self.inputs else relative_ref(n.namespace, i)
                               for i in n.inputs],)
            if n.attrs:
                spec_node += (copy.deepcopy(dict(n.attrs)),)
            _set(root, path, spec_node)
            previous = path
        return root

    def _input_ref(self, namespace: str, name: str) -> str:
        """A reference to the graph input ``name``: bare, or absolute where a node or namespace shadows it."""
        near = join(namespace, name)
        shadowed = namespace and (near in self._nodes or any(p.startswith(near + SEP) for p in self._nodes))
        return SEP + name if shadowed else name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Graph) and self.inputs == other.inputs and self.nodes == other.nodes

    __hash__ = None  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict) -> Graph:
        return self  # immutable

    def __reduce__(self) -> tuple:
        plain = [(n.path, n.op, dict(n.params), n.inputs, dict(n.attrs)) for n in self._nodes.values()]
        return _unpickle, (plain, self.inputs)

    def __repr__(self) -> str:
        ops: dict[str, int] = {}
        for n in self._nodes.values():
            ops[n.op] = ops.get(n.op, 0) + 1
        counts = ", ".join(f"{k}×{v}" for k, v in ops.items())
        return f"Graph({len(self)} nodes: {counts}; inputs={list(self.inputs)}, output={self.output!r})"


def _read_instead(nodes: Iterable[Node], uses: Mapping[str, str], only: set[str]) -> list[Node]:
    """``nodes``, those in ``only`` reading ``uses[i]`` wherever they read ``i``."""
    return [replace(n, inputs=tuple(uses.get(i, i) for i in n.inputs))
            if n.path in only and any(i in uses for i in n.inputs) else n for n in nodes]


def _spec_node(node: Node, inputs: Iterable[str]) -> tuple:
    """``node`` as a spec node tuple reading ``inputs`` (full paths)."""
    return (node.op, dict(node.params), list(inputs), dict(node.attrs))


def _unpickle(plain: list[tuple], inputs: tuple[str, ...]) -> Graph:
    return Graph([_node(*fields) for fields in plain], inputs)


def _order_of(nested: dict, prefix: str = "") -> list[str]:
    """Paths of the leaves of ``nested`` in dict order."""
    out: list[str] = []
    for key, value in nested.items():
        path = join(prefix, key)
        out.extend(_order_of(value, path) if isinstance(value, dict) else [path])
    return out


def _set(root: dict, path: str, value: Any) -> None:
    *outer, name = path.split(SEP)
    for part in outer:
        root = root[part]
    root[name] = value


def build(spec: dict, inputs: str | Iterable[str] = ("input",)) -> Graph:
    """Compile a nested-dict spec into a validated Graph.

    ``inputs`` names the graph's inputs (a network has one, a loss graph ``('logits', 'target')``).
    Errors are ``SpecError`` subclasses that name the node at fault.
    """
    inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
    flat, last = flat_nodes(spec)
    paths = {n.path for n in flat}
    nodes = []
    for i, n in enumerate(flat):
        if n.inputs is None:
            refs = [flat[i - 1].path if i else inputs[0]]
        else:
            refs = [resolve(r, n.namespace, paths, last, inputs, n.path) for r in n.inputs]
        nodes.append(_node(n.path, n.op, n.params, refs, n.attrs))
    return Graph(nodes, inputs)
