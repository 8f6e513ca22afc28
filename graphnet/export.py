"""``export(graph, path)``: a network out of graphnet, as PyTorch source, a ``torch.export`` program or ONNX.

The suffix of ``path`` picks the format:

- ``.py``: a standalone PyTorch file that needs no graphnet. Its ``Network`` class builds each
  module node's submodule at the node's path in ``__init__`` (so the compiled graph's
  ``state_dict`` loads as is), and its ``forward`` is the compiled graph's straight-line fx
  code. graphnet's own ops (``_conv``, ``GhostBatchNorm``, ``concat``, ...) are written
  into the file from their source, with what they use; any other op is imported from the
  module that defines it. ``build()`` returns a ``Network`` with fresh weights.
- ``.pt2``: ``torch.export.export`` of the eval-mode network on an input of ``input_shape``,
  saved by ``torch.export.save`` (load it with ``torch.export.load(path).module()``).
- ``.onnx``: ``torch.onnx.export(..., dynamo=True)`` of the same program; needs the ``onnx``
  extra (``pip install 'graphnet[onnx]'``).

The program formats carry the network's weights and fix the input shape as given.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import keyword
import math
import re
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .compile import Network, _reach, compile, load_stored, module_target, stored_targets
from .errors import ExportError
from .graph import Graph
from .ops import get_op

FORMATS = (".py", ".pt2", ".onnx")
_CLASS_NAME = "Network"


def export(source: Graph | Network, path: str | Path, input_shape: Sequence[int] | Mapping[str, Sequence[int]]
           = (1, 3, 32, 32), outputs: str | Sequence[str] | None = None) -> Path:
    """Write ``source`` (a Graph, compiled here with fresh weights, or a compiled network with its
    own) to ``path``: ``.py``, ``.pt2`` or ``.onnx`` (see the module doc). ``input_shape`` (batch dim
    included; a dict input name -> shape for several inputs) is the example input the program
    formats are traced on; ``outputs`` as for ``compile``, for a Graph. Returns ``path``;
    ExportError if the network cannot be written in that format."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ExportError(f"cannot export to {path.name!r}: the suffix must be one of {', '.join(FORMATS)}")
    network = compile(source, outputs) if isinstance(source, Graph) else source
    if suffix == ".py":
        path.write_text(to_source(network))
        return path
    tensors = [*network.parameters(), *network.buffers()]
    inputs = _example_inputs(network.spec_graph, input_shape, tensors[0].device if tensors else None)
    training = network.training
    network.eval()
    try:
        with torch.no_grad():
            network(*inputs)  # the first call checks shapes eagerly: a ShapeError names the node
        if suffix == ".pt2":
            torch.export.save(_program(network, inputs), path)
        else:
            _onnx(network, inputs, path)
    finally:
        network.train(training)
    return path


def _example_inputs(graph: Graph, input_shape: Sequence[int] | Mapping[str, Sequence[int]],
                    device: torch.device | None) -> tuple[torch.Tensor, ...]:
    """Random inputs of the given shapes on the network's device, one per graph input."""
    given = dict(input_shape) if isinstance(input_shape, Mapping) else {graph.inputs[0]: input_shape}
    missing = [name for name in graph.inputs if name not in given]
    if missing:
        raise ExportError(f"no input shape for graph input(s) {', '.join(missing)}")
    return tuple(torch.randn(*given[name], device=device) for name in graph.inputs)


def _program(network: Network, inputs: tuple[torch.Tensor, ...]) -> torch.export.ExportedProgram:
    try:
        return torch.export.export(network, inputs)
    except Exception as e:  # noqa: BLE001 - torch.export's errors run to pages; the first line says why
        raise ExportError(f"torch.export failed: {type(e).__name__}: {_first_line(e)}") from e


def _onnx(network: Network, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"writing .onnx needs {' and '.join(missing)}: pip install 'graphnet[onnx]'")
    accepted = inspect.signature(torch.onnx.export).parameters
    if "dynamo" not in accepted:
        raise ExportError(f"writing .onnx needs torch >= 2.5 (torch.onnx.export(dynamo=True)), not {torch.__version__}")
    one_file = {"external_data": False} if "external_data" in accepted else {}  # the weights inside the .onnx
    try:
        torch.onnx.export(network, inputs, str(path), dynamo=True, verbose=False, **one_file)
    except Exception as e:  # noqa: BLE001 - as for torch.export
        raise ExportError(f"torch.onnx.export failed: {type(e).__name__}: {_first_line(e)}") from e


def _first_line(error: Exception) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")


# -- the .py file -------------------------------------------------------------------------------


def to_source(network: Network) -> str:
    """The ``.py`` export of a compiled network: a standalone PyTorch module file (see the module doc)."""
    writer = _Writer()
    graph = network.spec_graph
    init = ["super().__init__()"]
    made: set[str] = set()
    for node in graph.nodes:
        op = get_op(node.op, node.path)
        if op.kind != "module":
            continue
        target = module_target(node.path)
        *outer, name = target.split(".")
        for i in range(len(outer)):  # the namespaces above it, as plain containers
            if (container := ".".join(outer[: i + 1])) not in made:
                made.add(container)
                init.append(_assign(".".join(outer[:i]), outer[i], "nn.Module()"))
        if op.name == "instance":
            held = type(node.params["module"].module).__name__
            raise ExportError(f"an instance node holds a module object ({held}), which has no source form; "
                              f"export .pt2 or .onnx, or register its class as an op", node.path)
        factory = writer.name_of(op.target, node.path)
        kwargs = ", ".join(f"{k}={writer.value(v, node.path, k)}" for k, v in node.params.items())
        init.append(_assign(".".join(outer), name, f"{factory}({kwargs})"))
        init += [f"{_from_self(target)}.{p}.requires_grad_(False)" for p in node.attrs.get("frozen", ())]
    stored = stored_targets(network)
    if stored:  # parameter and buffer nodes are saved under their own keys, and loaded back by them
        writer.import_lines["import functools"] = None
        init.append(f"self._register_load_state_dict_pre_hook(functools.partial("
                    f"{writer.name_of(load_stored, None)}, {stored!r}))")
    forward = writer.forward(network)
    body = "\n".join(f"        {line}" for line in init)
    head = (f'"""{_CLASS_NAME}: a network exported by graphnet from a graph of {len(graph.nodes)} nodes.\n\n'
            f"Needs only torch (and the modules imported below): ``net = build()``, then\n"
            f"``net.load_state_dict(state_dict)`` takes the compiled graph's state_dict as it is.\n"
            f'"""\n\nfrom __future__ import annotations\n\n')
    return (f"{head}{writer.imports()}\n\n{writer.definitions()}"
            f"class {_CLASS_NAME}(nn.Module):\n    def __init__(self):\n{body}\n\n"
            f"{textwrap.indent(forward.strip(), '    ')}\n\n\n"
            f"def build() -> {_CLASS_NAME}:\n    \"\"\"The network with fresh weights.\"\"\"\n"
            f"    return {_CLASS_NAME}()\n")


def _from_self(target: str) -> str:
    """Python reaching the submodule ``target`` (dotted, or '' for the network) from ``self``."""
    return _reach(target, fx_style=False) if target else "self"


def _assign(parent: str, name: str, value: str) -> str:
    """``self.a.name = value``, or ``add_module`` where ``name`` is no identifier or a keyword."""
    owner = _from_self(parent)
    return f"{owner}.{name} = {value}" if _plain(name) else f"{owner}.add_module({name!r}, {value})"


def _plain(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


class _Writer:
    """The names a ``.py`` export uses: imports, graphnet sources written in, and the name each has."""

    def __init__(self):
        self.names: dict[str, Any] = {_CLASS_NAME: None, "build": None, "nn": nn, "torch": torch,
                                      "functools": functools}
        self.import_lines: dict[str, None] = {"import torch": None, "from torch import nn": None}
        self.sources: dict[str, None] = {}  # source texts, dependencies first

    def name_of(self, obj: Any, path: str | None) -> str:
        """The name ``obj`` (an op's target or a param's class or function) has in the file."""
        if _is_graphnet(obj):
            return self._write_source(obj, path)
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
        if not module or module == "__main__" or "<" in qualname or _lookup(module, qualname) is not obj:
            raise ExportError(f"{obj!r} is not importable by its name, so the file cannot import it; "
                              f"define it at the top of a module", path)
        top, _, rest = qualname.partition(".")
        name = self._bind(top, _lookup(module, top), path)
        self.import_lines[f"from {module} import {top}" + ("" if name == top else f" as {name}")] = None
        return f"{name}.{rest}" if rest else name

    def value(self, value: Any, path: str | None, param: str) -> str:
        """Source text of a param value: a literal or dtype, a tuple/list/dict of them, or a class or function."""
        if isinstance(value, (tuple, list)):
            items = [self.value(v, path, param) for v in value]
            return f"({items[0]},)" if isinstance(value, tuple) and len(items) == 1 else \
                f"({', '.join(items)})" if isinstance(value, tuple) else f"[{', '.join(items)}]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{self.value(k, path, param)}: {self.value(v, path, param)}"
                                   for k, v in value.items()) + "}"
        if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
            return self.name_of(value, path)
        if isinstance(value, float) and not math.isfinite(value):
            return f"float({str(value)!r})"
        if value is None or isinstance(value, (bool, int, float, str, torch.dtype)):
            return repr(value)  # a dtype reads torch.float32
        raise ExportError(f"param {param}={value!r} has no source form", path)

    def forward(self, network: Network) -> str:
        """The compiled graph's ``forward`` source, each global it calls named as the file names it."""
        code = network.graph.python_code(root_module="self")
        src = code.src
        local = set(re.findall(r"\b[A-Za-z_]\w*\b", src)) - set(code.globals)  # the variables named for nodes
        for name, obj in code.globals.items():
            if not re.search(rf"\b{re.escape(name)}\b", src) or obj is torch:
                continue
            if isinstance(obj, float):  # fx's inf and nan
                self.import_lines[f"from math import {name}"] = None
                continue
            path = next((n.meta.get("graphnet_path") for n in network.graph.nodes if n.target is obj), None)
            mine = self.name_of(obj, path)
            if mine.partition(".")[0] in local:  # a variable of that name would hide it: fx's name stays
                self.names[name] = obj
                self.sources[f"{name} = {mine}\n"] = None
            else:
                src = re.sub(rf"\b{re.escape(name)}\b", mine, src)
        return src

    def imports(self) -> str:
        plain = sorted(line for line in self.import_lines if line.startswith("import "))
        froms = sorted(line for line in self.import_lines if line.startswith("from "))
        return "\n".join(plain + froms) + "\n"

    def definitions(self) -> str:
        if not self.sources:
            return ""
        return "# -- graphnet's ops, from its source --\n\n\n" + "\n\n".join(self.sources) + "\n\n"

    def _bind(self, name: str, obj: Any, path: str | None) -> str:
        """``name`` for ``obj`` in the file, or ``name_2``, ... where ``name`` means something else."""
        candidate, i = name, 1
        while candidate in self.names and self.names[candidate] is not obj:
            i += 1
            candidate = f"{name}_{i}"
        self.names[candidate] = obj
        return candidate

    def _write_source(self, obj: Any, path: str | None) -> str:
        """Write graphnet's ``obj`` into the file (after what it uses); its name there."""
        name = obj.__name__
        if self.names.get(name) is obj:
            return name
        if name in self.names or "<" in obj.__qualname__ or "." in obj.__qualname__:
            raise ExportError(f"graphnet's {obj.__module__}.{obj.__qualname__} cannot be written into the file "
                              f"under its own name", path)
        self.names[name] = obj
        scope = vars(sys.modules[obj.__module__])
        source = _without_registration(textwrap.dedent(inspect.getsource(obj)), scope)
        for used in _globals_used(source):
            if used in scope:
                self._use_global(used, scope[used], path)
        self.sources[source.strip() + "\n"] = None
        return name

    def _use_global(self, name: str, value: Any, path: str | None) -> None:
        """Make the module-level ``name`` a source uses mean ``value`` in the file."""
        if isinstance(value, types.ModuleType):
            module, _, last = value.__name__.rpartition(".")
            line = f"import {value.__name__}" if name == value.__name__ else \
                f"from {module} import {last}" if module and last == name else f"import {value.__name__} as {name}"
        elif _is_graphnet(value):
            self._write_source(value, path)
            return
        elif isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
            module, qualname = value.__module__, value.__qualname__
            if _lookup(module, qualname) is not value:
                raise ExportError(f"{module}.{qualname}, which graphnet's ops use, is not importable", path)
            line = f"from {module} import {qualname}" + ("" if qualname == name else f" as {name}")
        elif isinstance(value, (int, float, str, tuple)) and ast.literal_eval(repr(value)) == value:
            self.sources[f"{name} = {value!r}\n"] = None
            self.names[name] = value
            return
        else:
            raise ExportError(f"graphnet's ops use {name} = {value!r}, which has no source form", path)
        if self.names.setdefault(name, value) is not value:
            raise ExportError(f"the name {name} means two things in the file", path)
        self.import_lines[line] = None


def _is_graphnet(obj: Any) -> bool:
    return isinstance(obj, (type, types.FunctionType)) and obj.__module__.split(".")[0] == "graphnet"


def _lookup(module: str, qualname: str) -> Any:
    value: Any = sys.modules.get(module)
    for part in qualname.split("."):
        value = getattr(value, part, None)
    return value


def _without_registration(source: str, scope: Mapping[str, Any]) -> str:
    """``source`` (one def or class) without the decorators that are graphnet's (``@register("concat")``):
    they register the op, which the file has no use for."""
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source).body[0]
    for decorator in reversed(tree.decorator_list):
        call = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(call, ast.Name) and _is_graphnet(scope.get(call.id)):
            del lines[decorator.lineno - 1: decorator.end_lineno]
    return "".join(lines)


def _globals_used(source: str) -> list[str]:
    """The names ``source`` (one def or class) reads, in order, leaving out annotations (the file
    does not evaluate them) and the names it binds itself."""
    tree = ast.parse(source)
    annotations = {id(n) for node in ast.walk(tree)
                   for n in _annotation_nodes(node) for n in ast.walk(n)}
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
              for a in [*n.posonlyargs, *n.args, *n.kwonlyargs, *filter(None, [n.vararg, n.kwarg])]}
    names = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
             and id(n) not in annotations and n.id not in bound]
    return list(dict.fromkeys(names))


def _annotation_nodes(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.arg):
        return [node.annotation] if node.annotation else []
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [node.returns] if node.returns else []
    if isinstance(node, ast.AnnAssign):
        return [node.annotation]
    return []
