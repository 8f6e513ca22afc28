"""Checkpoints: the evaluated weights with everything needed to rebuild and re-evaluate them.

A checkpoint is one ``torch.save`` file of plain data (loadable with ``weights_only=True``):
the network, loss and eval graphs as JSON specs, the passes and recipe, the run's
configuration, data source and log, and the weights (the EMA's when the recipe had one) as fp32 tensors.
Rebuilding needs no rewrite pass: the graphs are stored after rewriting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..compile import Network, compile
from ..graph import build
from ..losses import LOSS_INPUTS
from ..spec import from_json, to_json
from .loop import Graphs, RunResult
from .recipes import Recipe

FORMAT = "graphnet-checkpoint-v1"
FILENAME = "checkpoint.pt"


def save_checkpoint(path: Path, graphs: Graphs, recipe: Recipe, passes: list, config: dict[str, Any],
                    result: RunResult, data: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint of ``result`` to ``path`` (a file, or a folder to hold ``checkpoint.pt``).

    ``data``: ``{'source', 'subset', 'test_subset'}``, what ``graphnet eval`` reloads by default.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    torch.save({
        "format": FORMAT,
        "spec": to_json(graphs.net.to_spec()),
        "loss_spec": to_json(graphs.loss.to_spec()),
        "eval_spec": to_json(graphs.eval.to_spec()),
        "passes": [[name, dict(params)] for name, params in passes],
        "recipe": recipe.to_dict(),
        "config": config,
        "data": data or {},
        "log": result.rows,
        "weights": result.state,
    }, path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (a file, or a folder holding ``checkpoint.pt``) as saved."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path} is not a graphnet checkpoint ({FORMAT})")
    return checkpoint


def rebuild(checkpoint: dict[str, Any]) -> tuple[Graphs, Network, Network]:
    """``(graphs, eval network, loss network)`` of a checkpoint, with its weights loaded (on the CPU)."""
    from .. import rewrites  # noqa: F401 - registers the ops that rewritten graphs use

    graphs = Graphs(build(from_json(checkpoint["spec"])),
                    build(from_json(checkpoint["loss_spec"]), inputs=LOSS_INPUTS),
                    build(from_json(checkpoint["eval_spec"])))
    net = compile(graphs.net)
    net.load_state_dict(checkpoint["weights"])
    return graphs, compile(graphs.eval, modules=net), compile(graphs.loss)
