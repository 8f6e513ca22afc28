"""The pass registry, ``rewrite`` (named graph -> graph passes in order), and what passes raise or note.

Each pass declares what it keeps (``KEEPS``): ``'exact'``, the same function in train and eval
mode, with the weights carried over by node path; ``'eval'``, the same eval-mode function;
``'changes'``, a different function on purpose (shapes and validity kept). A pass that moves
weights between nodes or changes their shapes maps a ``state_dict`` too (``Pass.state``);
``rewrite(..., state=sd)`` carries the weights through, and ``rewrites.check`` verifies the claim.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Union

import torch

from ..compile import compile
from ..errors import SpecError
from ..graph import Graph, build
from ..ops import misfit, param_hints, params_str

APPLIES_TO = ("net", "loss", "eval")
KEEPS = ("exact", "eval", "changes")
State = Mapping[str, torch.Tensor]  # a state_dict: key (``layer1.conv.weight``) -> tensor


class RewriteError(SpecError):
    """A rewrite pass cannot apply; the message names the pass."""

    def __init__(self, pass_name: str, message: str, path: str | None = None):
        self.pass_name, self.message = pass_name, message
        super().__init__(f"pass {pass_name!r}: {message}", path)


class NoMatchError(RewriteError):
    """The pass found nothing to rewrite (or found its own work: already applied).

    ``rewrite(..., strict=False)`` skips such a pass instead of raising.
    """


class PassError(SpecError):
    """What a pass raises about its params or its graph; the ``Pass`` that runs it adds its name.

    ``no_match=True``: it found nothing to rewrite (becomes a ``NoMatchError``).
    """

    def __init__(self, message: str, path: str | None = None, no_match: bool = False):
        self.message, self.no_match = message, no_match
        super().__init__(message, path)


class PassNote(UserWarning):
    """A pass skipped an optional part it had nothing to do on (``warnings.warn``; the CLI prints one line)."""


StateMap = Callable[..., State]  # fn(state, before, after, **params) -> the entries it computes


@dataclass(frozen=True)
class Pass:
    """A registered pass: ``fn(graph, **params) -> Graph`` applied to the ``applies_to`` graph.

    ``keeps``: what it keeps (one of ``KEEPS``). ``state``: ``fn(state, before, after, **params)``,
    the ``state_dict`` entries of the rewritten graph that it computes from the old ones (a
    folded conv's weight, say); the others are carried by key (node path) where their shape is kept.
    """

    name: str
    fn: Callable[..., Graph]
    applies_to: str  # 'net' | 'loss' | 'eval'
    signature: inspect.Signature  # the params, without the graph
    after: tuple[str, ...] = ()  # passes that, where a pipeline has them, must run before this one
    doc: str = ""
    hints: Mapping[str, Any] = field(default_factory=dict)  # the params' annotations, resolved
    keeps: str = "changes"
    state: StateMap | None = None

    @classmethod
    def of(cls, name: str, fn: Callable[..., Graph], applies_to: str = "net", after: Iterable[str] = (),
           doc: str | None = None, params_of: Callable[..., Any] | None = None, keeps: str = "changes",
           state: StateMap | None = None) -> Pass:
        """A pass running ``fn(graph, **params)``; its params are those of ``params_of`` (default ``fn``)
        after the first, checked against their annotations as ops' params are; its doc is ``fn``'s."""
        _check_kinds(name, applies_to, keeps)
        source = fn if params_of is None else params_of
        params = list(inspect.signature(source).parameters.values())[1:]
        return cls(name, fn, applies_to, inspect.Signature(params), tuple(after),
                   inspect.getdoc(fn) or "" if doc is None else inspect.cleandoc(doc), param_hints(source),
                   keeps, state)

    def params_str(self) -> str:
        """The params as ``(a, b=1, **params)``."""
        return params_str(self.signature)

    def help(self) -> str:
        """One line: name, params and the first line of the doc."""
        return f"{self.name}{self.params_str()}  {self.doc.splitlines()[0]}"

    def __call__(self, graph: Graph, **params: Any) -> Graph:
        try:
            self.signature.bind(**params)
        except TypeError as e:
            raise RewriteError(self.name, f"bad params {params!r} for {self.name}{self.params_str()}: {e}") from None
        problem = misfit(self.signature, self.hints, params)
        if problem is not None:
            raise RewriteError(self.name, problem)
        _RUNNING.append(self.name)
        try:
            return self.fn(graph, **params)
        except PassError as e:
            raise (NoMatchError if e.no_match else RewriteError)(self.name, e.message, e.path) from None
        finally:
            _RUNNING.pop()


def _check_kinds(name: str, applies_to: str, keeps: str) -> None:
    if applies_to not in APPLIES_TO:
        raise ValueError(f"pass {name!r}: applies_to must be one of {APPLIES_TO}, not {applies_to!r}")
    if keeps not in KEEPS:
        raise ValueError(f"pass {name!r}: keeps must be one of {KEEPS}, not {keeps!r}")


_RUNNING: list[str] = []  # the passes running now, innermost last


def running() -> str | None:
    """The name of the innermost pass running now, if any (for notes)."""
    return _RUNNING[-1] if _RUNNING else None


def no_match(looked_for: str, done: Iterable[str] = ()) -> PassError:
    """The error for a pass that found nothing; ``done`` lists the places showing it already applied."""
    done = list(done)
    shown = ", ".join(map(repr, done[:3])) + (f" and {len(done) - 3} more" if len(done) > 3 else "")
    already = f"; already applied (see {shown})" if done else ""
    return PassError(f"found no {looked_for}{already}", no_match=True)


def note(message: str) -> None:
    """Say that a pass skipped an optional part (a ``PassNote`` warning; the CLI prints one line)."""
    warnings.warn(f"pass {running()!r}: {message}" if running() else message, PassNote, stacklevel=3)


PASSES: dict[str, Pass] = {}


def register_pass(name: str | Pass, applies_to: str = "net", after: Iterable[str] = (), keeps: str = "changes",
                  state: StateMap | None = None) -> Pass | Callable[[Callable[..., Graph]], Pass]:
    """Register a pass and return it (a ``Pass``, callable like the function).

    ``register_pass(rule(...))`` registers a made pass. As a decorator,
    ``@register_pass(name, applies_to='net', after=(), keeps='changes', state=None)`` registers
    ``fn(graph, **params) -> Graph``: ``applies_to`` says which graph the trainer gives it, the
    network (``'net'``), the loss graph (``'loss'``) or the evaluation graph (``'eval'``, made
    from the network); ``after`` names passes that must come before it where a pipeline has
    both; ``keeps`` what it keeps (``'exact'``, ``'eval'`` or ``'changes'``, the module doc;
    ``graphnet.check`` verifies it) and ``state`` its ``state_dict`` map (``Pass``). The
    docstring's first line says what the pass changes, its body why it helps. A ``PassError``
    the function raises reaches the caller as a ``RewriteError`` (``NoMatchError``) naming the pass.
    """
    if isinstance(name, Pass):
        PASSES[name.name] = name
        return name

    def register(fn: Callable[..., Graph]) -> Pass:
        return register_pass(Pass.of(name, fn, applies_to, after, keeps=keeps, state=state))

    _check_kinds(name, applies_to, keeps)

    return register


def list_passes() -> list[Pass]:
    """The registered passes, in registration order."""
    return list(PASSES.values())


PassSpec = Union[str, tuple, Callable[..., Graph]]


def _resolve(item: PassSpec) -> tuple[Callable[..., Graph], dict[str, Any]]:
    """``(callable, params)`` for a pass written as a name, ``(name, params)`` or a callable."""
    if callable(item):  # a Pass, or any function Graph -> Graph
        return item, {}
    name, params = (item, {}) if isinstance(item, str) else item
    return get_pass(name), dict(params)


def get_pass(name: str) -> Pass:
    """The pass registered as ``name``; a RewriteError with the nearest names if none."""
    if name not in PASSES:
        near = difflib.get_close_matches(name, PASSES, n=3)
        hint = f"did you mean {', '.join(map(repr, near))}?" if near else f"known: {', '.join(PASSES)}"
        raise RewriteError(name, f"no such pass; {hint}")
    return PASSES[name]


def split_passes(passes: Iterable[PassSpec]) -> dict[str, list[PassSpec]]:
    """A recipe's passes by the graph they apply to: ``{'net': [...], 'loss': [...], 'eval': [...]}``.

    An unregistered callable goes with the net.
    """
    out: dict[str, list[PassSpec]] = {k: [] for k in APPLIES_TO}
    for item in passes:
        fn, _ = _resolve(item)
        out[fn.applies_to if isinstance(fn, Pass) else "net"].append(item)
    return out


def check_order(passes: Iterable[Callable[..., Graph]]) -> None:
    """Raise a RewriteError if a pass comes before one it must follow (``Pass.after``).

    A pass whose ``after`` passes are absent from the list is fine.
    """
    names = [p.name if isinstance(p, Pass) else None for p in passes]
    for i, p in enumerate(passes):
        for earlier in getattr(p, "after", ()):
            if earlier in names[i + 1:]:
                raise RewriteError(p.name, f"must come after {earlier!r}, which follows it here: apply {earlier!r} first")


def rewrite(graph: Graph | dict, passes: Iterable[PassSpec], strict: bool = True,
            state: State | None = None) -> Graph | tuple[Graph, dict[str, torch.Tensor]]:
    """Apply ``passes`` in order and return the new Graph; ``graph`` may be a network spec dict.

    A pass is a registered name (``'celu'``), a name with params (``('ghost_bn', {'num_splits': 16})``)
    or a callable ``Graph -> Graph``. A pass listed before one it must follow (``after``) is
    refused. A pass that matches nothing raises ``NoMatchError``; with ``strict=False`` it is
    skipped (for pipelines that apply one recipe to several specs).

    ``state``: the ``state_dict`` of ``compile(graph)``; then the result is ``(graph, state)``,
    the state carried through each pass (``map_state``): it loads into ``compile(new_graph)``,
    with ``strict=False`` where a pass added nodes (their keys are absent, so they keep fresh values).
    """
    if isinstance(graph, dict):
        graph = build(graph)
    resolved = [_resolve(item) for item in passes]
    check_order([fn for fn, _ in resolved])
    for fn, params in resolved:
        try:
            after = fn(graph, **params)
        except NoMatchError:
            if strict:
                raise
            continue
        if state is not None:
            state = map_state(fn, params, state, graph, after)
        graph = after
    return graph if state is None else (graph, dict(state))


def map_state(fn: Callable[..., Graph], params: Mapping[str, Any], state: State, before: Graph,
              after: Graph, shapes: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of ``compile(after)`` from ``state``, that of ``compile(before)``, where the pass
    ``fn`` with ``params`` made ``after`` from ``before``: the pass's own map (``Pass.state``) over the
    entries whose key (node path) and shape ``after`` keeps; the keys of new or reshaped nodes it does
    not map are absent. ``shapes``: ``state_shapes(after)``, where the caller has them."""
    shapes = state_shapes(after) if shapes is None else shapes
    carried = {k: v for k, v in state.items() if k in shapes and tuple(v.shape) == shapes[k]}
    mapper = getattr(fn, "state", None)
    if mapper is not None:
        carried.update(mapper(state, before, after, **params))
    return {k: carried[k] for k in shapes if k in carried}


def state_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Each ``state_dict`` key of ``compile(graph)`` and its shape, in order (made on the meta device)."""
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # unused nodes: named when the graph is compiled for real
        return {k: tuple(v.shape) for k, v in compile(graph).state_dict().items()}
