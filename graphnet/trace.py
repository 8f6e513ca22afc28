"""``from_module(module) -> Graph``: any PyTorch network as an editable spec.

``torch.fx`` traces the module symbolically and each call becomes a node:

- Paths follow the module's own names: a leaf module's node sits at its qualified name
  (``layer1.0.conv1`` -> ``layer1/0/conv1``), a function call (``x + y``, ``torch.cat``) in
  the namespace of the module whose ``forward`` makes it, named for its op
  (``layer1/0/add``). A module called twice (torchvision's ``BasicBlock.relu``) gives a second
  node ``relu_1``; one with weights called twice is refused (graphnet nodes own their weights).
- Common leaves and calls become graphnet's own ops (``MODULES``, ``FUNCTIONS``).
- Any other leaf module becomes the op of its class (``ops.register_class``) when its
  constructor params can be read back from its attributes and rebuild it (the same repr and
  the same state_dict keys and shapes); else an ``instance`` node that holds the module
  itself, which compiles, runs and renders but does not go to JSON.
- A parameter or buffer that ``forward`` reads is a ``parameter`` or ``buffer`` node; a
  buffer of at most ``MAX_BUFFER_VALUES`` finite entries (an index table, as Swin's relative
  position index) keeps its values in the spec, so that the spec alone computes as ``m``; a
  larger one, or one holding inf or nan, starts at zeros until ``m``'s state_dict loads.
- A call graphnet has no op for (``x.permute(...)``, a parameter read in ``forward``, a
  ``forward`` fx cannot trace) makes the module whose ``forward`` makes it a leaf, and the
  trace is repeated; at the top module it is a SpecError.

So ``compile(from_module(m))`` has ``m``'s state_dict keys and, loaded with ``m.state_dict()``,
computes what ``m`` computes. Python control flow (``if self.training``) is fixed at trace time,
as in any fx trace; ``F.dropout(x, p, training=...)`` becomes a ``dropout`` node, which
follows the network's train/eval mode.
"""

from __future__ import annotations

import ast
import inspect
import operator
import sys
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import fx, nn

from .errors import ParamError, SpecError
from .graph import Graph, Node
from .ops import Held, get_op, register_class
from .spec import SEP, is_plain, join, namespaces

# -- leaf modules -> (op, params) ------------------------------------------------------------


def _one(value: Any) -> Any:
    """``(3, 3)`` -> ``3``; other values (lists as tuples) unchanged."""
    if isinstance(value, (tuple, list)):
        value = tuple(value)
        return value[0] if value and all(v == value[0] for v in value) else value
    return value


def _conv(m: nn.Conv2d) -> dict | None:
    if m.padding_mode != "zeros":
        return None
    k, d = m.kernel_size, m.dilation
    same = tuple(di * (ki - 1) // 2 for ki, di in zip(k, d))
    padding = m.padding if isinstance(m.padding, str) else tuple(m.padding)
    return {"c_in": m.in_channels, "c_out": m.out_channels, "kernel_size": _one(k), "stride": _one(m.stride),
            "padding": None if padding == same else _one(padding), "dilation": _one(d), "groups": m.groups,
            "bias": m.bias is not None}


def _pool(m: nn.Module, *names: str) -> dict:
    params = {name: _one(getattr(m, name)) for name in names}
    if "stride" in params and params["stride"] == params["kernel_size"]:
        params["stride"] = None  # the op's default: the kernel size
    return params


MODULES: dict[type, tuple[str, Callable[[Any], dict | None]]] = {
    nn.Conv2d: ("conv", _conv),
    nn.BatchNorm2d: ("batch_norm", lambda m: {"c": m.num_features, "eps": m.eps, "momentum": m.momentum,
                                              "affine": m.affine, "track_running_stats": m.track_running_stats}),
    nn.Linear: ("linear", lambda m: {"c_in": m.in_features, "c_out": m.out_features, "bias": m.bias is not None}),
    nn.ReLU: ("relu", lambda m: {}),
    nn.ReLU6: ("relu6", lambda m: {}),
    nn.SiLU: ("silu", lambda m: {}),
    nn.Sigmoid: ("sigmoid", lambda m: {}),
    nn.Tanh: ("tanh", lambda m: {}),
    nn.Hardswish: ("hardswish", lambda m: {}),
    nn.Hardsigmoid: ("hardsigmoid", lambda m: {}),
    nn.GELU: ("gelu", lambda m: {"approximate": m.approximate}),
    nn.CELU: ("celu", lambda m: {"alpha": m.alpha}),
    nn.Identity: ("identity", lambda m: {}),
    nn.LayerNorm: ("layer_norm", lambda m: {"normalized_shape": _one(m.normalized_shape), "eps": m.eps,
                                            "elementwise_affine": m.elementwise_affine,
                                            "bias": getattr(m, "bias", None) is not None or not m.elementwise_affine}),
    nn.MultiheadAttention: ("self_attention", lambda m: None if not m._qkv_same_embed_dim or m.bias_k is not None else
                            {"embed_dim": m.embed_dim, "num_heads": m.num_heads, "dropout": m.dropout,
                             "bias": m.in_proj_bias is not None, "batch_first": m.batch_first}),
    nn.Dropout: ("dropout", lambda m: {"p": m.p}),
    nn.Flatten: ("flatten", lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim}),
    nn.MaxPool2d: ("max_pool", lambda m: None if m.return_indices else
                   _pool(m, "kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    nn.AvgPool2d: ("avg_pool", lambda m: None if m.divisor_override else
                   _pool(m, "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")),
    nn.AdaptiveAvgPool2d: ("adaptive_avg_pool", lambda m: _pool(m, "output_size")),
    nn.AdaptiveMaxPool2d: ("adaptive_max_pool", lambda m: None if m.return_indices else _pool(m, "output_size")),
}

# -- calls -> (op, params) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """How a function or method call maps to an op: the callee's parameters in order
    (``name`` or ``name=default``), which of them are tensor inputs, which are dropped."""

    op: str
    params: tuple[str, ...]
    inputs: tuple[str, ...] = ("input",)
    dropped: tuple[str, ...] = ("inplace", "training")  # inplace changes nothing; dropout follows the mode


def _call(op: str, *params: str, inputs: tuple[str, ...] = ("input",), dropped: tuple[str, ...] = ()) -> Call:
    return Call(op, ("input", *params) if inputs == ("input",) else params, inputs, ("inplace", "training", *dropped))


_ACT = ("inplace=False",)
FUNCTIONS: dict[Any, Call] = {}
for _targets, _spec in [
    ((F.relu, torch.relu, "relu"), _call("relu", *_ACT)),
    ((F.relu6,), _call("relu6", *_ACT)),
    ((F.silu,), _call("silu", *_ACT)),
    ((F.hardswish,), _call("hardswish", *_ACT)),
    ((F.hardsigmoid,), _call("hardsigmoid", *_ACT)),
    ((torch.sigmoid, F.sigmoid, "sigmoid"), _call("sigmoid")),
    ((torch.tanh, "tanh"), _call("tanh")),
    ((F.gelu,), _call("gelu", "approximate='none'")),
    ((F.max_pool2d,), _call("max_pool", "kernel_size", "stride=None", "padding=0", "dilation=1", "ceil_mode=False",
                            "return_indices=False")),
    ((F.avg_pool2d,), _call("avg_pool", "kernel_size", "stride=None", "padding=0", "ceil_mode=False",
                            "count_include_pad=True", "divisor_override=None")),
    ((F.adaptive_avg_pool2d,), _call("adaptive_avg_pool", "output_size")),
    ((F.adaptive_max_pool2d,), _call("adaptive_max_pool", "output_size", "return_indices=False")),
    ((torch.flatten, "flatten"), _call("flatten", "start_dim=0", "end_dim=-1")),
    ((torch.mean, "mean"), _call("mean", "dim=None", "keepdim=False")),
    ((F.dropout,), _call("dropout", "p=0.5", "training=True", "inplace=False")),
    ((operator.add, operator.iadd, torch.add, "add", "add_"),
     _call("add", "input", "other", "alpha=1", inputs=("input", "other"))),
    ((operator.mul, operator.imul, torch.mul, "mul", "mul_"),
     _call("product", "input", "other", inputs=("input", "other"))),
    ((torch.cat, torch.concat), _call("concat", "tensors", "dim=0", inputs=("tensors",))),
    ((operator.sub, torch.sub, "sub"), _call("sub", "input", "other", "alpha=1", inputs=("input", "other"))),
    ((operator.matmul, torch.matmul, "matmul"), _call("matmul", "input", "other", inputs=("input", "other"))),
    ((torch.permute, "permute"), _call("permute", "*dims")),
    ((torch.transpose, torch.swapaxes, "transpose", "swapaxes"), _call("transpose", "dim0", "dim1")),
    ((torch.unsqueeze, "unsqueeze"), _call("unsqueeze", "dim")),
    ((torch.softmax, F.softmax, "softmax"), _call("softmax", "dim", "_stacklevel=3", "dtype=None",
                                                  dropped=("_stacklevel",))),
    ((torch.einsum,), _call("einsum", "equation", "*operands", inputs=("operands",))),
    (("contiguous",), _call("identity", "memory_format=None")),
    (("torchvision.models.shufflenetv2.channel_shuffle",), _call("channel_shuffle", "groups")),
    (("torchvision.models.swin_transformer.shifted_window_attention",),
     _call("window_attention", "input", "qkv_weight", "proj_weight", "relative_position_bias", "window_size",
           "num_heads", "shift_size", "attention_dropout=0.0", "dropout=0.0", "qkv_bias=None", "proj_bias=None",
           "logit_scale=None", "training=True", inputs=("input", "qkv_weight", "proj_weight", "relative_position_bias",
                                                        "qkv_bias", "proj_bias", "logit_scale"))),
    (("torchvision.models.swin_transformer._get_relative_position_bias",),
     _call("relative_position_bias", "table", "index", "window_size", inputs=("table", "index"))),
    (("torchvision.models.swin_transformer._patch_merging_pad",), _call("patch_merging_pad")),
]:
    FUNCTIONS.update(dict.fromkeys(_targets, _spec))


def lookup(target: Any) -> Call | None:
    """How the call of ``target`` maps to an op: by the function (or method name), else by its import path."""
    if target in FUNCTIONS:
        return FUNCTIONS[target]
    return FUNCTIONS.get(f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', '')}")


def _bind(call: Call, args: tuple, kwargs: dict) -> dict[str, Any] | None:
    """The callee's arguments by name, defaults filled in; None if they do not fit ``call``. A ``*name``
    param takes the rest of the positional args, or the one sequence passed in their place."""
    names = [p.partition("=")[0].lstrip("*") for p in call.params]
    star = next((i for i, p in enumerate(call.params) if p.startswith("*")), None)
    if star is not None and star < len(args):
        rest = args[star:]
        args = (*args[:star], tuple(rest[0]) if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest)
    if len(args) > len(names) or set(kwargs) - set(names):
        return None
    values = {**dict(zip(names, args)), **kwargs}
    for p in (p.lstrip("*") for p in call.params):
        name, eq, default = p.partition("=")
        if name not in values:
            if not eq:
                return None
            values[name] = ast.literal_eval(default)
    return values


def _call_node(call: Call, values: dict[str, Any], names: dict[fx.Node, str]) -> tuple[str, dict, list[str]] | None:
    """``(op, params, inputs)`` of a call, or None if graphnet cannot say it."""
    op, inputs, params = call.op, [], {}
    for name, value in values.items():
        if name in call.inputs:
            inputs += [t for t in (value if isinstance(value, (list, tuple)) else [value]) if t is not None]
        elif name not in call.dropped:
            params[name] = tuple(value) if isinstance(value, list) else value
    if op == "product":  # x * y is a product; x * 0.5 scales by a constant
        nodes = [i for i in inputs if isinstance(i, fx.Node)]
        numbers = [i for i in inputs if isinstance(i, (int, float)) and not isinstance(i, bool)]
        if len(nodes) == len(numbers) == 1:
            op, params, inputs = "mul", {"weight": numbers[0]}, nodes
    if params.pop("alpha", 1) != 1 or not all(isinstance(i, fx.Node) and isinstance(names.get(i), str) for i in inputs):
        return None
    fitted = _fitted(op, params)
    return None if fitted is None else (op, fitted, [names[i] for i in inputs])


def _fitted(op_name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """``params`` for ``op_name``: its own defaults left out, a callee's param the op lacks dropped where it
    is None, False or 0 (unused); None if what is left does not bind."""
    op = get_op(op_name)
    signature = op.signature.parameters
    out = {}
    for name, value in params.items():
        if name not in signature:
            if value in (None, False, 0):  # unused: no op param needed
                continue
            return None
        if value != signature[name].default:
            out[name] = value
    try:
        op.bind(out)
    except ParamError:
        return None
    return out


# -- other leaf modules: their class's op, or the instance -------------------------------------


def _class_params(m: nn.Module) -> dict[str, Any] | None:
    """Constructor params of ``m`` read back from its attributes, if they rebuild it; else None."""
    cls = type(m)
    if cls.__init__ is nn.Module.__init__:
        signature = inspect.Signature()
    else:
        try:
            signature = inspect.signature(cls)
        except (TypeError, ValueError):
            return None
    params = {}
    for name, p in signature.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        value = getattr(m, name, p.default)
        value = tuple(value) if isinstance(value, list) else value
        if not is_plain(value):
            if p.default is p.empty:
                return None
            value = p.default
        if value is p.empty:
            return None
        if value != p.default:
            params[name] = value
    try:
        rebuilt = cls(**params)
    except Exception:  # noqa: BLE001 - a constructor that does not take its attributes back
        return None
    same_state = {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in m.state_dict().items()}
    return params if same_state and repr(rebuilt) == repr(m) else None


def _module_node(m: nn.Module) -> tuple[str, dict]:
    """``(op, params)`` of a leaf module: a graphnet op, its class's op, or an ``instance``."""
    if type(m) in MODULES:
        op, read = MODULES[type(m)]
        params = read(m)
        params = None if params is None else _fitted(op, params)
        if params is not None:
            return op, params
    params = _class_params(m)
    if params is not None:
        op = register_class(type(m))
        try:
            op.bind(params)
            return op.name, params
        except ParamError:
            pass
    return "instance", {"module": Held(m)}


# -- tracing ------------------------------------------------------------------------------------


# Functions traced as one call (fx's autowrap) where their modules are imported: FUNCTIONS maps them to ops.
_WRAPPED = ("torchvision.models.shufflenetv2.channel_shuffle",)


def _imported(name: str) -> Any:
    """The function at the import path ``name`` if its module is imported (nothing is imported here)."""
    module_name, _, attr = name.rpartition(".")
    return getattr(sys.modules.get(module_name), attr, None)


class _Tracer(fx.Tracer):
    """fx's tracer, with graphnet's leaf modules and the modules found untraceable as leaves."""

    def __init__(self, leaves: set[str]):
        super().__init__(autowrap_functions=tuple(_imported(name) for name in _WRAPPED if _imported(name)))
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname in self.leaves or type(m) in MODULES:
            return True
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        return super().is_leaf_module(m, qualname)


class _Untraceable(Exception):
    """The calls made in these modules' forwards have no graphnet op: make the modules leaves."""

    def __init__(self, modules: set[str], why: str):
        super().__init__(why)
        self.modules = modules
        self.why = why


def _caller(node: fx.Node, exclude: str | None = None) -> str:
    """The qualified name of the innermost module whose forward made ``node`` ('' for the top)."""
    stack = [v[0] if isinstance(v, tuple) else v for v in node.meta.get("nn_module_stack", {}).values()]
    stack = [s for s in stack if s != exclude]
    return stack[-1] if stack else ""


def _call_text(node: fx.Node) -> str:
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return {"call_method": f"the method .{target}()", "get_attr": f"the attribute {target}"}.get(
        node.op, f"the call {target}()")


def _after_untraceable(node: fx.Node, names: dict[fx.Node, str | None]) -> bool:
    """Whether ``node`` reads an item that has no node (the weights of an attention); it then has none either."""
    if any(names.get(a, "") is None for a in node.all_input_nodes):
        names[node] = None
        return True
    return False


@dataclass(frozen=True)
class _Tensor:
    """A tensor's shape, where a recorded value was a tensor."""

    shape: tuple[int, ...]


@dataclass(frozen=True)
class _Known:
    """A value computed from tensor shapes alone (``x.shape[0]``, ``h // p``), which has no node:
    its values at batch sizes 2 and 4."""

    one: Any
    two: Any


@dataclass(frozen=True)
class _Parts:
    """A call that returns a tuple (a chunk, an attention's output and weights): ``part(i)`` is the path
    of item i's node, made on its first use (None: an item graphnet has no node for)."""

    part: Callable[[int], str | None]


_SHAPE_READS = {getattr, "size", "dim"}
_UNSET = (_Known(None, None), _Known(False, False))
# The stand-in path of a call with no op: its users are converted on, so that one trace finds every
# module to make a leaf, and the graph is not made.
_UNTRACED = "<untraced>"
_RESHAPES = {"view", "reshape", torch.reshape, "view_as", "reshape_as"}
MAX_BUFFER_VALUES = 65_536  # a buffer of at most this many finite entries (an index table) keeps its values


class _Recorder(fx.Interpreter):
    """Runs a traced module, keeping each node's value: tensors as their shapes."""

    def __init__(self, module: fx.GraphModule):
        super().__init__(module)
        self.values: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        self.values[n] = fx.node.map_aggregate(out, lambda v: _Tensor(tuple(v.shape)) if isinstance(v, torch.Tensor)
                                               else v)
        return out


def _values(root: nn.Module, code: fx.Graph, example_input: torch.Tensor) -> dict[fx.Node, tuple[Any, Any]]:
    """Each node's value in an eval-mode run on ``example_input``'s first image twice (batch 2) and four
    times (batch 4; a norm fixed in train mode by the trace needs more than one value a channel)."""
    module = fx.GraphModule(root, code)
    one = torch.cat([example_input[:1]] * 2)
    was_training = root.training
    root.eval()
    runs = []
    try:
        with torch.no_grad():
            for x in (one, torch.cat([one, one])):
                recorder = _Recorder(module)
                recorder.run(x)
                runs.append(recorder.values)
    except Exception as e:  # noqa: BLE001 - the module cannot run on this input
        raise SpecError(f"from_module: {type(root).__name__} cannot run on example_input of shape "
                        f"{tuple(example_input.shape)}: {type(e).__name__}: {e}") from None
    finally:
        root.train(was_training)
    return {n: (runs[0][n], runs[1][n]) for n in runs[0]}


def _has_tensor(value: Any) -> bool:
    found = []
    fx.node.map_aggregate(value, lambda v: found.append(v) if isinstance(v, _Tensor) else None)
    return bool(found)


def _batch_shape(one: Any, two: Any) -> tuple[int, ...] | None:
    """A tensor shape that holds at every batch size: -1 for the dimension that follows the batch."""
    if not (isinstance(one, _Tensor) and isinstance(two, _Tensor)) or len(one.shape) != len(two.shape):
        return None
    dims = tuple(a if a == b else -1 if b == 2 * a else None for a, b in zip(one.shape, two.shape))
    return dims if None not in dims and dims.count(-1) <= 1 else None


def _index_param(key: Any) -> tuple | None:
    """The ``index`` op's param for the subscript ``key`` (ints, None, ..., slices of ints); None if it has none."""
    out = []
    for k in key if isinstance(key, tuple) else (key,):
        if k is Ellipsis:
            out.append("...")
        elif isinstance(k, slice) and all(v is None or isinstance(v, int) for v in (k.start, k.stop, k.step)):
            out.append((k.start, k.stop, k.step))
        elif k is None or isinstance(k, int) and not isinstance(k, bool):
            out.append(k)
        else:
            return None
    return tuple(out)


def _split_key(sizes: tuple[int, ...], dim: int, i: int) -> tuple:
    """The ``index`` op's param for part ``i`` of ``x.split(sizes, dim)``: a slice of ``dim``."""
    start = sum(sizes[:i])
    cut = (start, start + sizes[i], None)
    return (*[(None, None, None)] * dim, cut) if dim >= 0 else ("...", cut, *[(None, None, None)] * (-dim - 1))


def _stored(root: nn.Module, target: str) -> tuple[str, dict] | None:
    """``(op, params)`` of the parameter or buffer at ``target``; None for another attribute."""
    module_name, _, name = target.rpartition(".")
    owner = root.get_submodule(module_name)
    value = getattr(owner, name, None)
    if isinstance(value, nn.Parameter):
        return "parameter", {"shape": tuple(value.shape)}
    dtype = str(getattr(value, "dtype", "")).removeprefix("torch.")
    if name in owner._buffers and name not in owner._non_persistent_buffers_set and dtype in (
            "float32", "float64", "int64", "bool"):
        flat = value.flatten()  # kept where JSON holds it: small, and finite (a -inf mask starts at zeros)
        values = {"values": tuple((flat.int() if dtype == "bool" else flat).tolist())} \
            if value.numel() <= MAX_BUFFER_VALUES and bool(torch.isfinite(flat).all()) else {}
        return "buffer", {"shape": tuple(value.shape), **({} if dtype == "float32" else {"dtype": dtype}), **values}
    return None


class _Converter:
    """The Graph of a traced module, made one fx node at a time by the method named for its
    opcode (as ``fx.Interpreter``). ``names`` maps each fx node to what it became: a path (or
    _UNTRACED), a _Known value or _Parts, or None (an item with no node). Values computed from
    shapes have no nodes: they are known from a run on ``example_input`` where the trace reads shapes."""

    def __init__(self, root: nn.Module, code: fx.Graph, example_input: torch.Tensor | None):
        self.root, self.code = root, code
        self.taken = {name.replace(".", SEP) for name, _ in root.named_modules() if name}
        self.names: dict[fx.Node, Any] = {}
        self.nodes: list[Node] = []
        self.untraceable: dict[str, str] = {}  # the module to make a leaf: why
        self.called: dict[str, int] = {}
        self.placeholders = [n for n in code.nodes if n.op == "placeholder" and not n.args]  # the rest have defaults
        self.inputs = ("input",) if len(self.placeholders) == 1 else tuple(n.target for n in self.placeholders)
        reads_shapes = any(n.target in _SHAPE_READS or n.target in _RESHAPES or n.target == "expand"
                           for n in code.nodes if n.op in ("call_function", "call_method"))
        self.values = _values(root, code, example_input) if reads_shapes and example_input is not None and \
            len(self.placeholders) == 1 else {}

    def run(self) -> Graph:
        """The Graph; raises _Untraceable naming the modules to make leaves."""
        for n in self.code.nodes:
            getattr(self, n.op)(n)
            if n.op == "output":
                break
        if self.untraceable:
            raise _Untraceable(set(self.untraceable),
                               "; ".join(f"{k or 'the top module'}: {v}" for k, v in self.untraceable.items()))
        return Graph(_spec_order(self.nodes), self.inputs)

    def unique(self, path: str, own: bool) -> str:
        candidate, k = path, 0
        while (candidate in self.taken and not own) or candidate in self.called:
            k, own = k + 1, False
            candidate = f"{path}_{k}"
        self.called[candidate] = 1
        return candidate

    def add(self, path: str, op: str, params: dict, refs: tuple) -> str:
        self.nodes.append(Node(path, op, MappingProxyType(params), tuple(refs), MappingProxyType({})))
        return path

    def untraced(self, n: fx.Node, where: str, why: str) -> None:
        self.untraceable.setdefault(where, why)
        self.names[n] = _UNTRACED

    def placeholder(self, n: fx.Node) -> None:
        self.names[n] = self.inputs[self.placeholders.index(n)] if n in self.placeholders else \
            _Known(n.args[0], n.args[0])

    def get_attr(self, n: fx.Node) -> None:
        path, made = n.target.replace(".", SEP), _stored(self.root, n.target)
        if path in self.called:
            self.names[n] = path
        elif made is None:
            self.untraced(n, _caller(n) if n.meta.get("nn_module_stack") else n.target.rpartition(".")[0],
                          _call_text(n))
        else:
            self.names[n] = self.add(self.unique(path, own=True), *made, ())

    def call_module(self, n: fx.Node) -> None:
        m = self.root.get_submodule(n.target)
        if _after_untraceable(n, self.names):
            return
        path = n.target.replace(".", SEP)
        attention = isinstance(m, nn.MultiheadAttention) and len(set(n.args)) == 1 and len(n.args) == 3 and \
            all(v is False if k == "need_weights" else v is None for k, v in n.kwargs.items())
        unset = [k for k, v in n.kwargs.items()  # keyword args left at None or False (an unused mask)
                 if v is None or v is False or isinstance(v, fx.Node) and self.names.get(v) in _UNSET]
        if not attention and (n.kwargs.keys() - unset or not all(isinstance(a, fx.Node) for a in n.args)):
            return self.untraced(n, _caller(n, exclude=n.target), f"a call of {n.target} with non-tensor args")
        if path in self.called and (next(m.parameters(), None) is not None or next(m.buffers(), None) is not None):
            raise SpecError(f"from_module: module {n.target} has weights and is called twice; graphnet "
                            "nodes own their weights", path)
        op, params = _module_node(m)
        if attention and op != "self_attention":
            return self.untraced(n, _caller(n, exclude=n.target), f"the attention {n.target}")
        path = self.add(self.unique(path, own=True), op, params, (self.names[n.args[0]],) if attention else
                        tuple(self.names[a] for a in n.args))
        self.names[n] = _Parts(lambda i, path=path: path if i == 0 else None) if attention else path

    def call_function(self, n: fx.Node) -> None:
        names = self.names
        if n.target is operator.getitem and isinstance(names.get(n.args[0]), _Parts):
            names[n] = names[n.args[0]].part(n.args[1])
            return
        if _after_untraceable(n, names):
            return
        value = self.values.get(n)
        if value is not None and not _has_tensor(value):
            names[n] = _Known(*value)
            return
        if n.target in ("chunk", torch.chunk) and not n.kwargs.keys() - {"dim"}:
            chunks, dim = (*n.args[1:], n.kwargs.get("dim", 0))[:2]
            if isinstance(chunks, int) and isinstance(dim, int):
                names[n] = self.parts(n, "chunk", lambda i: {"chunks": chunks, "index": i,
                                                             **({"dim": dim} if dim else {})})
                return
        if n.target in ("split", torch.split) and not n.kwargs.keys() - {"dim"}:
            sizes, dim = (*n.args[1:], n.kwargs.get("dim", 0))[:2]
            if isinstance(sizes, (list, tuple)) and all(isinstance(k, int) for k in sizes) and isinstance(dim, int):
                names[n] = self.parts(n, "index", lambda i: {"index": _split_key(tuple(sizes), dim, i)})
                return
        made = self.function_node(n)
        if made is None:
            why = " (a shape read: pass example_input to from_module)" if n.target in _SHAPE_READS else ""
            return self.untraced(n, _caller(n), _call_text(n) + why)
        op, params, refs = made
        names[n] = self.add(self.unique(join(_caller(n).replace(".", SEP), op), own=False), op, params, refs)

    call_method = call_function

    def output(self, n: fx.Node) -> None:
        if self.untraceable:
            return
        root, names = type(self.root).__name__, self.names
        if not isinstance(n.args[0], fx.Node) or not isinstance(names.get(n.args[0]), str):
            raise SpecError(f"from_module: {root}.forward returns {type(n.args[0]).__name__}, not one tensor; a "
                            "graph has one output (wrap the module to pick one)")
        if not self.nodes or names[n.args[0]] != self.nodes[-1].path:
            raise SpecError(f"from_module: {root}.forward returns a value computed before its last call",
                            names[n.args[0]])

    def function_node(self, n: fx.Node) -> tuple[str, dict, list] | None:
        """``(op, params, input paths)`` of a call that makes a tensor, or None."""
        names, value = self.names, self.values.get(n)
        if n.target in _RESHAPES and value is not None:
            shape = _batch_shape(*value)
            return None if shape is None else ("reshape", {"shape": shape}, [names[n.args[0]]])
        if n.target == "expand" and value is not None:
            shape, source = _batch_shape(*value), self.values.get(n.args[0])
            if shape and shape[0] == -1 and source and source[0].shape == (1, *shape[1:]) == source[1].shape:
                return "expand_batch", {}, [names[n.args[0]], self.inputs[0]]
            return None
        known = [a for a in n.all_input_nodes if isinstance(names.get(a), _Known)]
        if any(names[a].one != names[a].two for a in known):
            return None
        args, kwargs = fx.node.map_arg((n.args, dict(n.kwargs)), lambda a: names[a].one if a in known else a)
        if n.target is operator.getitem:
            key = _index_param(args[1])
            return None if key is None or not isinstance(names.get(args[0]), str) else (
                "index", {"index": key}, [names[args[0]]])
        call = lookup(n.target)
        bound = _bind(call, args, kwargs) if call is not None else None
        return _call_node(call, bound, names) if bound is not None else None

    def parts(self, n: fx.Node, op: str, params: Callable[[int], dict]) -> _Parts:
        """The parts of the call ``n`` (``chunk``, ``split``): part ``i``, when read, an ``op`` node
        of ``params(i)`` on ``n``'s first argument."""
        def part(i: int) -> str:
            return self.add(self.unique(join(_caller(n).replace(".", SEP), op), own=False), op, params(i),
                            (self.names[n.args[0]],))
        return _Parts(part)


def _spec_order(nodes: list[Node]) -> list[Node]:
    """``nodes`` with each namespace's nodes together, in the order a spec dict keeps them (a parameter
    read in ``forward`` may come between the nodes of another namespace), where that order still computes."""
    first: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for p in (*namespaces(node.path), node.path):
            first.setdefault(p, i)
    ordered = sorted(nodes, key=lambda node: [first[p] for p in (*namespaces(node.path), node.path)])
    seen: set[str] = set()
    for node in ordered:
        if not seen.issuperset(i for i in node.inputs if i in first):
            return nodes
        seen.add(node.path)
    return ordered


def from_module(module: nn.Module, example_input: torch.Tensor | None = None) -> Graph:
    """The Graph of ``module``, traced with torch.fx; see the module doc for how calls become nodes.

    ``compile(graph)`` loaded with ``module.state_dict()`` computes what ``module`` does. With
    ``example_input``, that is checked in eval mode on it (SpecError if the outputs differ).
    """
    leaves: set[str] = set()
    while True:
        tracer = _Tracer(leaves)
        try:
            code = tracer.trace(module)
        except Exception as e:  # noqa: BLE001 - an untraceable forward: make the module that runs it a leaf
            stack = [v[0] if isinstance(v, tuple) else v for v in tracer.module_stack.values()]
            failing = stack[-1] if stack else ""
            if not failing or failing in leaves:
                raise SpecError(f"from_module: torch.fx cannot trace {type(module).__name__}.forward: "
                                f"{type(e).__name__}: {e}") from e
            leaves.add(failing)
            continue
        try:
            graph = _Converter(module, code, example_input).run()
            break
        except _Untraceable as u:
            if "" in u.modules or u.modules <= leaves:
                raise SpecError(f"from_module: graphnet has no op for {u.why}; torch.fx traced "
                                f"{type(module).__name__}.forward into calls that no module can hold") from None
            leaves |= u.modules
    _check(module, graph, example_input)
    return graph


def _check(module: nn.Module, graph: Graph, example_input: torch.Tensor | None) -> None:
    """SpecError unless ``module.state_dict()`` loads into the compiled graph and, given
    ``example_input``, the two compute the same on it in eval mode."""
    from .compile import compile  # compile sits beside this module; needed only for the check

    net = compile(graph)
    missing, unread = net.load_state_dict(module.state_dict(), strict=False)
    if missing or unread:
        keys = unread or missing
        what = "weights its traced forward never reads" if unread else "none of the graph's weights"
        raise SpecError(f"from_module: {type(module).__name__} has {what}: {', '.join(keys[:3])}"
                        + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
                        + " (a branch that this mode skips? trace in the mode that uses them, or drop them)")
    if example_input is None:
        return
    diff, scale = max_difference(module, net, example_input, modes=(False,))
    if diff > 1e-4 * max(1.0, scale):
        raise SpecError(f"from_module: the traced graph differs from {type(module).__name__} by {diff:g} on the "
                        "example input")


def max_difference(module: nn.Module, net: nn.Module, x: torch.Tensor, modes: tuple[bool, ...] = (False, True)
                   ) -> tuple[float, float]:
    """The largest difference between ``module(x)`` and ``net(x)`` over ``modes`` (True: train mode; each run
    from the same seed, so dropout drops alike), and the largest output; both modules' modes are restored."""
    was = module.training, net.training
    diff = scale = 0.0
    try:
        for training in modes:
            module.train(training)
            net.train(training)
            with torch.no_grad():
                torch.manual_seed(1)
                want = module(x)
                torch.manual_seed(1)
                diff = max(diff, (want - net(x)).abs().max().item())
                scale = max(scale, want.abs().max().item())
    finally:
        module.train(was[0])
        net.train(was[1])
    return diff, scale
