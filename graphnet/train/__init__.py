"""The fast trainer for Page's bag of tricks and airbench94: recipes, optimizers, EMA, lookahead, TTA, logs, checkpoints.

``Trainer(make_graphs(net, recipe.passes), recipe, dataset).run(seed)`` trains one run;
``make_setup`` and ``train_runs`` add the configuration header, the logs and checkpoints
(what ``graphnet train`` does). ``resolve_runtime(Options(...))`` resolves the device,
precision and memory format once, for all of them.
"""

from .checkpoint import CheckpointError, load_checkpoint, rebuild, save_checkpoint
from .ema import EMA
from .environment import Options, Runtime, resolve_runtime
from .errors import DistributedError, TrainError
from .evaluation import evaluate, loss_and_correct
from .graphs import Graphs, check_batch_size, make_graphs
from .loop import NonFiniteLoss, RunResult, Trainer, check_data
from .optim import NesterovSGD, Optimization, make_optimization, make_optimizer, set_lr
from .recipes import AIRBENCH_STEPS, DEFAULT, EMA_SETTINGS, RECIPES, REPLAYS, STEPS, Recipe, as_pass, get_recipe
from .provenance import provenance
from .runner import Setup, Stopped, make_setup, prepare_out, train_runs
from .schedule import PiecewiseLinear

__all__ = [
    "AIRBENCH_STEPS", "CheckpointError", "DEFAULT", "DistributedError", "EMA", "EMA_SETTINGS", "Graphs",
    "NesterovSGD", "NonFiniteLoss", "Optimization", "Options", "PiecewiseLinear", "RECIPES", "REPLAYS", "Recipe",
    "RunResult", "Runtime", "STEPS", "Setup", "Stopped", "TrainError", "Trainer", "as_pass", "check_batch_size",
    "check_data", "evaluate", "get_recipe", "load_checkpoint", "loss_and_correct", "make_graphs",
    "make_optimization", "make_optimizer", "make_setup", "prepare_out", "provenance", "rebuild", "resolve_runtime",
    "save_checkpoint", "set_lr", "train_runs",
]
