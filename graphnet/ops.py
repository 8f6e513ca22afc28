"""The op registry and the built-in ops.

An op is what a spec node names. It is one of three kinds:

- ``module``: a factory (usually an ``nn.Module`` class) called with the node's params
  once, at compile time; the node runs the module on its inputs.
- ``function``: a callable applied to the node's inputs with the params as keyword
  arguments (or positional, for builtins that take no keywords), emitted as a direct call.
- ``alias``: no code at all; the node stands for its single input (``identity``).

Every op has a signature that params are bound against, so a misspelt param fails when
the node is made or the spec is built. Calling an op's constructor (``conv(3, 64)``) gives
a spec node: the plain tuple ``(name, params)`` or ``(name, params, inputs)``.
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ParamError, UnknownOpError

SpecNode = tuple  # a spec node: (op, params) | (op, params, inputs) | (op, params, inputs, attrs)


@dataclass(frozen=True)
class Op:
    """A registered op: ``target`` is what runs, ``signature`` what its params bind to."""

    name: str
    kind: str  # 'module' | 'function' | 'alias'
    target: Callable[..., Any]
    signature: inspect.Signature
    arity: int | None  # number of inputs; None = one or more
    positional: tuple[str, ...] = ()  # params passed positionally after the inputs
    doc: str = ""

    def bind(self, params: dict[str, Any], path: str | None = None) -> dict[str, Any]:
        """Check ``params`` against the signature; return them unchanged or raise ParamError."""
        try:
            self.signature.bind(**params)
        except TypeError as e:
            raise ParamError(f"bad params for op {self.name}{self.params_str()}: {e}", path) from None
        return params

    def check_arity(self, n_inputs: int, path: str | None = None) -> None:
        if self.arity is None and n_inputs < 1 or self.arity is not None and n_inputs != self.arity:
            want = "one or more" if self.arity is None else str(self.arity)
            raise ParamError(f"op '{self.name}' takes {want} input(s), got {n_inputs}", path)

    def __call__(self, *args: Any, inputs: str | list[str] | None = None, **kwargs: Any) -> SpecNode:
        """Make a spec node; params are bound now, so a typo fails here."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise ParamError(f"bad params for op {self.name}{self.params_str()}: {e}") from None
        params = dict(bound.arguments)
        if inputs is None:
            return (self.name, params)
        return (self.name, params, [inputs] if isinstance(inputs, str) else list(inputs))

    def params_str(self) -> str:
        """The params as ``(a, b=1)``, without annotations."""
        return params_str(self.signature)

    def help(self) -> str:
        """One line: name, params and the first line of the doc."""
        return f"{self.name}{self.params_str()}  {self.doc.splitlines()[0] if self.doc else ''}".rstrip()


def params_str(signature: inspect.Signature) -> str:
    """A signature's params as ``(a, b=1, **params)``, without annotations."""
    parts = []
    for p in signature.parameters.values():
        star = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        parts.append(f"{star}{p.name}" if star or p.default is p.empty else f"{p.name}={p.default!r}")
    return f"({', '.join(parts)})"


REGISTRY: dict[str, Op] = {}


def _params_signature(fn: Callable[..., Any], skip: int) -> inspect.Signature:
    """The signature of ``fn`` without its first ``skip`` positional (input) parameters."""
    params = list(inspect.signature(fn).parameters.values())
    rest = [p for p in params[skip:] if p.kind is not p.VAR_POSITIONAL]
    return inspect.Signature([p.replace(kind=p.KEYWORD_ONLY) if p.kind is p.POSITIONAL_ONLY else p for p in rest])


_INFER = object()


def register(name: str, target: Callable[..., Any] | None = None, *, kind: str | None = None,
             signature: Callable[..., Any] | None = None, arity: Any = _INFER,
             positional: tuple[str, ...] = (), doc: str | None = None):
    """Register an op by name; usable as ``register('name', target)`` or as a decorator.

    ``kind`` defaults to 'module' for ``nn.Module`` classes and 'function' otherwise. For a
    function, its leading positional parameters are the inputs (``*args``: one or more) and
    its keyword parameters are the params. ``signature`` (a stub callable) gives the params'
    signature for builtins that have none; ``arity`` and ``doc`` override what is inferred.
    Returns the op, whose call makes spec nodes.
    """
    if target is None:
        return lambda t: register(name, t, kind=kind, signature=signature, arity=arity,
                                  positional=positional, doc=doc)
    if kind is None:
        kind = "module" if isinstance(target, type) and issubclass(target, nn.Module) else "function"
    if kind not in ("module", "function", "alias"):
        raise ValueError(f"op kind must be 'module', 'function' or 'alias', not {kind!r}")
    if arity is _INFER:
        arity = _arity(target) if kind == "function" else 1
    if signature is not None:
        sig = inspect.signature(signature)
    elif kind == "module":
        sig = inspect.signature(target)
    else:
        sig = _params_signature(target, arity or 0)
    op = Op(name, kind, target, sig, arity, positional, doc if doc is not None else inspect.getdoc(target) or "")
    REGISTRY[name] = op
    return op


def _arity(fn: Callable[..., Any]) -> int | None:
    """Inputs of a function op: its leading positional parameters; ``*args`` means variadic."""
    try:
        params = inspect.signature(fn).parameters.values()
    except ValueError:  # builtins without a signature take one input
        return 1
    n = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            n += 1
        else:
            break
    return n


def get_op(name: Any, path: str | None = None) -> Op:
    """The op registered as ``name`` (or whose target is ``name``); UnknownOpError if none."""
    if isinstance(name, str):
        if name in REGISTRY:
            return REGISTRY[name]
    else:
        for op in REGISTRY.values():
            if op.target is name:
                return op
    known = ", ".join(sorted(REGISTRY))
    raise UnknownOpError(f"unknown op {name!r}; register it with graphnet.register (known: {known})", path)


# -- modules ---------------------------------------------------------------------------

def _conv(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, padding: int | None = None,
          groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """2-d convolution, 'same' padding by default and no bias (a norm follows it)."""
    padding = kernel_size // 2 if padding is None else padding
    return nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, groups=groups, bias=bias)


def _linear(c_in: int, c_out: int, bias: bool = True) -> nn.Linear:
    """Fully connected layer."""
    return nn.Linear(c_in, c_out, bias=bias)


def _batch_norm(c: int, eps: float = 1e-5, momentum: float = 0.1, weight_init: float = 1.0,
                bias_init: float = 0.0) -> nn.BatchNorm2d:
    """2-d batch norm with the scale and shift initialised to ``weight_init`` and ``bias_init``."""
    bn = nn.BatchNorm2d(c, eps=eps, momentum=momentum)
    nn.init.constant_(bn.weight, weight_init)
    nn.init.constant_(bn.bias, bias_init)
    return bn


conv = register("conv", _conv, kind="module")
linear = register("linear", _linear, kind="module")
batch_norm = register("batch_norm", _batch_norm, kind="module")

# -- functions ---------------------------------------------------------------------------


# Stubs that give builtins (which have no Python signature) their params.
def _no_params() -> None: ...
def _max_pool_params(kernel_size: int = 2, stride: int | None = None) -> None: ...
def _celu_params(alpha: float = 1.0) -> None: ...
def _flatten_params(start_dim: int = 1) -> None: ...
def _mul_params(weight: float) -> None: ...
def _log_softmax_params(dim: int = 1) -> None: ...


def add_weighted_fn(a: torch.Tensor, b: torch.Tensor, *, wa: float = 1.0, wb: float = 1.0) -> torch.Tensor:
    """wa * a + wb * b."""
    return a * wa + b * wb


def concat_fn(*xs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Concatenate the inputs along ``dim`` (channels by default)."""
    return torch.cat(xs, dim)


def nll_fn(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample negative log-likelihood of the target class (no reduction)."""
    return -log_probs.gather(1, target[:, None]).squeeze(1)


def neg_mean_fn(log_probs: torch.Tensor) -> torch.Tensor:
    """Per-sample mean over classes of -log p: the cross-entropy against a uniform target."""
    return -log_probs.mean(dim=1)


def flip_lr_fn(x: torch.Tensor) -> torch.Tensor:
    """Flip images left-right (the last dimension)."""
    return torch.flip(x, (-1,))


identity = register("identity", nn.Identity, kind="alias", signature=_no_params,
                    doc="No-op: stands for its input and emits no code.")
relu = register("relu", F.relu, signature=_no_params, arity=1, doc="ReLU activation.")
celu = register("celu", F.celu, signature=_celu_params, arity=1,
                doc="CELU activation: x if x > 0 else alpha * (exp(x / alpha) - 1).")
gelu = register("gelu", F.gelu, signature=_no_params, arity=1, doc="GELU activation.")
max_pool = register("max_pool", F.max_pool2d, signature=_max_pool_params, arity=1,
                    doc="2-d max pooling; stride defaults to the kernel size.")
flatten = register("flatten", torch.flatten, signature=_flatten_params, arity=1,
                   doc="Flatten dimensions from start_dim on.")
mul = register("mul", operator.mul, signature=_mul_params, arity=1, positional=("weight",),
               doc="Multiply by a constant weight.")
log_softmax = register("log_softmax", torch.log_softmax, signature=_log_softmax_params, arity=1,
                       doc="Log-softmax over dim (the classes).")
add = register("add", operator.add, signature=_no_params, arity=2, doc="Sum of two inputs.")
add_weighted = register("add_weighted", add_weighted_fn)
concat = register("concat", concat_fn)
nll = register("nll", nll_fn)
neg_mean = register("neg_mean", neg_mean_fn)
flip_lr = register("flip_lr", flip_lr_fn)
