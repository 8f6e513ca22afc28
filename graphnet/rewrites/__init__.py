"""Page's bag of tricks as named, composable graph -> graph passes.

``rewrite(graph, ['pool_before_norm', 'celu', ('ghost_bn', {'num_splits': 16}), ...])``
turns the ResNet-9 baseline into the final network (``specs/bag_of_tricks.py``). Each pass
is a pure function ``Graph -> Graph`` registered by name with the graph it applies to:
``'net'``, ``'loss'`` (the loss graph: ``label_smoothing``) or ``'eval'`` (the evaluation
graph made from the net: ``tta_flip``). In Page's order: ``pool_before_norm``,
``label_smoothing``, ``celu``, ``ghost_bn``, ``freeze_bn_scale``, ``whiten_input``,
``tta_flip``; also ``pool_before_act`` and ``swap_activation``.

``airbench`` adds Keller Jordan's airbench94 passes: ``whiten_input_pm``, ``dirac_init``,
``bn_settings`` (net) and ``tta_translate`` (eval); ``inference`` the passes that keep the
function for inference: ``fold_bn``, ``remove_dropout``, ``remove_unused``. ``FAMILIES`` says
whose trick each pass is.

Every pass declares what it keeps (``Pass.keeps``: ``exact``, ``eval`` or ``changes``);
``check(graph, pass)`` verifies it on random inputs, with the weights carried through the
pass's ``state_dict`` map (``rewrite(..., state=sd)``).

Passes that a pattern says are rules (``rules.rule``): a pattern, a replacement, and the
pattern of their own result; ``match`` and ``explain`` work on any pattern.

Passes leave optimiser and initialisation hints as node attrs; ``param_groups(network)``
and ``initialise(network, images)`` read them for the trainer.
"""

# Importing the pass modules registers their passes; in Page's order, which the registry keeps, then airbench's.
from . import pools, loss, activations, ghost_bn, freeze_bn, whiten, tta  # noqa: F401, I001
from . import airbench  # noqa: F401, I001
from . import inference  # noqa: F401, I001
from .contracts import CheckResult, check
from .ghost_bn import GhostBatchNorm
from .hints import INITIALISERS, initialise, param_groups, register_initialiser
from .registry import (PASSES, NoMatchError, Pass, PassError, PassNote, RewriteError, list_passes, no_match, note,
                       register_pass, rewrite, split_passes)
from .rules import ANY, Match, NearMiss, any_of, bound, explain, match, pat, rule

# Whose tricks the shipped passes are, for ``graphnet tricks``; a pass in none is the user's.
FAMILIES = {
    "Page's bag of tricks (2019)": ("pool_before_norm", "pool_before_act", "label_smoothing", "celu",
                                    "swap_activation", "ghost_bn", "freeze_bn_scale", "whiten_input", "tta_flip"),
    "airbench94 (Keller Jordan, 2024)": ("whiten_input_pm", "dirac_init", "bn_settings", "tta_translate"),
    "inference (keep the function)": ("fold_bn", "remove_dropout", "remove_unused"),
}

__all__ = [
    "ANY", "CheckResult", "FAMILIES", "INITIALISERS", "PASSES", "GhostBatchNorm", "Match", "NearMiss", "NoMatchError", "Pass", "PassError",
    "PassNote", "RewriteError", "any_of", "bound", "check", "explain", "initialise", "list_passes", "match", "no_match",
    "note", "param_groups", "pat", "register_initialiser", "register_pass", "rewrite", "rule", "split_passes",
]
