"""What a run trains and evaluates: the network, its loss graph and its eval graph, made by
applying each rewrite pass to the graph it applies to; and the batch sizes they can take."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..graph import Graph, build
from ..losses import LOSS_INPUTS, cross_entropy
from .distributed import local_batch
from .errors import TrainError
from .recipes import PassStep


@dataclass(frozen=True)
class Graphs:
    """The network, its loss graph and its eval graph."""

    net: Graph
    loss: Graph
    eval: Graph

    @property
    def tta(self) -> bool:
        """Whether evaluation runs through eval passes (test-time augmentation) rather than the bare net."""
        return self.eval != self.net


def make_graphs(net: Graph, passes: Iterable = ()) -> Graphs:
    """Apply each pass to the graph it applies to (see :func:`rewrite_graphs`)."""
    from ..rewrites import split_passes

    return rewrite_graphs(net, split_passes(passes))


def rewrite_graphs(net: Graph, split: dict[str, Sequence[PassStep]]) -> Graphs:
    """The graphs of ``split`` (``split_passes``' ``{'net', 'loss', 'eval'}``): ``net`` rewritten,
    the cross-entropy loss graph, and the eval graph made from the rewritten net."""
    from ..rewrites import rewrite

    net = rewrite(net, split["net"])
    loss = rewrite(build(cross_entropy(), inputs=LOSS_INPUTS), split["loss"])
    return Graphs(net, loss, rewrite(net, split["eval"]))


def check_batch_size(graph: Graph, batch_size: int, processes: int = 1) -> None:
    """DistributedError if ``batch_size`` does not split evenly over ``processes``; TrainError
    if a ghost batch norm of ``graph`` cannot split each process's share into its ghost batches."""
    local = local_batch(batch_size, processes)
    share = f" (each of the {processes} processes takes {local})" if processes > 1 else ""
    for path in graph.find(op="ghost_batch_norm"):
        splits = graph[path].params.get("num_splits", 16)
        if local % splits:
            raise TrainError(f"batch size {batch_size}{share} does not split into the {splits} ghost batches of "
                             f"{path} (ghost_bn num_splits={splits}): use a multiple of {splits * processes}")
