"""The fast trainer for Page's bag of tricks and airbench94: recipes, optimizers, EMA, lookahead, TTA, logs, checkpoints.

``Trainer(make_graphs(net, recipe.passes), recipe, dataset).run(seed)`` trains one run;
``make_setup`` and ``train_runs`` add the configuration header, the logs and checkpoints
(what ``graphnet train`` does).
"""

from .checkpoint import CheckpointError, load_checkpoint, rebuild, save_checkpoint
from .ema import EMA
from .loop import (Graphs, NonFiniteLoss, Options, RunResult, Trainer, TrainError, check_batch_size, check_data,
                   evaluate,
                   loss_and_correct, make_graphs, resolve_device, resolve_memory_format, resolve_precision)
from .optim import NesterovSGD, Optimization, make_optimization, make_optimizer, set_lr
from .recipes import AIRBENCH_STEPS, DEFAULT, EMA_SETTINGS, RECIPES, REPLAYS, STEPS, Recipe, as_pass, get_recipe
from .provenance import provenance
from .runner import Setup, make_setup, prepare_out, train_runs
from .schedule import PiecewiseLinear

__all__ = [
    "AIRBENCH_STEPS", "CheckpointError", "DEFAULT", "EMA", "EMA_SETTINGS", "Graphs", "NesterovSGD",
    "NonFiniteLoss", "Optimization", "Options", "PiecewiseLinear", "RECIPES", "REPLAYS", "Recipe", "RunResult",
    "STEPS", "Setup", "TrainError", "Trainer", "as_pass", "check_batch_size", "check_data", "evaluate",
    "get_recipe", "load_checkpoint", "loss_and_correct", "make_graphs", "make_optimization", "make_optimizer",
    "make_setup", "prepare_out", "provenance", "rebuild", "resolve_device", "resolve_memory_format",
    "resolve_precision", "save_checkpoint", "set_lr", "train_runs",
]
