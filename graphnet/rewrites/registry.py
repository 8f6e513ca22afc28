"""The pass registry and ``rewrite``: apply named graph -> graph passes in order."""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Union

from ..errors import SpecError
from ..graph import Graph, build
from ..ops import params_str

APPLIES_TO = ("net", "loss", "eval")


class RewriteError(SpecError):
    """A rewrite pass cannot apply; the message names the pass."""

    def __init__(self, pass_name: str, message: str, path: str | None = None):
        self.pass_name = pass_name
        super().__init__(f"pass {pass_name!r}: {message}", path)


class NoMatchError(RewriteError):
    """The pass found nothing to rewrite (or found its own work: already applied).

    ``rewrite(..., strict=False)`` skips such a pass instead of raising.
    """


@dataclass(frozen=True)
class Pass:
    """A registered pass: ``fn(graph, **params) -> Graph`` applied to the ``applies_to`` graph."""

    name: str
    fn: Callable[..., Graph]
    applies_to: str  # 'net' | 'loss' | 'eval'
    signature: inspect.Signature  # the params, without the graph

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.fn) or ""

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
        for name, value in params.items():
            param = self.signature.parameters.get(name)
            if param is None or not _is_number(param.default) or _is_number(value):
                continue
            if value is None and "None" in str(param.annotation):  # `x: float | None = 0.5` may be None
                continue
            raise RewriteError(self.name, f"param {name} must be a number, not {value!r}")
        return self.fn(graph, **params)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


PASSES: dict[str, Pass] = {}


def register_pass(name: str, applies_to: str = "net") -> Callable[[Callable[..., Graph]], Callable[..., Graph]]:
    """Register ``fn(graph, **params) -> Graph`` as the pass ``name``; returns ``fn`` unchanged.

    ``applies_to`` says which graph the trainer gives it: the network (``'net'``), the loss
    graph (``'loss'``) or the evaluation graph (``'eval'``, made from the network). The
    docstring's first line says what the pass changes, its body why it speeds training.
    """
    if applies_to not in APPLIES_TO:
        raise ValueError(f"applies_to must be one of {APPLIES_TO}, not {applies_to!r}")

    def register(fn: Callable[..., Graph]) -> Callable[..., Graph]:
        params = list(inspect.signature(fn).parameters.values())[1:]
        PASSES[name] = Pass(name, fn, applies_to, inspect.Signature(params))
        return fn

    return register


def list_passes() -> list[Pass]:
    """The registered passes, in registration order."""
    return list(PASSES.values())


PassSpec = Union[str, tuple, Callable[..., Graph]]


def _resolve(item: PassSpec) -> tuple[Callable[..., Graph], dict[str, Any]]:
    """``(callable, params)`` for a pass written as a name, ``(name, params)`` or a callable."""
    if callable(item):
        return next((p for p in PASSES.values() if p.fn is item), item), {}
    name, params = (item, {}) if isinstance(item, str) else item
    if name not in PASSES:
        near = difflib.get_close_matches(name, PASSES, n=3)
        hint = f"did you mean {', '.join(map(repr, near))}?" if near else f"known: {', '.join(PASSES)}"
        raise RewriteError(name, f"no such pass; {hint}")
    return PASSES[name], dict(params)


def split_passes(passes: Iterable[PassSpec]) -> dict[str, list[PassSpec]]:
    """A recipe's passes by the graph they apply to: ``{'net': [...], 'loss': [...], 'eval': [...]}``.

    An unregistered callable goes with the net.
    """
    out: dict[str, list[PassSpec]] = {k: [] for k in APPLIES_TO}
    for item in passes:
        fn, _ = _resolve(item)
        out[fn.applies_to if isinstance(fn, Pass) else "net"].append(item)
    return out


def rewrite(graph: Graph | dict, passes: Iterable[PassSpec], strict: bool = True) -> Graph:
    """Apply ``passes`` in order and return the new Graph; ``graph`` may be a network spec dict.

    A pass is a registered name (``'celu'``), a name with params (``('ghost_bn', {'num_splits': 16})``)
    or a callable ``Graph -> Graph``. A pass that matches nothing raises ``NoMatchError``; with
    ``strict=False`` it is skipped (for pipelines that apply one recipe to several specs).
    """
    if isinstance(graph, dict):
        graph = build(graph)
    for item in passes:
        fn, params = _resolve(item)
        try:
            graph = fn(graph, **params)
        except NoMatchError:
            if strict:
                raise
    return graph
