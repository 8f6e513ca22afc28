"""Checkpoints: the evaluated weights with everything needed to rebuild and re-evaluate them.

A checkpoint is one ``torch.save`` file of plain data (loadable with ``weights_only=True``):
the network, loss and eval graphs as JSON specs, the passes and recipe, whether evaluation has
TTA, the run's configuration, data source and log, and the weights (the EMA's when the recipe had one) as fp32 tensors.
Rebuilding needs no rewrite pass: the graphs are stored after rewriting.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..compile import Network, compile
from ..graph import build
from ..losses import LOSS_INPUTS
from ..spec import from_json, to_json
from .errors import TrainError
from .graphs import Graphs
from .log import save_atomically
from .loop import RunResult
from .recipes import Recipe

FORMAT = "graphnet-checkpoint-v2"  # v2: ``tta``
FILENAME = "checkpoint.pt"


class CheckpointError(TrainError):
    """A checkpoint cannot be read or does not fit its own network."""


def save_checkpoint(path: Path, graphs: Graphs, recipe: Recipe, passes: list, config: dict[str, Any],
                    result: RunResult, data_record: dict[str, Any] | None = None,
                    origin: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint of ``result`` to ``path`` (a file, or a folder to hold ``checkpoint.pt``),
    atomically.

    ``data_record``: ``{'source', 'typed', 'subset', 'test_subset'}``, what ``graphnet eval`` reloads by
    default (``source`` absolute, ``typed`` as given); ``origin``: the provenance (versions, device, command).
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    save_atomically({
        "format": FORMAT,
        "spec": to_json(graphs.net.to_spec()),
        "loss_spec": to_json(graphs.loss.to_spec()),
        "eval_spec": to_json(graphs.eval.to_spec()),
        "passes": [[name, dict(params)] for name, params in passes],
        "recipe": recipe.to_dict(),
        "tta": graphs.tta,
        "config": config,
        "data": data_record or {},
        "provenance": origin or {},
        "log": result.rows,
        "weights": result.state,
    }, path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (a file, or a folder holding ``checkpoint.pt``) as saved;
    CheckpointError if there is none or it is not one (empty, truncated, not a checkpoint, or
    holding objects that need code to load: only plain data is ever unpickled)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty")
    try:
        with warnings.catch_warnings():  # a file that is no checkpoint may read as another pickle protocol
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Unsupported global" in str(e):  # the weights-only unpickler refused a class or function
            raise CheckpointError(f"checkpoint {path} holds objects that need code to load; graphnet loads "
                                  f"plain data only") from None
        raise CheckpointError(f"{path} is not a graphnet checkpoint: {first}") from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or damaged?): {first}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a graphnet checkpoint ({FORMAT})")
    required = ("spec", "loss_spec", "eval_spec", "tta", "weights", "log", "config", "data")
    missing = [k for k in required if k not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    return checkpoint


def rebuild(checkpoint: dict[str, Any]) -> tuple[Graphs, Network, Network]:
    """``(graphs, eval network, loss network)`` of a checkpoint, with its weights loaded (on the CPU).
    CheckpointError if the weights do not fit the network (missing, unexpected or wrong-shaped)."""
    from .. import rewrites  # noqa: F401 - registers the ops that rewritten graphs use

    graphs = Graphs(build(from_json(checkpoint["spec"])),
                    build(from_json(checkpoint["loss_spec"]), inputs=LOSS_INPUTS),
                    build(from_json(checkpoint["eval_spec"])))
    net = compile(graphs.net)
    weights, expected = checkpoint["weights"], net.state_dict()
    problems = [f"missing {k}" for k in expected if k not in weights]
    problems += [f"unexpected {k}" for k in weights if k not in expected]
    problems += [f"{k} is {tuple(weights[k].shape)}, the network's {tuple(v.shape)}"
                 for k, v in expected.items() if k in weights and getattr(weights[k], "shape", None) != v.shape]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError(f"the checkpoint's weights do not fit its network: {'; '.join(problems[:3])}{more}")
    net.load_state_dict(weights)
    return graphs, compile(graphs.eval, modules=net), compile(graphs.loss)
