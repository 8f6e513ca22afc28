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

import copy
import inspect
import math
import operator
import reprlib
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal, Mapping, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ParamError, UnknownOpError

SpecNode = tuple  # a spec node: (op, params) | (op, params, inputs) | (op, params, inputs, attrs)


# -- param values ------------------------------------------------------------------------

@dataclass(frozen=True)
class Range:
    """Bounds of a number param, as annotation metadata: ``Annotated[int, Range(1)]``;
    ``open_low=True`` leaves the low bound itself out (``Range(0, 1, open_low=True)``: in (0, 1])."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"

    def holds(self, value: float) -> bool:
        above = self.low is None or value > self.low or value == self.low and not self.open_low
        return above and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class Odd:
    """An odd int param, as annotation metadata: ``Annotated[int, Range(1), Odd()]``."""

    def __str__(self) -> str:
        return "odd"

    def holds(self, value: int) -> bool:
        return value % 2 == 1


_CONSTRAINTS = (Range, Odd)  # the annotation metadata that check_value tests


# Annotations the built-in ops use; a registered op's own annotations are checked the same way.
PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(0)]
Fraction = Annotated[float, Range(0, 1)]
Size2 = Union[PositiveInt, tuple[PositiveInt, PositiveInt]]
Padding2 = Union[NonNegativeInt, tuple[NonNegativeInt, NonNegativeInt]]


def check_value(value: Any, hint: Any) -> str | None:
    """Why ``value`` does not fit the annotation ``hint`` (``'wants int >= 1'``), or None if it does.

    Understood: bool, int (not bool), float (finite; an int will do), str, None, Literal,
    unions, ``tuple[...]``, ``list[...]``, ``dict[...]`` (a list and a tuple both fit a
    sequence, as JSON has only lists), ``Annotated[..., Range(...), Odd()]``, and classes
    (isinstance). Anything else fits.
    """
    return None if _fits(value, hint) else f"wants {_type_str(hint)}"


_SHORT = reprlib.Repr()  # a value in an error, cut short: 8 entries of a list or tuple
_SHORT.maxlist = _SHORT.maxtuple = 8
_SHORT.maxstring = _SHORT.maxother = 200


def misfit(signature: inspect.Signature, hints: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
    """``"param c_in='3' wants int >= 1"`` for the first of ``params`` that does not fit its annotation
    in ``hints`` (or, unannotated, its default's type), or None if all fit. Ops and passes check their params so."""
    for name, value in params.items():
        param = signature.parameters.get(name)
        if param is None or param.kind is param.VAR_KEYWORD:
            continue
        reason = check_value(value, hints.get(name, _default_hint(param.default)))
        if reason is not None:
            return f"param {name}={_SHORT.repr(value)} {reason}"
    return None


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if origin is Annotated:
        return _fits(value, args[0]) and all(m.holds(value) for m in hint.__metadata__ if isinstance(m, _CONSTRAINTS))
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is None or hint is type(None):
        return value is None
    if origin is Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if origin in (tuple, list) or origin is not None and origin.__name__ in ("Sequence", "Iterable"):
        if not isinstance(value, (tuple, list)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    if origin in (dict,) or origin is not None and origin.__name__ == "Mapping":
        return isinstance(value, dict) and (not args or all(_fits(k, args[0]) and _fits(v, args[1])
                                                            for k, v in value.items()))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _type_str(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        constraints = " and ".join(str(m) for m in hint.__metadata__ if isinstance(m, _CONSTRAINTS))
        return f"{_type_str(args[0])} {constraints}" if constraints else _type_str(args[0])
    if origin in (Union, types.UnionType):
        return " | ".join(_type_str(a) for a in args)
    if hint is None or hint is type(None):
        return "None"
    if origin is Literal:
        return " | ".join(map(repr, args))
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join('...' if a is Ellipsis else _type_str(a) for a in args)}]"
    return "a finite float" if hint is float else getattr(hint, "__name__", str(hint))


def _default_hint(default: Any) -> Any:
    """The type an unannotated param's default implies: a number, a bool or a str; else anything."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return float
    return str if isinstance(default, str) else Any


def param_hints(source: Any) -> dict[str, Any]:
    """The resolved annotations of ``source`` (a function, or a class's ``__init__``); {} if they do not resolve."""
    fn = source.__init__ if isinstance(source, type) else source
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable annotations (forward refs, builtins): checked by default only
        return {}


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
    source: str = ""  # the module that registered the op: importing it registers the op again
    hints: Mapping[str, Any] = field(default_factory=dict)  # param annotations, resolved

    def bind(self, params: dict[str, Any], path: str | None = None) -> dict[str, Any]:
        """Check ``params`` against the signature and the params' annotations (or, unannotated,
        the type of their defaults); return them unchanged or raise ParamError."""
        try:
            self.signature.bind(**params)
        except TypeError as e:
            raise ParamError(f"bad params for op {self.name}{self.params_str()}: {e}", path) from None
        self.check_types(params, path)
        return params

    def check_types(self, params: Mapping[str, Any], path: str | None = None) -> None:
        """Raise ParamError for a param whose value does not fit its annotation (or its default's type)."""
        problem = misfit(self.signature, self.hints, params)
        if problem is not None:
            raise ParamError(f"op {self.name}: {problem}", path)

    def call_args(self, params: Mapping[str, Any]) -> tuple[tuple, dict[str, Any]]:
        """``(args, kwargs)`` that pass ``params``, defaults filled in, to the target (after the inputs)."""
        bound = self.signature.bind(**params)
        bound.apply_defaults()  # builtins' own defaults may differ from the op's (torch.flatten's start_dim)
        if self.kind == "module":
            return bound.args, bound.kwargs
        kwargs: dict[str, Any] = {}
        for name, value in bound.arguments.items():  # every param by name, a **params dict spread out
            kind = self.signature.parameters[name].kind
            kwargs.update(value if kind is inspect.Parameter.VAR_KEYWORD else {name: value})
        return tuple(kwargs.pop(k) for k in self.positional), kwargs

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
        self.check_types(params)
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
    """The signature of ``fn`` without its first ``skip`` positional (input) parameters, or, where it
    takes ``*args``, without the parameters up to them."""
    params = list(inspect.signature(fn).parameters.values())
    star = next((i for i, p in enumerate(params) if p.kind is p.VAR_POSITIONAL), None)
    rest = params[skip:] if star is None else params[star + 1:]
    return inspect.Signature([p.replace(kind=p.KEYWORD_ONLY) if p.kind is p.POSITIONAL_ONLY else p for p in rest])


_INFER = object()


def register(name: str, target: Callable[..., Any] | None = None, *, kind: str | None = None,
             signature: Callable[..., Any] | None = None, arity: Any = _INFER,
             positional: tuple[str, ...] = (), doc: str | None = None, source: str | None = None):
    """Register an op by name; usable as ``register('name', target)`` or as a decorator.

    ``kind`` defaults to 'module' for ``nn.Module`` classes and 'function' otherwise. For a
    function, its leading positional parameters are the inputs (``*args``: one or more) and
    its keyword parameters are the params. ``signature`` (a stub callable) gives the params'
    signature for builtins that have none; ``arity`` and ``doc`` override what is inferred.
    Params are checked against the annotations of ``signature``, the factory or the class's
    ``__init__`` (see ``check_value``). ``source`` is the module to import to register the op
    again (default: the caller's); JSON specs record it. Returns the op, whose call makes spec nodes.
    """
    if source is None:
        source = sys._getframe(1).f_globals.get("__name__", "")
    if target is None:
        return lambda t: register(name, t, kind=kind, signature=signature, arity=arity,
                                  positional=positional, doc=doc, source=source)
    if kind is None:
        kind = "module" if isinstance(target, type) and issubclass(target, nn.Module) else "function"
    if kind not in ("module", "function", "alias"):
        raise ValueError(f"op kind must be 'module', 'function' or 'alias', not {kind!r}")
    if arity is _INFER:
        arity = _arity(target) if kind == "function" else 1
    if signature is not None:
        sig = inspect.signature(signature)
    elif kind == "module" and isinstance(target, type) and target.__init__ is nn.Module.__init__:
        sig = inspect.Signature()  # no __init__ of its own: no params (not nn.Module's *args, **kwargs)
    elif kind == "module":
        sig = inspect.signature(target)
    else:
        sig = _params_signature(target, arity or 0)
    op = Op(name, kind, target, sig, arity, positional, doc if doc is not None else inspect.getdoc(target) or "",
            source, param_hints(signature or target))
    REGISTRY[name] = op
    return op


def register_class(cls: type[nn.Module]) -> Op:
    """The op of an ``nn.Module`` class: the one registered for it, else a new op named by its import
    path (``torchvision.ops.misc.Permute``), which ``get_op`` also finds once the class's module is imported."""
    for op in REGISTRY.values():
        if op.target is cls:
            return op
    return register(f"{cls.__module__}.{cls.__qualname__}", cls, kind="module", source=cls.__module__)


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
        cls = _imported_class(name)
        if cls is not None:
            return register_class(cls)
    else:
        for op in REGISTRY.values():
            if op.target is name:
                return op
    known = ", ".join(sorted(REGISTRY))
    raise UnknownOpError(f"unknown op {name!r}; register it with graphnet.register (known: {known})", path)


def _imported_class(name: str) -> type[nn.Module] | None:
    """The nn.Module class at the import path ``name`` if its module is already imported (nothing is imported here)."""
    module_name, _, attr = name.rpartition(".")
    value = getattr(sys.modules.get(module_name), attr, None) if module_name else None
    return value if isinstance(value, type) and issubclass(value, nn.Module) else None


# -- modules ---------------------------------------------------------------------------

def _conv(c_in: PositiveInt, c_out: PositiveInt, kernel_size: Size2 = 3, stride: Size2 = 1,
          padding: Optional[Union[Padding2, Literal["same", "valid"]]] = None, dilation: Size2 = 1,
          groups: PositiveInt = 1, bias: bool = False) -> nn.Conv2d:
    """2-d convolution, 'same' padding by default (padding=None) and no bias (a norm follows it)."""
    if padding is None:
        padding = tuple(d * (k - 1) // 2 for k, d in zip(_pair(kernel_size), _pair(dilation)))
    return nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     bias=bias)


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _linear(c_in: PositiveInt, c_out: PositiveInt, bias: bool = True) -> nn.Linear:
    """Fully connected layer."""
    return nn.Linear(c_in, c_out, bias=bias)


def _batch_norm(c: PositiveInt, eps: PositiveFloat = 1e-5, momentum: Optional[Fraction] = 0.1,
                weight_init: float = 1.0, bias_init: float = 0.0, affine: bool = True,
                track_running_stats: bool = True) -> nn.BatchNorm2d:
    """2-d batch norm with the scale and shift initialised to ``weight_init`` and ``bias_init``
    (momentum None: a cumulative average; affine=False: no scale and shift)."""
    bn = nn.BatchNorm2d(c, eps=eps, momentum=momentum, affine=affine, track_running_stats=track_running_stats)
    if affine:
        nn.init.constant_(bn.weight, weight_init)
        nn.init.constant_(bn.bias, bias_init)
    return bn


def _dropout(p: Fraction = 0.5) -> nn.Dropout:
    """Dropout: zero each element with probability p while training (identity in eval mode)."""
    return nn.Dropout(p)


def _instance(module: Held) -> nn.Module:
    """A module instance the node holds (``from_module``'s fallback); each compile runs a copy of it."""
    return copy.deepcopy(module.module).to(torch.get_default_device())  # 'meta' for summary


class Held:
    """A module held by an ``instance`` node: compared by identity, not copied by graph edits, not JSON."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __deepcopy__(self, memo: dict) -> Held:
        return self

    def __repr__(self) -> str:
        return f"<{type(self.module).__name__}>"


def _layer_norm(normalized_shape: Union[PositiveInt, tuple[PositiveInt, ...]], eps: PositiveFloat = 1e-5,
                elementwise_affine: bool = True, bias: bool = True) -> nn.LayerNorm:
    """Layer norm over the last dimensions (``normalized_shape``), with a learnt scale and shift."""
    return nn.LayerNorm(normalized_shape, eps=eps, elementwise_affine=elementwise_affine, bias=bias)


class SelfAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` of one input with itself (query, key and value), its output without the
    weights; its parameters and state_dict keys are nn.MultiheadAttention's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x, x, x, need_weights=False)[0]


def _self_attention(embed_dim: PositiveInt, num_heads: PositiveInt, dropout: Fraction = 0.0, bias: bool = True,
                    batch_first: bool = False) -> SelfAttention:
    """Multi-head self-attention (``nn.MultiheadAttention(x, x, x)``), without the attention weights."""
    return SelfAttention(embed_dim, num_heads, dropout=dropout, bias=bias, batch_first=batch_first)


class Stored(nn.Module):
    """A parameter or buffer that a ``forward`` reads, as a node of no inputs whose output is the tensor.

    It is saved under the node's own key (``encoder.pos_embedding``, not ``encoder.pos_embedding.value``),
    so the state_dict reads like the module it was traced from; ``compile`` loads it back by that key."""

    def __init__(self, shape: tuple[int, ...], dtype: str = "float32", buffer: bool = False,
                 values: tuple[float, ...] | None = None):
        super().__init__()
        if values is not None and len(values) != math.prod(shape):
            raise ValueError(f"{len(values)} values do not fill a tensor of shape {tuple(shape)}")
        value = torch.zeros(shape, dtype=getattr(torch, dtype)) if values is None else \
            torch.tensor(values, dtype=getattr(torch, dtype)).reshape(shape)
        if buffer:
            self.register_buffer("value", value)
        else:
            self.value = nn.Parameter(nn.init.trunc_normal_(value, std=0.02) if value.is_floating_point() else value)

    def forward(self) -> torch.Tensor:
        return self.value

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        destination[prefix[:-1]] = self.value if keep_vars else self.value.detach()



def _parameter(shape: tuple[NonNegativeInt, ...]) -> Stored:
    """A learnt tensor of this shape read in ``forward`` (a position embedding, a class token, a layer scale):
    no inputs, its output the tensor."""
    return Stored(tuple(shape))


def _buffer(shape: tuple[NonNegativeInt, ...], dtype: Literal["float32", "float64", "int64", "bool"] = "float32",
            values: tuple[float, ...] | None = None) -> Stored:
    """A tensor state that is not learnt (an index table), read in ``forward``: no inputs, its output the
    tensor. It starts at ``values`` (its entries in row-major order; bools as 0/1), else at zeros, and
    takes the state_dict's value when one loads."""
    return Stored(tuple(shape), dtype, buffer=True, values=values)


conv = register("conv", _conv, kind="module")
layer_norm = register("layer_norm", _layer_norm, kind="module")
self_attention = register("self_attention", _self_attention, kind="module")
parameter = register("parameter", _parameter, kind="module", arity=0)
buffer = register("buffer", _buffer, kind="module", arity=0)
linear = register("linear", _linear, kind="module")
batch_norm = register("batch_norm", _batch_norm, kind="module")
dropout = register("dropout", _dropout, kind="module")
instance = register("instance", _instance, kind="module")

# -- functions ---------------------------------------------------------------------------


def builtin(target: Callable[..., Any], *, kind: str = "function", arity: int | None = 1,
            positional: tuple[str, ...] = ()) -> Callable[[Callable[..., None]], Op]:
    """Register the decorated stub as the op of ``target``, a builtin that has no Python signature
    of its own: the op is named for the stub, binds its params to the stub's signature and takes
    its doc from the stub's docstring. The decorator returns the op."""
    def make(stub: Callable[..., None]) -> Op:
        return register(stub.__name__, target, kind=kind, signature=stub, arity=arity, positional=positional,
                        doc=inspect.getdoc(stub) or "", source=stub.__module__)
    return make


@builtin(nn.Identity, kind="alias")
def identity() -> None:
    """No-op: stands for its input and emits no code."""


def _no_params() -> None: ...


# Ops of one input and no params: name -> (what runs, doc).
_PLAIN = {
    "relu": (F.relu, "ReLU activation."),
    "relu6": (F.relu6, "ReLU capped at 6: min(max(x, 0), 6)."),
    "silu": (F.silu, "SiLU (swish) activation: x * sigmoid(x)."),
    "sigmoid": (torch.sigmoid, "Logistic sigmoid."),
    "tanh": (torch.tanh, "Hyperbolic tangent."),
    "hardswish": (F.hardswish, "Hard swish: x * relu6(x + 3) / 6."),
    "hardsigmoid": (F.hardsigmoid, "Hard sigmoid: relu6(x + 3) / 6."),
}
relu, relu6, silu, sigmoid, tanh, hardswish, hardsigmoid = (
    register(name, target, signature=_no_params, arity=1, doc=doc) for name, (target, doc) in _PLAIN.items())


@builtin(F.celu)
def celu(alpha: PositiveFloat = 1.0) -> None:
    """CELU activation: x if x > 0 else alpha * (exp(x / alpha) - 1)."""


@builtin(F.gelu)
def gelu(approximate: Literal["none", "tanh"] = "none") -> None:
    """GELU activation (approximate='tanh' as an option)."""


@builtin(F.max_pool2d)
def max_pool(kernel_size: Size2 = 2, stride: Optional[Size2] = None, padding: Padding2 = 0, dilation: Size2 = 1,
             ceil_mode: bool = False) -> None:
    """2-d max pooling; stride defaults to the kernel size."""


@builtin(F.avg_pool2d)
def avg_pool(kernel_size: Size2 = 2, stride: Optional[Size2] = None, padding: Padding2 = 0, ceil_mode: bool = False,
             count_include_pad: bool = True) -> None:
    """2-d average pooling; stride defaults to the kernel size."""


OutputSize2 = Union[PositiveInt, tuple[Optional[PositiveInt], Optional[PositiveInt]]]


@builtin(F.adaptive_avg_pool2d)
def adaptive_avg_pool(output_size: OutputSize2 = 1) -> None:
    """2-d average pooling to a fixed output size (1: global average pooling)."""


@builtin(F.adaptive_max_pool2d)
def adaptive_max_pool(output_size: OutputSize2 = 1) -> None:
    """2-d max pooling to a fixed output size (1: global max pooling)."""


@builtin(torch.mean)
def mean(dim: Union[int, tuple[int, ...]] = (2, 3), keepdim: bool = False) -> None:
    """Mean over dim (default the spatial dims 2, 3)."""


@builtin(torch.flatten)
def flatten(start_dim: int = 1, end_dim: int = -1) -> None:
    """Flatten dimensions start_dim to end_dim."""


@builtin(operator.mul, positional=("weight",))
def mul(weight: float) -> None:
    """Multiply by a constant weight."""


@builtin(torch.log_softmax)
def log_softmax(dim: int = 1) -> None:
    """Log-softmax over dim (the classes)."""


@builtin(operator.add, arity=2)
def add() -> None:
    """Sum of two inputs."""


@builtin(operator.mul, arity=2)
def product() -> None:
    """Element-wise product of two inputs (broadcasting); `mul` scales by a constant."""


@builtin(torch.reshape)
def reshape(shape: tuple[int, ...]) -> None:
    """Reshape to ``shape`` (-1 where the size follows from the others: the batch, in traced networks)."""


@builtin(torch.permute)
def permute(dims: tuple[int, ...]) -> None:
    """Reorder the dimensions: output dimension i is input dimension dims[i]."""


@builtin(torch.transpose)
def transpose(dim0: int, dim1: int) -> None:
    """Swap two dimensions."""


@builtin(torch.unsqueeze)
def unsqueeze(dim: int) -> None:
    """Insert a dimension of size 1 at ``dim``."""


@builtin(torch.softmax)
def softmax(dim: int) -> None:
    """Softmax over ``dim``."""


@builtin(torch.channel_shuffle)
def channel_shuffle(groups: PositiveInt) -> None:
    """ShuffleNet's channel shuffle: the channels in ``groups`` groups, interleaved."""


@builtin(torch.matmul, arity=2)
def matmul() -> None:
    """Matrix product of two inputs (batched, broadcasting)."""


@builtin(operator.sub, arity=2)
def sub() -> None:
    """Difference of two inputs: the first minus the second."""


@register("einsum")
def einsum(*xs: torch.Tensor, equation: str) -> torch.Tensor:
    """Einstein summation of the inputs (``equation``: ``'bhid,bhjd->bhij'``)."""
    return torch.einsum(equation, *xs)


Index = tuple[Union[int, None, Literal["..."], tuple[Optional[int], Optional[int], Optional[int]]], ...]


def _key(index: Index) -> tuple:
    """The subscript an ``index`` param spells: an int, None (a new axis), '...' or (start, stop, step) each."""
    return tuple(Ellipsis if i == "..." else slice(*i) if isinstance(i, (tuple, list)) else i for i in index)


@register("index")
def index(x: torch.Tensor, *, index: Index) -> torch.Tensor:
    """Basic indexing, ``x[index]``: an int, None, '...' or a slice (start, stop, step) per dimension."""
    return x[_key(index)]


@register("chunk")
def chunk(x: torch.Tensor, *, chunks: PositiveInt, index: NonNegativeInt, dim: int = 0) -> torch.Tensor:
    """Part ``index`` of ``x`` split into ``chunks`` parts along ``dim`` (``x.chunk(chunks, dim)[index]``)."""
    return x.chunk(chunks, dim)[index]


@register("expand_batch")
def expand_batch(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` (batch 1: a class token) repeated to the batch of ``like`` without a copy."""
    return x.expand(like.shape[0], *x.shape[1:])


@register("window_attention")
def window_attention(x: torch.Tensor, qkv_weight: torch.Tensor, proj_weight: torch.Tensor,
                     relative_position_bias: torch.Tensor, qkv_bias: torch.Tensor, proj_bias: torch.Tensor,
                     *logit_scale: torch.Tensor, window_size: tuple[PositiveInt, PositiveInt], num_heads: PositiveInt,
                     shift_size: tuple[NonNegativeInt, NonNegativeInt]) -> torch.Tensor:
    """Swin's shifted-window self-attention, torchvision's ``shifted_window_attention`` without dropout
    (a seventh input, ``logit_scale``: Swin V2's cosine attention)."""
    from torchvision.models.swin_transformer import shifted_window_attention

    return shifted_window_attention(x, qkv_weight, proj_weight, relative_position_bias, list(window_size), num_heads,
                                    list(shift_size), qkv_bias=qkv_bias, proj_bias=proj_bias,
                                    logit_scale=logit_scale[0] if logit_scale else None)


@register("relative_position_bias")
def relative_position_bias(table: torch.Tensor, index: torch.Tensor, *,
                           window_size: tuple[PositiveInt, PositiveInt]) -> torch.Tensor:
    """Swin's attention bias: the rows of ``table`` at ``index``, as (1, heads, N, N) for N positions a window."""
    from torchvision.models.swin_transformer import _get_relative_position_bias

    return _get_relative_position_bias(table, index, list(window_size))


@register("patch_merging_pad")
def patch_merging_pad(x: torch.Tensor) -> torch.Tensor:
    """Swin's patch merging: (..., H, W, C) padded to even H and W, each 2x2 patch's four pixels as 4C channels."""
    from torchvision.models.swin_transformer import _patch_merging_pad

    return _patch_merging_pad(x)


@register("add_weighted")
def add_weighted(a: torch.Tensor, b: torch.Tensor, *, wa: float = 1.0, wb: float = 1.0) -> torch.Tensor:
    """wa * a + wb * b."""
    return a * wa + b * wb


@register("concat")
def concat(*xs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Concatenate the inputs along ``dim`` (channels by default)."""
    return torch.cat(xs, dim)


@register("nll")
def nll(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample negative log-likelihood of the target class (no reduction)."""
    return -log_probs.gather(1, target[:, None]).squeeze(1)


@register("neg_mean")
def neg_mean(log_probs: torch.Tensor) -> torch.Tensor:
    """Per-sample mean over classes of -log p: the cross-entropy against a uniform target."""
    return -log_probs.mean(dim=1)


@register("flip_lr")
def flip_lr(x: torch.Tensor) -> torch.Tensor:
    """Flip images left-right (the last dimension)."""
    return torch.flip(x, (-1,))
