"""``summary(graph, input_shape)``: each node's output shape, parameter count and FLOPs.

Shapes come from one forward pass on the ``meta`` device: the graph is compiled with its
modules made on ``meta`` (no memory, no arithmetic) and run node by node in eval mode (so
ops like ghost batch norm take any batch size).

The cost is what ``torch.utils.flop_counter.FlopCounterMode`` counts in that pass, for the
batch as given, each node charged the FLOPs of the ops it runs: every matrix product and
convolution (``mm``, ``bmm``, attention, grouped and transposed convolutions), wherever it
sits (a linear layer, a matmul in a function op, a convolution inside an ``instance`` node);
pools, norms and activations are not counted. torch counts a multiply and an add apart
(``Row.flops``, ``Summary.total_flops``); counted once, as multiply-adds (``macs``), it is
the number torchvision's model docs call "GFLOPS" (ResNet-18 at 224×224: 1.81 G).

Memory is counted as torchinfo counts it, from the same pass: a node's parameter bytes
(its parameters, not its buffers) and activation bytes (its output tensor; an identity, and
a parameter or buffer node, whose output is its own tensor, have none), at the dtype the
modules are made in. The totals under the table are
torchinfo's: the input, the forward/backward pass (the output of every node that has
parameters, twice: the output and its gradient), the parameters, and their sum; and, beside
them, every node's output counted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import networkx as nx
import torch
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

from .compile import _Locator, compile
from .errors import SpecError
from .graph import Graph
from .labels import shape_label, si
from .ops import Stored, get_op

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Row:
    """One node: its output ``shape`` (None if not a tensor), ``params``, ``flops`` (a multiply
    and an add counted apart, as torch counts them), ``param_bytes`` (its parameters') and
    ``activation_bytes`` (its output tensor's)."""

    path: str
    op: str
    shape: Shape | None
    params: int
    flops: int
    param_bytes: int = 0
    activation_bytes: int = 0

    @property
    def macs(self) -> int:
        """Multiply-adds: a multiply and an add counted once, ``flops`` / 2."""
        return self.flops // 2


@dataclass(frozen=True)
class Summary:
    """The rows in execution order, the graph inputs' shapes, and totals."""

    rows: tuple[Row, ...]
    input_shapes: Mapping[str, Shape]
    input_bytes: int = 0

    def total(self, field: str) -> int:
        """The sum over the rows of a :class:`Row` field."""
        return sum(getattr(r, field) for r in self.rows)

    total_params = property(lambda self: self.total("params"))
    total_flops = property(lambda self: self.total("flops"))
    total_macs = property(lambda self: self.total("flops") // 2)
    total_param_bytes = property(lambda self: self.total("param_bytes"), doc="torchinfo's \"Params size\"")
    total_activation_bytes = property(lambda self: self.total("activation_bytes"), doc="every node's output, once")

    @property
    def forward_backward_bytes(self) -> int:
        """torchinfo's "Forward/backward pass size": the output of each node with parameters, and its gradient."""
        return 2 * sum(r.activation_bytes for r in self.rows if r.params)

    @property
    def total_bytes(self) -> int:
        """torchinfo's "Estimated Total Size": input, forward/backward pass and parameters."""
        return self.input_bytes + self.forward_backward_bytes + self.total_param_bytes

    @property
    def shapes(self) -> dict[str, Shape | None]:
        """Path (or graph input) -> output shape."""
        return {**self.input_shapes, **{r.path: r.shape for r in self.rows}}

    def __str__(self) -> str:
        header = ("node", "op", "output shape", "output bytes", "param bytes", "params", "mult-adds")
        lines = [(name, "input", shape_label(shape), "", "", "", "") for name, shape in self.input_shapes.items()]
        lines += [(r.path, r.op, shape_label(r.shape), _bytes(r.activation_bytes), _bytes(r.param_bytes),
                   f"{r.params:,}" if r.params else "", f"{r.macs:,}" if r.macs else "") for r in self.rows]
        total = ("total", "", "", _bytes(self.total_activation_bytes), _bytes(self.total_param_bytes),
                 f"{self.total_params:,}", f"{self.total_macs:,}")
        widths = [max(len(line[i]) for line in (header, *lines, total)) for i in range(len(header))]

        def fmt(line: tuple[str, ...]) -> str:
            left = "  ".join(cell.ljust(w) for cell, w in zip(line[:3], widths))
            right = "  ".join(cell.rjust(w) for cell, w in zip(line[3:], widths[3:]))
            return f"{left}  {right}"

        rule = "-" * len(fmt(header))
        note = (f"{self.total_params / 1e6:.2f} M params; {self.total_macs / 1e9:.2f} G mult-adds (a multiply-add "
                f"counted once, torchvision's 'GFLOPS'), {self.total_flops / 1e9:.2f} GFLOPs counting both")
        memory = (f"input {_mb(self.input_bytes)}, forward/backward pass {_mb(self.forward_backward_bytes)}, params "
                  f"{_mb(self.total_param_bytes)}: {_mb(self.total_bytes)} in all (torchinfo's sizes); every output "
                  f"once: {_mb(self.total_activation_bytes)}")
        return "\n".join([fmt(header), rule, *map(fmt, lines), rule, fmt(total), note, memory])


def _mb(n: int) -> str:
    """A size in megabytes (10**6 bytes), as torchinfo prints it: '26.29 MB'."""
    return f"{n / 1e6:,.2f} MB"


def _bytes(n: int) -> str:
    """A size in bytes, short: '2.05MB'; '' for none."""
    return f"{si(n)}B" if n else ""


class _Recorder(_Locator):
    """Runs the compiled graph node by node under ``counter``, keeping each node's output shape and FLOPs."""

    def __init__(self, module: nn.Module, counter: FlopCounterMode):
        super().__init__(module)
        self.counter = counter
        self.shapes: dict[str, Shape | None] = {}
        self.flops: dict[str, int] = {}
        self.bytes: dict[str, int] = {}

    def run_node(self, n: fx.Node) -> Any:
        before = self.counter.get_total_flops()
        out = super().run_node(n)
        path = n.meta.get("graphnet_path")
        if path is not None:
            self.shapes[path] = tuple(out.shape) if isinstance(out, torch.Tensor) else None
            self.bytes[path] = out.numel() * out.element_size() if isinstance(out, torch.Tensor) else 0
            self.flops[path] = self.counter.get_total_flops() - before
        return out


def summary(graph: Graph, input_shape: Sequence[int] | Mapping[str, Sequence[int]],
            outputs: str | Sequence[str] | None = None) -> Summary:
    """Shapes, parameters and FLOPs of ``graph`` for inputs of ``input_shape`` (batch dim included).

    ``input_shape``: one shape for a single-input graph, else a dict input name -> shape.
    ``outputs``: a node path or list of them; only the nodes they depend on are counted
    (default: every node). A node that fails on these shapes raises ``ShapeError``.
    """
    given = dict(input_shape) if isinstance(input_shape, Mapping) else {graph.inputs[0]: input_shape}
    graph = _needed(graph, outputs)
    missing = [name for name in graph.inputs if name not in given]
    if missing:
        raise ValueError(f"no input shape for graph input(s) {', '.join(missing)}")
    input_shapes = {name: tuple(given[name]) for name in graph.inputs}
    sinks = [p for p in graph.order if not graph.successors(p)]
    with torch.device("meta"):
        network = compile(graph, outputs=sinks).eval()
    counter = FlopCounterMode(display=False)
    recorder = _Recorder(network, counter)
    inputs = [torch.empty(shape, device="meta") for shape in input_shapes.values()]
    with torch.no_grad(), counter:
        recorder.run(*inputs)

    shapes: dict[str, Shape | None] = {**input_shapes, **recorder.shapes}
    rows = []
    for node in graph.nodes:
        kind = get_op(node.op).kind
        if kind == "alias":
            shapes[node.path] = shapes[node.inputs[0]]
        module = network.node_module(node.path) if kind == "module" else None
        weights = list(module.parameters()) if module is not None else []
        output = 0 if isinstance(module, Stored) else recorder.bytes.get(node.path, 0)  # a Stored's is its tensor
        rows.append(Row(node.path, node.op, shapes[node.path], sum(p.numel() for p in weights),
                        recorder.flops.get(node.path, 0), sum(p.numel() * p.element_size() for p in weights), output))
    return Summary(tuple(rows), input_shapes, sum(x.numel() * x.element_size() for x in inputs))


def _needed(graph: Graph, outputs: str | Sequence[str] | None) -> Graph:
    """``graph`` cut down to the nodes that ``outputs`` depend on."""
    if outputs is None:
        return graph
    targets = [outputs] if isinstance(outputs, str) else list(outputs)
    keep = set(targets)
    for path in targets:
        if path not in graph:
            raise SpecError("output is not a node of the graph", path)
        keep |= nx.ancestors(graph.nx, path)
    return Graph([n for n in graph.nodes if n.path in keep], tuple(i for i in graph.inputs if i in keep))
