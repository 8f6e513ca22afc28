"""``diff(a, b)``: what changed from graph ``a`` to graph ``b``, node by node, matched by path.

A node is *added* (only in ``b``), *removed* (only in ``a``), *changed* or *unchanged*. Each
change is one ``Change``: the op, one param, the inputs, or one attr, with its old and new
value, so a rewrite's effect reads as a short change log (``str(diff(a, b))``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Mapping

from .graph import Graph, Node
from .labels import fmt, op_label, param_text, values_change
from .ops import REGISTRY
from .spec import relative_ref

MISSING: Any = inspect.Parameter.empty  # the old or new value of something that is not there


@dataclass(frozen=True)
class Change:
    """One named change of a node: ``kind`` is 'op', 'param', 'inputs' or 'attr'; ``name`` the param or attr."""

    kind: str
    name: str
    old: Any
    new: Any

    def __str__(self) -> str:
        if self.kind == "op":
            return f"op {self.old} → {self.new}"
        if self.old is MISSING:  # a param reads as written in a spec, an attr as a hint: frozen weight
            return f"{self.name}{'=' if self.kind == 'param' else ' '}{param_text(self.name, self.new)}"
        if self.new is MISSING:
            return f"−{self.name}"
        if self.kind == "param" and self.name == "values":
            return f"values {values_change(self.old, self.new)}"
        return f"{self.name} {fmt(self.old)} → {fmt(self.new)}"


@dataclass(frozen=True)
class GraphDiff:
    """The result of ``diff(a, b)``: paths added, removed, changed (with their changes) and unchanged."""

    a: Graph
    b: Graph
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: Mapping[str, tuple[Change, ...]]
    unchanged: tuple[str, ...]
    # every path of both graphs: b's order, each removed one after its predecessor in a
    order: tuple[str, ...] = field(repr=False)

    def status(self, path: str) -> str:
        """'added', 'removed', 'changed' or 'same'."""
        if path in self.changed:
            return "changed"
        return "added" if path in self.added else "removed" if path in self.removed else "same"

    def node(self, path: str) -> Node:
        """The node as it is in ``b``, or in ``a`` where it was removed."""
        return self.b[path] if path in self.b else self.a[path]

    def change_lines(self, path: str) -> list[str]:
        """The node's changes as short lines: ``relu → celu(0.075)``, ``num_splits=16``, ``inputs: conv → pool``."""
        changes = self.changed.get(path, ())
        op = next((c for c in changes if c.kind == "op"), None)
        lines = []
        if op is not None:  # the op change takes the new node's differing params: relu → celu(0.075)
            shown = [c for c in changes if c.kind == "param" and c.new is not MISSING]
            first = next(iter(REGISTRY[op.new].signature.parameters), None) if op.new in REGISTRY else None
            args = ", ".join(fmt(c.new) if c.name == first else f"{c.name}={param_text(c.name, c.new)}" for c in shown)
            lines.append(f"{op.old} → {op.new}" + (f"({args})" if args else ""))
            changes = [c for c in changes if c.kind != "op" and c not in shown]
        for c in changes:
            if c.kind == "inputs":
                ns, inputs = self.node(path).namespace, (*self.a.inputs, *self.b.inputs)
                old, new = (", ".join(i if i in inputs else relative_ref(ns, i) for i in side)
                            for side in (c.old, c.new))
                lines.append(f"inputs: {old} → {new}")
            else:
                lines.append(str(c))
        return lines

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.a.inputs != self.b.inputs)

    def __str__(self) -> str:
        width = max(map(len, self.order))
        lines = []
        if self.a.inputs != self.b.inputs:
            lines.append(f"! inputs {', '.join(self.a.inputs)} → {', '.join(self.b.inputs)}")
        for path in self.order:
            status = self.status(path)
            if status == "same":
                continue
            text = "; ".join(self.change_lines(path)) if status == "changed" else op_label(self.node(path))
            lines.append(f"{'+-~'['added removed changed'.split().index(status)]} {path.ljust(width)}  {text}")
        lines.append(f"{len(self.changed)} changed, {len(self.added)} added, {len(self.removed)} removed, "
                     f"{len(self.unchanged)} unchanged")
        return "\n".join(lines)


def node_changes(a: Node, b: Node) -> tuple[Change, ...]:
    """What differs from ``a`` to ``b``: op, then each param, inputs, then each attr (in name order)."""
    changes = [Change("op", "", a.op, b.op)] if a.op != b.op else []
    changes += _keyed("param", a.params, b.params)
    if a.inputs != b.inputs:
        changes.append(Change("inputs", "", a.inputs, b.inputs))
    changes += _keyed("attr", a.attrs, b.attrs)
    return tuple(changes)


def _keyed(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    names = list(old) + [k for k in new if k not in old]
    return [Change(kind, k, old.get(k, MISSING), new.get(k, MISSING)) for k in names
            if old.get(k, MISSING) != new.get(k, MISSING)]


def diff(a: Graph, b: Graph) -> GraphDiff:
    """Compare ``a`` (before) with ``b`` (after) node by node, by path."""
    order = list(b.order)
    placed = set(order)
    previous = None
    for path in a.order:
        if path not in placed:
            order.insert(order.index(previous) + 1 if previous is not None else 0, path)
            placed.add(path)
        previous = path
    changed = {p: node_changes(a[p], b[p]) for p in order if p in a and p in b and a[p] != b[p]}
    return GraphDiff(
        a, b,
        added=tuple(p for p in order if p not in a),
        removed=tuple(p for p in order if p not in b),
        changed={p: c for p, c in changed.items() if c},
        unchanged=tuple(p for p in order if p in a and p in b and not changed.get(p)),
        order=tuple(order),
    )
