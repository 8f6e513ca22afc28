"""Graph -> ``torch.fx.GraphModule``: straight-line code, one call per node.

The generated ``forward`` has no dict walk and no per-node Python dispatch: module nodes
are ``self.<path>(x)`` calls, function nodes direct calls (``torch.flatten(x, start_dim=1)``),
identities no code at all. Submodules sit at their node paths (``layer1.residual.res1.conv``),
so ``state_dict`` keys read like the spec; a name that is a keyword or no identifier is reached
by ``getattr`` (``getattr(self.blk, 'in')(x)``). The result is an ordinary ``nn.Module``: it
takes ``torch.compile``, ``.to(memory_format=torch.channels_last)``, ``.half()`` and
``state_dict`` round trips.
"""

from __future__ import annotations

import functools
import keyword
import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import networkx as nx
import torch
import torch.nn.functional as F
from torch import fx, nn

from .errors import ParamError, ShapeError, SpecError
from .graph import Graph
from .ops import Stored, get_op


class Network(fx.GraphModule):
    """A compiled graph. ``spec_graph`` is the Graph it came from (for the trainer's hints).

    The first eager forward pass is checked: if it raises, the node that failed is found and
    a ``ShapeError`` names its path, op and input shapes. Later calls, and ``torch.compile``,
    run the bare code.
    """

    spec_graph: Graph
    _checked: bool = False

    def recompile(self):
        targets = [n.target for n in self.graph.nodes if n.op == "call_module"]
        self.graph.on_generate_code(lambda _: functools.partial(_reach_by_getattr, targets))
        code = super().recompile()
        cls = type(self)
        forward = cls.forward

        @functools.wraps(forward)
        def checked_forward(self: Network, *args: Any, **kwargs: Any) -> Any:
            if torch.compiler.is_compiling() or self._checked:  # dynamo traces the bare code
                return forward(self, *args, **kwargs)
            try:
                out = forward(self, *args, **kwargs)
            except Exception as error:
                raise _locate_failure(self, args, error) from error
            self._checked = True
            return out

        cls.forward = checked_forward
        return code

    def node_module(self, path: str) -> nn.Module:
        """The submodule that runs the module node ``path``."""
        return self.get_submodule(module_target(path))

    def __deepcopy__(self, memo: dict) -> Network:
        copied = super().__deepcopy__(memo)
        copied.spec_graph = self.spec_graph
        return copied

    def __reduce__(self) -> tuple:
        # fx pickles the generated code and traces it again on load, as a plain GraphModule whose
        # nodes lost their paths; compiling the Graph again with these modules gives this Network.
        body = {k: v for k, v in self.__dict__.items() if k not in ("_graph", "_code", "_modules")}
        return _unpickle_network, (self.spec_graph, self.meta["graphnet_outputs"], dict(self._modules), body)


def _unpickle_network(graph: Graph, outputs: Any, modules: dict[str, nn.Module], body: dict) -> Network:
    held = nn.Module()
    for name, module in modules.items():
        held.add_module(name, module)
    with warnings.catch_warnings():  # unused nodes were named when it was first compiled
        warnings.simplefilter("ignore")
        network = compile(graph, outputs, modules=held)
    network.training = body["training"]
    for key, value in body.items():  # what else was set on it, as fx keeps it
        if not hasattr(network, key):
            setattr(network, key, value)
    return network


def _reach_by_getattr(targets: Sequence[str], body: list[str]) -> list[str]:
    """The generated code's lines with each call of a submodule in ``targets`` written by ``_reach``:
    fx writes ``self.blk.in`` for a keyword and ``getattr(self, "name")`` unescaped, which do not parse."""
    swaps = [(f" = {fx_text}(", f" = {text}(") for target in targets
             if (fx_text := _reach(target, fx_style=True)) != (text := _reach(target, fx_style=False))]
    for fx_text, text in swaps:
        body = [line.replace(fx_text, text) for line in body]
    return body


def _reach(target: str, fx_style: bool) -> str:
    """Python reaching the submodule ``target`` from ``self``: as fx writes it, or by ``getattr`` where
    a name is no identifier or a keyword."""
    text = "self"
    for name in target.split("."):
        if name.isidentifier() and (fx_style or not keyword.iskeyword(name)):
            text = f"{text}.{name}"
        else:
            text = f'getattr({text}, "{name}")' if fx_style else f"getattr({text}, {name!r})"
    return text


class _Locator(fx.Interpreter):
    """Re-runs a failed forward node by node to find the node that raises."""

    def __init__(self, module: nn.Module):
        super().__init__(module)
        self.extra_traceback = False  # our message names the node; fx's note would repeat it

    def run_node(self, n: fx.Node) -> Any:
        try:
            return super().run_node(n)
        except Exception as error:
            path = n.meta.get("graphnet_path")
            if path is None:
                raise
            shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else a
                      for a in self.map_nodes_to_values(n.args, n)]
            raise ShapeError(f"op {n.meta['graphnet_op']!r} failed on inputs of shape "
                             f"{', '.join(map(str, shapes))}: {error}", path) from error


def _locate_failure(module: Network, args: tuple, error: Exception) -> Exception:
    try:
        with torch.no_grad():
            _Locator(module).run(*args)
    except ShapeError as located:
        return located
    except Exception:  # noqa: BLE001 - the original error is the better report
        pass
    return error


def compile(graph: Graph, outputs: str | Sequence[str] | Mapping[str, str] | None = None,
            modules: nn.Module | None = None) -> Network:
    """Generate the executor for ``graph``.

    ``outputs``: a node path (the forward returns that tensor; default the graph's last
    node), a list of paths or a ``{key: path}`` dict (the forward returns a dict). Params
    named in a node's ``frozen`` attr get ``requires_grad=False``. ``modules``: take each
    module node's submodule from this network, by path, instead of making a new one, so
    two executors share weights (a flip-TTA eval graph and its training graph, say).
    Nodes that no output depends on (a second head) still run; a warning names them. A
    cross-entropy written as nodes (:func:`cross_entropies`: the loss graphs, label smoothing
    included) is one ``F.cross_entropy(logits, target, reduction='none', label_smoothing=α)``
    call at its last node's path; the graph keeps its nodes.
    """
    root = nn.Module()
    code = fx.Graph()
    values: dict[str, fx.Node] = {name: code.placeholder(_identifier(name)) for name in graph.inputs}
    losses = cross_entropies(graph, _output_paths(graph, outputs))
    folded = {path for loss in losses.values() for path in loss.folded}
    for node in graph.nodes:
        if node.path in folded:
            continue
        if node.path in losses:
            loss = losses[node.path]
            fx_node = code.create_node("call_function", F.cross_entropy, (values[loss.logits], values[loss.target]),
                                       {"reduction": "none", "label_smoothing": loss.label_smoothing},
                                       name=_identifier(node.path))
            fx_node.meta.update(graphnet_path=node.path, graphnet_op="cross_entropy")
            values[node.path] = fx_node
            continue
        op = get_op(node.op, node.path)
        args = tuple(values[i] for i in node.inputs)
        if op.kind == "alias":
            values[node.path] = args[0]
            continue
        params_args, params = op.call_args(node.params)
        if op.kind == "module":
            target = module_target(node.path)
            module = modules.get_submodule(target) if modules is not None else _make(op, node.path, params_args, params)
            for name in node.attrs.get("frozen", ()):
                if not isinstance(getattr(module, name, None), nn.Parameter):
                    raise ParamError(f"attr frozen names {name!r}, which is no parameter of op {node.op}", node.path)
                getattr(module, name).requires_grad_(False)
            _set_submodule(root, target, module)
            fx_node = code.create_node("call_module", target, args, {}, name=_identifier(node.path))
        else:
            fx_node = code.create_node("call_function", op.target, args + params_args, params,
                                       name=_identifier(node.path))
        fx_node.meta.update(graphnet_path=node.path, graphnet_op=node.op)
        values[node.path] = fx_node
    code.output(_outputs(graph, values, outputs))
    _warn_unused(graph, outputs)
    network = Network(root, code, class_name="Network")
    stored = stored_targets(network)
    if stored:
        network._register_load_state_dict_pre_hook(functools.partial(load_stored, stored))
    network.spec_graph = graph
    network.meta["graphnet_outputs"] = outputs
    return network


def stored_targets(network: nn.Module) -> list[str]:
    """The submodules of ``network`` that are parameter or buffer nodes, whose keys ``load_stored`` renames."""
    return [n for n, m in network.named_modules() if isinstance(m, Stored)]


def load_stored(targets: list[str], state_dict: dict, prefix: str, *_: Any) -> None:
    """Rename each parameter or buffer node's key (``class_token``, as it is saved) to its tensor's
    (``class_token.value``) before the network loads ``state_dict``."""
    for target in targets:
        if prefix + target in state_dict:
            state_dict[f"{prefix}{target}.value"] = state_dict.pop(prefix + target)


def _make(op: Any, path: str, args: tuple, kwargs: dict) -> nn.Module:
    """The module of a module node; the factory's complaints about its params become a ParamError naming it."""
    try:
        return op.target(*args, **kwargs)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ParamError(f"op {op.name} cannot be made with these params: {e}", path) from e


@dataclass(frozen=True)
class CrossEntropy:
    """A per-sample cross-entropy written as nodes: ``log_softmax`` → ``nll``, with label smoothing
    (``neg_mean`` of the log-probabilities, ``add_weighted`` with the NLL) or without; ``folded``:
    the pattern's nodes before its last, which compile to no code of their own."""

    logits: str
    target: str
    label_smoothing: float
    folded: tuple[str, ...]


def cross_entropies(graph: Graph, outputs: Sequence[str] = ()) -> dict[str, CrossEntropy]:
    """The graph's cross-entropies by the path of each one's last node: a ``log_softmax`` over the
    classes (dim 1) read by an ``nll`` alone, or by an ``nll`` and a ``neg_mean`` that one
    ``add_weighted`` with weights ``1 - α`` and ``α`` joins (the ``label_smoothing`` pass). A
    pattern whose inner nodes another node reads, or that are among ``outputs``, is none."""
    found = {}
    for path in graph.find(op="log_softmax", where=lambda n: n.params.get("dim", 1) == 1):
        readers = {graph[r].op: r for r in graph.successors(path)}
        nll = readers.get("nll")
        if nll is None or graph[nll].inputs[0] != path or len(readers) != len(graph.successors(path)):
            continue
        logits, target = graph[path].inputs[0], graph[nll].inputs[1]
        if set(readers) == {"nll"}:
            found[nll] = CrossEntropy(logits, target, 0.0, (path,))
            continue
        uniform, joins = readers.get("neg_mean"), graph.successors(nll)
        if set(readers) != {"nll", "neg_mean"} or len(joins) != 1 or graph.successors(uniform) != joins:
            continue
        join = graph[joins[0]]
        wa, wb = join.params.get("wa", 1.0), join.params.get("wb", 1.0)
        if join.op == "add_weighted" and join.inputs == (nll, uniform) and math.isclose(wa + wb, 1.0):
            found[join.path] = CrossEntropy(logits, target, wb, (path, nll, uniform))
    return {last: loss for last, loss in found.items() if not set(loss.folded) & set(outputs)}


def _output_paths(graph: Graph, outputs: Any) -> list[str]:
    """The paths of the nodes that ``compile``'s ``outputs`` names."""
    return [graph.output] if outputs is None else [outputs] if isinstance(outputs, str) else \
        list(outputs.values()) if isinstance(outputs, Mapping) else list(outputs)


def unused_nodes(graph: Graph, outputs: str | Sequence[str] | Mapping[str, str] | None = None) -> list[str]:
    """The paths, in execution order, of the nodes that no output (``compile``'s ``outputs``) depends on."""
    paths = _output_paths(graph, outputs)
    for path in paths:
        if path not in graph:
            raise SpecError("output is not a node of the graph", path)
    used = set(paths).union(*(nx.ancestors(graph.nx, p) for p in paths))
    return [p for p in graph.order if p not in used]


def _warn_unused(graph: Graph, outputs: Any) -> None:
    """Warn once, naming them, about nodes that no output depends on."""
    unused = unused_nodes(graph, outputs)
    if unused:
        shown = ", ".join(unused[:8]) + (f" and {len(unused) - 8} more" if len(unused) > 8 else "")
        warnings.warn(f"compile: {len(unused)} node(s) that no output uses still run: {shown} "
                      f"(to return them too, pass outputs=[...])", stacklevel=3)


def _outputs(graph: Graph, values: dict[str, fx.Node], outputs: Any) -> Any:
    def value(path: str) -> fx.Node:
        if path not in values:
            raise SpecError("output is not a node of the graph", path)
        return values[path]

    if outputs is None:
        return value(graph.output)
    if isinstance(outputs, str):
        return value(outputs)
    if isinstance(outputs, Mapping):
        return {k: value(p) for k, p in outputs.items()}
    return {p: value(p) for p in outputs}


def module_target(path: str) -> str:
    """The submodule name of a node path: ``layer1/residual/in`` -> ``layer1.residual.in``."""
    return path.replace("/", ".")


def _identifier(path: str) -> str:
    """A Python identifier for the generated code (fx makes it unique)."""
    name = "".join(c if c.isalnum() else "_" for c in path)
    return name if name[:1].isalpha() else f"n_{name}"


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    *outer, name = target.split(".")
    for part in outer:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    root.add_module(name, module)
