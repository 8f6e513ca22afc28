"""Graph matching helpers shared by the passes."""

from __future__ import annotations

from typing import Iterable

from ..graph import Graph
from .registry import NoMatchError

NORMS = ("batch_norm", "ghost_batch_norm")
ACTIVATIONS = ("relu", "celu", "gelu")
MONOTONE_ACTIVATIONS = ("relu", "celu")  # non-decreasing, so max-pool commutes with them


def chains(graph: Graph, *ops: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Paths of each chain ``n0 -> n1 -> ...`` with ``n[i].op in ops[i]``, where every link is
    the only consumer of the node before it and takes no other input."""
    found = []
    for start in graph.find(op=ops[0]):
        chain = [start]
        for want in ops[1:]:
            consumers = graph.successors(chain[-1])
            if len(consumers) != 1 or graph[consumers[0]].op not in want or graph[consumers[0]].inputs != (chain[-1],):
                break
            chain.append(consumers[0])
        else:
            found.append(tuple(chain))
    return found


def describe(*ops: tuple[str, ...]) -> str:
    """A chain pattern as text: ``conv -> batch_norm|ghost_batch_norm -> ...``."""
    return " -> ".join("|".join(o) for o in ops)


def no_match(pass_name: str, looked_for: str, done: Iterable[str] = ()) -> NoMatchError:
    """The error for a pass that found nothing; ``done`` lists the places showing it already applied."""
    done = list(done)
    shown = ", ".join(map(repr, done[:3])) + (f" and {len(done) - 3} more" if len(done) > 3 else "")
    already = f"; already applied (see {shown})" if done else ""
    return NoMatchError(pass_name, f"found no {looked_for}{already}")


def redirect(graph: Graph, old: str, new: str, consumers: Iterable[str]) -> Graph:
    """A copy where each of ``consumers`` reads ``new`` wherever it read ``old``."""
    for c in consumers:
        graph = graph.replace(c, inputs=[new if i == old else i for i in graph[c].inputs])
    return graph
