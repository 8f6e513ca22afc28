"""The spec language: networks as nested dicts of named nodes.

A node is a tuple ``(op, params)``, ``(op, params, inputs)`` or ``(op, params, inputs, attrs)``:
``op`` a registered op name, ``params`` a dict bound against the op's signature, ``inputs`` a
list of references, ``attrs`` a dict of hints for the trainer (frozen params, lr/wd
multipliers, data initialisers). A nested dict is a namespace. A name is any non-empty string
without '.', but for the attributes a compiled network has (``check_path``: ``forward``,
``training``, ...). Dict order is execution order,
and a node without ``inputs`` takes the previous node (the first node takes the first graph
input). A reference is resolved, in this order:

1. relative to the node's namespace: ``'in'`` is a sibling, ``'../prep/act'`` climbs one level;
   a leading ``'/'`` makes it absolute and skips this step;
2. absolute from the root: ``'prep/act'``;
3. a graph input: ``'input'`` by default (``'/input'`` where a node nearby has that name).

A reference to a namespace means its last node. Specs are plain data: they print, compare
equal and round-trip through JSON (``to_json``/``from_json``) without executing code.

Ops registered outside graphnet are recorded in the JSON (``{"format": "graphnet-spec",
"imports": ["mypkg.ops"], "spec": {...}}``); ``from_json`` imports those modules only when
asked (``imports=True``), so loading JSON never runs code unless the caller opts in.
"""

from __future__ import annotations

import difflib
import importlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterator

from torch import fx, nn

from .errors import DuplicatePathError, EmptyNamespaceError, SpecError, UnknownInputError, UnknownOpError
from .ops import check_value, get_op

# The attrs the compiler and trainer read, and the type each must have.
ATTRS = {
    "frozen": list[str],
    "frozen_after": dict[str, float],
    "lr_mult": dict[str, float],
    "wd_mult": dict[str, float],
    "init": dict[str, Any],
}
JSON_FORMAT = "graphnet-spec"

SEP = "/"

# The names a node or namespace cannot have. The compiled network holds each node's module at its
# path (node ``a/b`` is attribute ``b`` of attribute ``a``), so that state_dict keys are node paths;
# a name that is already an attribute of the holder (``forward``, ``training``, ``to``) would hide
# it or break it. The holder of the top-level names is the network itself (a torch.fx.GraphModule,
# plus what graphnet.compile.Network adds), of the others a plain torch.nn.Module.
MODULE_ATTRIBUTES = frozenset(dir(nn.Module()))
NETWORK_ATTRIBUTES = (MODULE_ATTRIBUTES | frozenset(dir(fx.GraphModule(nn.Module(), fx.Graph())))
                      | {"spec_graph", "node_module", "_checked"})


@dataclass
class FlatNode:
    """One node of a flattened spec: its full path and its normalised parts."""

    path: str
    op: str
    params: dict[str, Any]
    inputs: list[str] | None  # references as written; None = the previous node
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return parent(self.path)


def parent(path: str) -> str:
    """The namespace holding ``path`` ('' for the root)."""
    return path.rpartition(SEP)[0]


def join(*parts: str) -> str:
    return SEP.join(p for p in parts if p)


def normalise_node(value: Any, path: str) -> tuple[str, dict, list[str] | None, dict]:
    """Check one node's shape and return ``(op name, params, inputs, attrs)``."""
    if not isinstance(value, (tuple, list)) or not 2 <= len(value) <= 4:
        raise SpecError(f"a node must be (op, params[, inputs[, attrs]]) or a dict, not {value!r}", path)
    op, params, inputs, attrs = (*value, None, None)[:4]
    name = get_op(op, path).name
    if not isinstance(params, dict):
        raise SpecError(f"params must be a dict, not {params!r}", path)
    if isinstance(inputs, str):
        inputs = [inputs]
    elif inputs is not None:
        if not isinstance(inputs, (list, tuple)) or not all(isinstance(i, str) for i in inputs):
            raise SpecError(f"inputs must be a list of names, not {inputs!r}", path)
        inputs = list(inputs)
    if attrs is not None and not isinstance(attrs, dict):
        raise SpecError(f"attrs must be a dict, not {attrs!r}", path)
    check_attrs(attrs or {}, path)
    return name, dict(params), inputs, dict(attrs or {})


def check_attrs(attrs: dict, path: str | None = None) -> None:
    """Raise SpecError if a known attr (``ATTRS``) has the wrong type; other keys are left to their readers."""
    for key, hint in ATTRS.items():
        if key in attrs:
            reason = check_value(attrs[key], hint)
            if reason is not None:
                raise SpecError(f"attr {key}={attrs[key]!r} {reason}", path)


def check_path(path: str) -> None:
    """Raise SpecError, naming the namespace or node, where a name in ``path`` is one the compiled
    network cannot hold (``MODULE_ATTRIBUTES``, and ``NETWORK_ATTRIBUTES`` at the top)."""
    parts = path.split(SEP)
    for depth, name in enumerate(parts):
        if name in (NETWORK_ATTRIBUTES if depth == 0 else MODULE_ATTRIBUTES):
            holder = "the compiled network (a torch.fx.GraphModule)" if depth == 0 else "every torch.nn.Module"
            raise SpecError(f"the name {name!r} is an attribute of {holder}, which holds the module of each node "
                            "at its path; rename it", SEP.join(parts[:depth + 1]))


def flat_nodes(spec: dict) -> tuple[list[FlatNode], dict[str, str]]:
    """Nodes in dict order, and each namespace's last node (what a reference to it means)."""
    if not isinstance(spec, dict):
        raise SpecError(f"a spec is a dict of named nodes, not {type(spec).__name__}")
    nodes: list[FlatNode] = []
    last: dict[str, str] = {}
    seen: set[str] = set()

    def walk(d: dict, prefix: str) -> None:
        if not d:
            raise EmptyNamespaceError("empty namespace: it holds no nodes", prefix or "<root>")
        for key, value in d.items():
            if not isinstance(key, str) or not key or "." in key or any(p in ("", "..") for p in key.split(SEP)):
                raise SpecError(f"bad name {key!r}: names are non-empty strings without '.' or '..'",
                                prefix or None)
            path = join(prefix, key)
            if isinstance(value, dict):
                walk(value, path)
            else:
                if path in seen:
                    raise DuplicatePathError("two nodes have this path", path)
                seen.add(path)
                nodes.append(FlatNode(path, *normalise_node(value, path)))
                for ns in namespaces(path):  # each enclosing namespace ends (so far) here
                    last[ns] = path

    walk(spec, "")
    for ns in last:
        if ns in seen:
            raise DuplicatePathError("a node and a namespace have this path", ns)
    return nodes, last


def namespaces(path: str) -> Iterator[str]:
    """The proper namespaces enclosing ``path``, innermost last ('a', 'a/b' for 'a/b/c')."""
    parts = path.split(SEP)
    for i in range(1, len(parts)):
        yield SEP.join(parts[:i])


def _climb(namespace: str, ref: str) -> str | None:
    """``ref`` read relative to ``namespace``, or None if '..' climbs above the root."""
    parts = namespace.split(SEP) if namespace else []
    for part in ref.split(SEP):
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return SEP.join(parts)


def resolve(ref: str, namespace: str, nodes: set[str], last: dict[str, str], graph_inputs: tuple[str, ...],
            path: str | None = None) -> str:
    """The full path (or graph input) a reference means; see the module doc for the order."""
    candidates = [ref[1:]] if ref.startswith(SEP) else [_climb(namespace, ref), ref]
    for c in candidates:
        if c in nodes:
            return c
        if c in last:
            return last[c]
    name = ref[1:] if ref.startswith(SEP) else ref
    if name in graph_inputs:
        return name
    names = sorted(nodes | set(last) | set(graph_inputs))
    near = difflib.get_close_matches(_climb(namespace, ref.lstrip(SEP)) or ref, names, n=3)
    hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
    raise UnknownInputError(f"input {ref!r} is no node, namespace or graph input{hint}", path)


def relative_ref(namespace: str, target: str) -> str:
    """The shortest relative reference from ``namespace`` to the node path ``target``."""
    ns = namespace.split(SEP) if namespace else []
    tg = target.split(SEP)
    common = 0
    while common < min(len(ns), len(tg) - 1) and ns[common] == tg[common]:
        common += 1
    return SEP.join([".."] * (len(ns) - common) + tg[common:])


# -- JSON -------------------------------------------------------------------------------

def to_json(spec: dict, **dump_kwargs: Any) -> str:
    """The spec as JSON: namespaces are objects, nodes are arrays ``[op, params, ...]``.

    A spec whose ops were registered outside graphnet is wrapped as ``{"format":
    "graphnet-spec", "imports": [modules], "spec": {...}}``, naming the modules that
    register them (``Op.source``). A param or attr that is not plain data (an ``instance``
    node's module) is a SpecError naming the node.
    """
    nodes, _ = flat_nodes(spec)  # validate first, so bad specs fail here rather than on load
    for n in nodes:
        for where, values in (("param", n.params), ("attr", n.attrs)):
            for key, value in values.items():
                if not is_plain(value):
                    raise SpecError(f"op {n.op}: {where} {key}={value!r} is not plain data, so the spec cannot "
                                    "go to JSON (register the module's class to make it an op of its own)", n.path)
    sources = {get_op(n.op).source for n in nodes}
    imports = sorted(s for s in sources if s and s != "__main__" and s.partition(".")[0] != "graphnet")
    data = {"format": JSON_FORMAT, "imports": imports, "spec": spec} if imports else spec
    return json.dumps(data, **{"indent": 1, "allow_nan": False, **dump_kwargs})


def is_plain(value: Any) -> bool:
    """JSON can carry ``value``: None, bool, str, finite numbers, and lists, tuples and str-keyed dicts of them."""
    if value is None or isinstance(value, (bool, str, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(map(is_plain, value))
    return isinstance(value, dict) and all(isinstance(k, str) and is_plain(v) for k, v in value.items())


def from_json(text: str, imports: bool | list[str] = False) -> dict:
    """A spec from JSON; ops are looked up by name, and nothing is executed unless asked.

    ``imports``: True imports the modules the JSON records as the sources of its ops (see
    ``to_json``), a list imports those modules; by default nothing is imported, and an op
    that is not registered is an UnknownOpError naming the modules to import. SpecError for
    invalid JSON, a key given twice in one object, or nesting too deep to walk.
    """
    def node(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: node(v) for k, v in value.items()}
        if not isinstance(value, list) or len(value) < 2 or not isinstance(value[1], dict):
            return value  # flat_nodes names the node and says what is wrong
        op, params, *rest = value
        return (op, {k: tuples(v) for k, v in params.items()}, *rest)

    def tuples(value: Any) -> Any:  # a param's lists, at any depth, are tuples
        return tuple(map(tuples, value)) if isinstance(value, list) else value

    def unique(pairs: list[tuple[str, Any]]) -> dict:
        keys = [k for k, _ in pairs]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise SpecError(f"not a JSON spec: key {twice[0]!r} appears twice in one object")
        return dict(pairs)

    recorded: list[str] = []
    try:
        data = json.loads(text, object_pairs_hook=unique)
        if isinstance(data, dict) and data.get("format") == JSON_FORMAT:
            recorded, data = data.get("imports", []), data.get("spec")
        for module_name in recorded if imports is True else imports or ():
            importlib.import_module(module_name)
        spec = node(data)
        flat_nodes(spec)
    except json.JSONDecodeError as e:
        raise SpecError(f"not a JSON spec: {e}") from None
    except RecursionError:  # in the parser or in walking the nodes
        raise SpecError("not a JSON spec: nested too deeply") from None
    except UnknownOpError as e:
        if recorded and imports is not True:
            raise UnknownOpError(f"{e}; the spec records its ops' modules: {', '.join(recorded)} (import them, "
                                 f"pass imports=True, or on the command line --import MODULE)") from None
        raise
    return spec
