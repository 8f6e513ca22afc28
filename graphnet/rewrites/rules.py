"""Rewrite rules: patterns over a Graph, their matches, replacements and near misses.

A **pattern** is a dict ``name -> pattern node``, in order; a pattern node is an op name
(``'conv'``), ``any_of('relu', 'celu')``, ``ANY``, a spec node ``(op, params[, inputs])``
(``('conv', {'kernel_size': 3})``, ``('add', {}, ['in', 'res'])``), or
``pat(op, params, inputs, shared, where, commutative)``. Without ``inputs`` a node reads the
one before it (a chain; the first reads anything). An input name that is not a pattern node
binds whatever node is there (``'log_probs'``); ``commutative=True`` reads the inputs in any
order. Params are fixed values, compared with the node's params after the op's defaults (so
``('max_pool', {'kernel_size': 2})`` matches ``max_pool()``), or predicates; ``where`` tests
the whole Node (its attrs, or params together). Every node but the last must feed only the
match, unless ``shared=True``.

``match(graph, pattern)`` gives the matches (name -> node path), non-overlapping, in graph
order. ``explain(graph, pattern)`` gives the near misses: where each partial match broke, and why.

A **replacement** is a spec fragment (dict ``name -> node``, in order, a chain unless it says
``inputs``; empty: the match is removed, its consumers reading its input) for the matched
nodes, or a function ``(match, **params) -> fragment``, which returns None to leave a match as
it is. In it, ``bound('norm')`` is the matched node as it was
and ``bound('norm').changed(op=..., attrs=..., **params)`` that node changed (params and attrs
merged over its own); input names are fragment names, then pattern names. A fragment node
named like a pattern node keeps its path (and its attrs, unless it gives some); new names go
in the namespace of the pattern's last node (``name_1``, ... where that path is taken). The
fragment's first node reads what the pattern's first node read; its last node feeds the
consumers of the pattern's last node; matched nodes it does not name are removed.
``rule(pattern, replacement, name=...)`` is the pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import permutations
from typing import Any, Callable, Iterable

from ..graph import Graph, Node
from ..ops import get_op
from ..spec import SEP, join
from .registry import Pass, PassError, RewriteError, StateMap, get_pass, no_match

NORMS = ("batch_norm", "ghost_batch_norm")
ACTIVATIONS = ("relu", "celu", "gelu")
MONOTONE_ACTIVATIONS = ("relu", "celu")  # non-decreasing, so max-pool commutes with them


# -- patterns --------------------------------------------------------------------------------

@dataclass(frozen=True)
class AnyOf:
    """A set of op names a pattern node accepts; empty means any op (``ANY``)."""

    ops: tuple[str, ...]

    def __contains__(self, op: object) -> bool:
        return not self.ops or op in self.ops

    def __str__(self) -> str:
        return "|".join(self.ops) or "any op"


def any_of(*ops: str) -> AnyOf:
    """A pattern op that accepts any of ``ops``: ``any_of('relu', 'celu')`` (names of ops, registered or not yet)."""
    if not ops or not all(isinstance(op, str) for op in ops):
        raise PassError(f"any_of takes one or more op names, not {ops!r}; ANY accepts every op")
    return AnyOf(tuple(ops))


ANY = AnyOf(())  # a pattern op that accepts every op


@dataclass(frozen=True)
class PatternNode:
    """One node of a pattern (see the module doc)."""

    op: AnyOf
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] | None = None
    shared: bool = False
    where: Callable[[Node], bool] | None = None
    commutative: bool = False


def pat(op: str | AnyOf, params: Mapping[str, Any] | None = None, inputs: Iterable[str] | None = None,
        shared: bool = False, where: Callable[[Node], bool] | None = None, commutative: bool = False) -> PatternNode:
    """A pattern node: ``pat('celu', {'alpha': lambda a: a < 1})``, ``pat('add', inputs=['in', 'res'],
    commutative=True)``; name a ``where`` function: misses show its name."""
    ops = op if isinstance(op, AnyOf) else any_of(op)
    return PatternNode(ops, dict(params or {}), None if inputs is None else tuple(inputs), shared, where, commutative)


Pattern = Mapping[str, Any]
Replacement = Mapping[str, Any] | Callable[..., Mapping[str, Any] | None]  # a fragment, or fn(match, **params)


def compile_pattern(pattern: Pattern) -> dict[str, PatternNode]:
    """``pattern`` with every node a PatternNode and chain inputs made explicit."""
    if not isinstance(pattern, Mapping) or not pattern:
        raise PassError(f"a pattern is a non-empty dict of name -> op, not {pattern!r}")
    out: dict[str, PatternNode] = {}
    for name, value in pattern.items():
        if isinstance(value, (str, AnyOf)):
            value = pat(value)
        elif isinstance(value, (tuple, list)) and len(value) in (2, 3) and isinstance(value[1], Mapping):
            value = pat(*value)
        elif not isinstance(value, PatternNode):
            raise PassError(f"pattern node {name!r}: an op name, any_of(...), ANY, (op, params[, inputs]) "
                            f"or pat(...), not {value!r}")
        if value.inputs is None and out:
            value = replace(value, inputs=(list(out)[-1],))
        later = [i for i in value.inputs or () if i in pattern and i not in out]
        if later:
            raise PassError(f"pattern node {name!r} reads {later[0]!r}, which comes after it: order the pattern")
        out[name] = value
    return out


class Match(dict):
    """One match: bound name -> node path (pattern nodes, then free input names). ``node(name)``: the Node."""

    def __init__(self, graph: Graph, paths: Mapping[str, str], names: Iterable[str]):
        super().__init__(paths)
        self.graph, self.names = graph, tuple(names)

    def node(self, name: str) -> Node:
        return self.graph[self[name]]

    @property
    def nodes(self) -> tuple[str, ...]:
        """The matched nodes' paths (free inputs left out), in pattern order."""
        return tuple(self[n] for n in self.names)


@dataclass(frozen=True)
class NearMiss:
    """Where a partial match broke: the node, why, and how many pattern nodes had matched."""

    path: str | None
    reason: str
    matched: int

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class _Search:
    """Backtracking search for one match from an anchor; keeps the deepest failure."""

    def __init__(self, graph: Graph, pattern: dict[str, PatternNode], taken: set[str]):
        self.graph, self.pattern, self.names, self.taken = graph, pattern, list(pattern), taken
        self.miss: NearMiss | None = None

    def fail(self, depth: int, path: str | None, reason: str) -> None:
        if self.miss is None or depth > self.miss.matched:
            self.miss = NearMiss(path, reason, depth)

    def extend(self, bound: dict[str, str], depth: int, candidates: list[str] | None = None) -> dict[str, str] | None:
        if depth == len(self.names):
            return self._closed(bound)
        name = self.names[depth]
        want = self.pattern[name]
        if candidates is None:
            sources = [bound[i] for i in want.inputs or () if i in bound]
            candidates = list(self.graph.successors(sources[0])) if sources else list(self.graph.order)
            if not candidates:
                self.fail(depth, sources[0], f"feeds nothing, wanted {want.op} after it")
        used = {bound[n] for n in self.names[:depth]}
        for path in candidates:
            if path in used or path in self.taken:
                continue
            reason, bindings = self._check(want, path, bound)
            if reason:
                self.fail(depth, path, reason)
            for binding in bindings:
                found = self.extend({**bound, name: path, **binding}, depth + 1)
                if found:
                    return found
        return None

    def _check(self, want: PatternNode, path: str, bound: dict[str, str]) -> tuple[str, list[dict[str, str]]]:
        """Why ``path`` cannot be ``want`` ('' if it can), and each way it binds the free input names."""
        node = self.graph[path]
        refs = want.inputs
        inside = [r for r in refs or () if r in self.pattern]
        after = f" after {inside[0]}" if inside else ""
        if node.op not in want.op:
            return f"op {node.op}, wanted {want.op}{after}", []
        bindings: list[dict[str, str]] = [{}]
        if refs is not None:
            if len(node.inputs) != len(refs):
                return f"reads {len(node.inputs)} input(s), wanted {len(refs)} ({', '.join(refs)})", []
            orders = dict.fromkeys(permutations(node.inputs)) if want.commutative else [node.inputs]
            reads = [self._reads(refs, inputs, bound) for inputs in orders]
            bindings = [binding for reason, binding in reads if not reason]
            if not bindings:
                return reads[0][0], []
        values = params_with_defaults(node)
        for key, expected in want.params.items():
            if key not in values:
                return f"has no param {key}", []
            value = values[key]
            if callable(expected):
                if not expected(value):
                    return f"{key}={value!r} fails the pattern's test{_named(expected)}", []
            elif value != expected:
                return f"{key}={value!r}, wanted {expected!r}", []
        if want.where is not None and not want.where(node):
            return f"fails the pattern's test{_named(want.where)}", []
        return "", bindings

    def _reads(self, refs: tuple[str, ...], inputs: tuple[str, ...],
               bound: dict[str, str]) -> tuple[str, dict[str, str]]:
        """Why a node reading ``inputs`` cannot read ``refs`` ('' if it can), and the free input names it binds."""
        binding: dict[str, str] = {}
        for ref, actual in zip(refs, inputs):
            expected = bound.get(ref, binding.get(ref))
            if expected is None and ref not in self.pattern:
                binding[ref] = actual
            elif expected != actual:
                return f"reads {actual!r} where the pattern has {ref} ({expected!r})", {}
        return "", binding

    def _closed(self, bound: dict[str, str]) -> dict[str, str] | None:
        """``bound`` if no node but the last (or a shared one) feeds a node outside the match."""
        inside = {bound[n] for n in self.names}
        for name in self.names[:-1]:
            if self.pattern[name].shared:
                continue
            outside = [c for c in self.graph.successors(bound[name]) if c not in inside]
            if outside:
                self.fail(len(self.names), bound[name], f"also feeds {outside[0]!r}, outside the pattern")
                return None
        return bound


def _named(fn: Callable) -> str:
    name = getattr(fn, "__name__", "")
    return f" ({name})" if name and name != "<lambda>" else ""


def params_with_defaults(node: Node) -> dict[str, Any]:
    """The node's params with its op's defaults filled in (a Graph's nodes bind to their ops)."""
    bound = get_op(node.op).signature.bind(**node.params)
    bound.apply_defaults()
    return {**bound.arguments, **node.params}


def _search(graph: Graph, pattern: Pattern) -> tuple[list[Match], list[NearMiss]]:
    compiled = compile_pattern(pattern)
    names = list(compiled)
    taken: set[str] = set()
    found, misses = [], []
    for anchor in graph.find(op=compiled[names[0]].op.ops or None):
        search = _Search(graph, compiled, taken)
        paths = search.extend({}, 0, [anchor])
        if paths:
            m = Match(graph, paths, names)
            taken.update(m.nodes)
            found.append(m)
        elif search.miss and anchor not in taken:
            misses.append(search.miss)
    return found, misses


def match(graph: Graph, pattern: Pattern) -> list[Match]:
    """The matches of ``pattern`` in ``graph`` (name -> path), non-overlapping, in graph order."""
    return _search(graph, pattern)[0]


def explain(graph: Graph, pattern: Pattern | str | Pass) -> list[NearMiss]:
    """The near misses of ``pattern`` (or of the rule pass so named), nearest first, e.g. ``layer1/relu:
    op relu, wanted batch_norm|ghost_batch_norm after conv``; one entry if no node has the first op."""
    compiled = compile_pattern(rule_of(pattern).pattern if isinstance(pattern, (str, Pass)) else pattern)
    found, misses = _search(graph, compiled)
    if not misses and not found:
        return [NearMiss(None, f"no node has op {next(iter(compiled.values())).op}", 0)]
    return sorted(misses, key=lambda m: -m.matched)


def rule_of(item: str | Pass) -> Rule:
    """The Rule of the pass ``item`` (a name or a Pass); RewriteError for a hand-written pass."""
    p = get_pass(item) if isinstance(item, str) else item
    if not isinstance(p.fn, Rule):
        raise RewriteError(p.name, "a hand-written pass, not a rule: it has no pattern to explain")
    return p.fn


def pattern_str(pattern: Pattern) -> str:
    """A pattern as text: ``'relu' node``, ``conv -> batch_norm|ghost_batch_norm -> ... chain``."""
    compiled = compile_pattern(pattern)
    nodes = list(compiled.values())
    if len(nodes) == 1:
        return f"'{nodes[0].op}' node" if len(nodes[0].op.ops) == 1 else f"{nodes[0].op} node"
    names = list(compiled)
    if all(n.inputs == (names[i],) for i, n in enumerate(nodes[1:])):
        return " -> ".join(str(n.op) for n in nodes) + " chain"
    return "pattern " + ", ".join(f"{k}: {v.op}" for k, v in compiled.items())


# -- replacements ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Bound:
    """In a replacement, the matched node ``name``, as it was or ``changed``."""

    name: str
    op: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def changed(self, op: str | None = None, inputs: Iterable[str] | None = None,
                attrs: Mapping[str, Any] | None = None, **params: Any) -> Bound:
        """This node with another op or inputs, and params and attrs merged over its own."""
        return Bound(self.name, op or self.op, {**self.params, **params},
                     self.inputs if inputs is None else tuple(inputs), {**self.attrs, **(attrs or {})})


def bound(name: str) -> Bound:
    """The matched node ``name``, for a replacement: kept as it was, or ``.changed(...)``."""
    return Bound(name)


def replace_match(graph: Graph, m: Match, fragment: Mapping[str, Any]) -> tuple[Graph, str]:
    """``graph`` with the matched nodes of ``m`` replaced by ``fragment`` (see the module doc), and the
    path of the node that now feeds the consumers of the pattern's last node."""
    if not isinstance(fragment, Mapping):
        raise PassError(f"a replacement is a dict of name -> node, not {fragment!r}")
    first, last = m.names[0], m.names[-1]
    previous: tuple[str, ...] = graph[m[first]].inputs
    if not fragment and len(previous) != 1:
        raise PassError(f"an empty replacement removes the match, so its consumers read its input instead; "
                        f"{m[first]!r} reads {len(previous)}")
    namespace = graph[m[last]].namespace
    paths: dict[str, str] = {}
    for name in fragment:
        paths[name] = m[name] if name in m.names else fresh_path(graph, join(namespace, name), paths.values())
    refs = {**m, **paths}

    def resolve(ref: str, at: str) -> str:
        if ref not in refs:
            raise PassError(f"replacement node {at!r} reads {ref!r}, which is neither in the replacement nor bound "
                            f"by the pattern ({', '.join(m)})")
        return refs[ref]

    add: dict[str, tuple] = {}
    for name, value in fragment.items():
        if isinstance(value, Bound):
            old = m.node(value.name)
            op, params, inputs = value.op or old.op, {**old.params, **value.params}, value.inputs
            attrs = {**old.attrs, **value.attrs}
        else:
            op, params, inputs, attrs = (*value, None, None)[:4]
            if attrs is None:
                attrs = m.node(name).attrs if name in m.names else {}
        inputs = previous if inputs is None else tuple(resolve(i, name) for i in inputs)
        add[paths[name]] = (op, params, list(inputs), dict(attrs))
        previous = (paths[name],)
    for name in m.names[:-1]:  # a matched node left out may not feed anything outside the match
        outside = [c for c in graph.successors(m[name]) if c not in m.nodes]
        if outside and m[name] not in add:
            raise PassError(f"the replacement drops {m[name]!r}, which {outside[0]!r} outside the match reads")
    return graph.splice(m.nodes, add, uses={m[last]: previous[0]}), previous[0]


def fresh_path(graph: Graph, path: str, taken: Iterable[str] = ()) -> str:
    """``path``, or ``path_1``, ``path_2``, ... where a node (or a namespace, or ``taken``) already has it."""
    taken = set(taken)
    candidate, k = path, 0
    while candidate in graph or candidate in taken or any(p.startswith(candidate + SEP) for p in graph):
        k += 1
        candidate = f"{path}_{k}"
    return candidate


# -- rules -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """A pattern, its replacement and (optionally) the pattern of its own result, ``applied``:
    places where that matches are done, and left alone."""

    pattern: dict[str, PatternNode]
    replacement: Replacement
    applied: tuple[dict[str, PatternNode], str] | None = None

    @classmethod
    def of(cls, pattern: Pattern, replacement: Replacement,
           applied: Pattern | tuple[Pattern, str] | None = None) -> Rule:
        """The rule replacing ``pattern`` by ``replacement``; ``applied``: the pattern of the result, or
        ``(pattern, name)``: which of its nodes an ``already applied`` error shows (default its last)."""
        if applied is not None:
            applied_pattern, shown = applied if isinstance(applied, tuple) else (applied, list(applied)[-1])
            applied = (compile_pattern(applied_pattern), shown)
        return cls(compile_pattern(pattern), replacement, applied)

    def __call__(self, graph: Graph, **params: Any) -> Graph:
        """Replace every match; a no-match PassError if none is left to do (replacements that are None or
        leave the graph as it was count as done)."""
        before = graph
        done = match(graph, self.applied[0]) if self.applied else []
        done_nodes = {p for d in done for p in d.nodes}
        todo = [m for m in match(graph, self.pattern) if not done_nodes & set(m.nodes)]
        if not todo:
            raise self.no_match(graph, [d[self.applied[1]] for d in done] if self.applied else [])
        renamed: dict[str, str] = {}  # a replaced match's last node -> the node now in its place
        for m in todo:
            current = Match(graph, {k: renamed.get(v, v) for k, v in m.items()}, m.names)
            fragment = self.replacement(current, **params) if callable(self.replacement) else self.replacement
            if fragment is not None:
                graph, renamed[m[m.names[-1]]] = replace_match(graph, current, fragment)
        if graph == before:
            raise self.no_match(graph, [m[m.names[-1]] for m in todo])
        return graph

    def no_match(self, graph: Graph, done: list[str]) -> PassError:
        """The error for no match: where it is already applied, else the nearest miss (if a node has the first op)."""
        if done:
            return no_match(pattern_str(self.pattern), done)
        nearest = explain(graph, self.pattern)[0]
        where = f"; nearest: {nearest}" if nearest.path else ""
        return PassError(f"found no {pattern_str(self.pattern)}{where}", no_match=True)


def rule(pattern: Pattern, replacement: Replacement, *, name: str, doc: str | None = None, applies_to: str = "net",
         after: Iterable[str] = (), applied: Pattern | tuple[Pattern, str] | None = None, keeps: str = "changes",
         state: StateMap | None = None) -> Pass:
    """A pass that replaces every match of ``pattern`` by ``replacement`` (see the module doc). A function
    replacement gives the pass its params after the match and, unless ``doc``, its doc; ``applied`` as for
    ``Rule.of``; the rest as for ``register_pass``, which registers it: ``register_pass(rule(...))``."""
    if doc is None:
        doc = inspect.getdoc(replacement) if callable(replacement) else None
    if not doc:
        raise ValueError(f"rule {name!r}: give a doc (what it changes, why it helps, its params)")
    return Pass.of(name, Rule.of(pattern, replacement, applied), applies_to, after, doc,
                   params_of=replacement if callable(replacement) else lambda match: None, keeps=keeps, state=state)
