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
from .labels import shape_label
from .ops import get_op

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Row:
    """One node: its output ``shape`` (None if not a tensor), ``params`` and ``flops`` (a multiply
    and an add counted apart, as torch counts them)."""

    path: str
    op: str
    shape: Shape | None
    params: int
    flops: int

    @property
    def macs(self) -> int:
        """Multiply-adds: a multiply and an add counted once, ``flops`` / 2."""
        return self.flops // 2


@dataclass(frozen=True)
class Summary:
    """The rows in execution order, the graph inputs' shapes, and totals."""

    rows: tuple[Row, ...]
    input_shapes: Mapping[str, Shape]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_flops(self) -> int:
        return sum(r.flops for r in self.rows)

    @property
    def total_macs(self) -> int:
        return self.total_flops // 2

    @property
    def shapes(self) -> dict[str, Shape | None]:
        """Path (or graph input) -> output shape."""
        return {**self.input_shapes, **{r.path: r.shape for r in self.rows}}

    def __str__(self) -> str:
        header = ("node", "op", "output shape", "params", "mult-adds")
        lines = [(name, "input", shape_label(shape), "", "") for name, shape in self.input_shapes.items()]
        lines += [(r.path, r.op, shape_label(r.shape), f"{r.params:,}" if r.params else "",
                   f"{r.macs:,}" if r.macs else "") for r in self.rows]
        total = ("total", "", "", f"{self.total_params:,}", f"{self.total_macs:,}")
        widths = [max(len(line[i]) for line in (header, *lines, total)) for i in range(len(header))]

        def fmt(line: tuple[str, ...]) -> str:
            left = "  ".join(cell.ljust(w) for cell, w in zip(line[:3], widths))
            right = "  ".join(cell.rjust(w) for cell, w in zip(line[3:], widths[3:]))
            return f"{left}  {right}"

        rule = "-" * len(fmt(header))
        note = (f"{self.total_params / 1e6:.2f} M params; {self.total_macs / 1e9:.2f} G mult-adds (a multiply-add "
                f"counted once, torchvision's 'GFLOPS'), {self.total_flops / 1e9:.2f} GFLOPs counting both")
        return "\n".join([fmt(header), rule, *map(fmt, lines), rule, fmt(total), note])


class _Recorder(_Locator):
    """Runs the compiled graph node by node under ``counter``, keeping each node's output shape and FLOPs."""

    def __init__(self, module: nn.Module, counter: FlopCounterMode):
        super().__init__(module)
        self.counter = counter
        self.shapes: dict[str, Shape | None] = {}
        self.flops: dict[str, int] = {}

    def run_node(self, n: fx.Node) -> Any:
        before = self.counter.get_total_flops()
        out = super().run_node(n)
        path = n.meta.get("graphnet_path")
        if path is not None:
            self.shapes[path] = tuple(out.shape) if isinstance(out, torch.Tensor) else None
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
    with torch.no_grad(), counter:
        recorder.run(*(torch.empty(shape, device="meta") for shape in input_shapes.values()))

    shapes: dict[str, Shape | None] = {**input_shapes, **recorder.shapes}
    rows = []
    for node in graph.nodes:
        kind = get_op(node.op).kind
        if kind == "alias":
            shapes[node.path] = shapes[node.inputs[0]]
        module = network.node_module(node.path) if kind == "module" else None
        params = sum(p.numel() for p in module.parameters()) if module is not None else 0
        rows.append(Row(node.path, node.op, shapes[node.path], params, recorder.flops.get(node.path, 0)))
    return Summary(tuple(rows), input_shapes)


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
