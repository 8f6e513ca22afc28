"""Trainer recipes: the cumulative steps of Page's "How to train your ResNet 8: Bag of tricks".

A :class:`Recipe` is plain data: epochs, batch size, a piecewise-linear learning rate (knots
in epochs, values in Page's per-sample units), cutout, weight decay, the rewrite passes to
apply, where augmentation runs, EMA, and the published V100 time and accuracy of the step.
``RECIPES`` lists the steps in the post's order; each adds one trick to the one before.
The last (``tta``) is the default, also named ``bag_of_tricks``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

PassStep = tuple[str, dict[str, Any]]  # a recipe step: a rewrite pass name and its params


@dataclass(frozen=True)
class Recipe:
    """A declarative trainer configuration (see the module doc).

    ``lr_knots`` are epochs and ``lr_values`` the rates there (linear in between, the last
    value held after the last knot); a step uses ``value / batch_size`` on the summed loss,
    and weight decay ``weight_decay * batch_size``, so both are per-sample rates.
    ``passes`` run in order, each on the graph its registry entry applies to (net, loss or
    eval). ``gpu_preprocessing`` False augments on the CPU and moves each batch to the
    device. ``ema``: None or ``{'momentum': m, 'every': k}`` (decay ``m**k`` every k steps).
    """

    name: str
    title: str
    epochs: int
    lr_knots: tuple[float, ...]
    lr_values: tuple[float, ...]
    cutout: int
    passes: tuple[PassStep, ...] = ()
    gpu_preprocessing: bool = True
    ema: dict[str, float] | None = None
    batch_size: int = 512
    weight_decay: float = 5e-4
    momentum: float = 0.9
    v100_time: float | None = None  # seconds, as published
    v100_acc: float | None = None  # mean final test accuracy, as published

    def __post_init__(self):
        if len(self.lr_knots) != len(self.lr_values) or len(self.lr_knots) < 2:
            raise ValueError(f"recipe {self.name}: lr_knots and lr_values need the same length (>= 2)")
        if list(self.lr_knots) != sorted(self.lr_knots):
            raise ValueError(f"recipe {self.name}: lr_knots must increase")

    def with_epochs(self, epochs: int) -> Recipe:
        """This recipe for ``epochs`` epochs, its lr knots scaled in proportion."""
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, not {epochs}")
        scale = epochs / self.epochs
        return replace(self, epochs=epochs, lr_knots=tuple(k * scale for k in self.lr_knots))

    def scaled(self, factor: float) -> Recipe:
        """This recipe for ``round(epochs * factor)`` epochs (at least 1)."""
        return self.with_epochs(max(1, round(self.epochs * factor)))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers) for JSON and checkpoints."""
        d = asdict(self)
        d["passes"] = [[name, dict(params)] for name, params in self.passes]
        d["lr_knots"], d["lr_values"] = list(self.lr_knots), list(self.lr_values)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        return cls(**{**d, "passes": tuple((name, dict(params)) for name, params in d["passes"]),
                      "lr_knots": tuple(d["lr_knots"]), "lr_values": tuple(d["lr_values"])})


EMA_SETTINGS = {"momentum": 0.99, "every": 5}  # Page's: decay 0.99 per step, applied every 5 steps
# BN scales fixed at 1, CELU alpha x4 (0.075 -> 0.3), BN biases lr x64 and wd /64, output x1/16
FROZEN_BN = {"weight": 1.0, "act_alpha_scale": 4.0, "bias_lr_mult": 64.0, "bias_wd_mult": 1 / 64,
             "final_scale": 1 / 16}


def _steps() -> list[Recipe]:
    """The post's steps, each built from the one before (see the module doc)."""
    def warmup(epochs: int, peak: float) -> dict:
        return {"epochs": epochs, "lr_knots": (0, epochs / 5, epochs), "lr_values": (0, peak, 0)}

    def ema_schedule(epochs: int) -> dict:
        return {"epochs": epochs, "lr_knots": (0, epochs / 5, epochs - 2), "lr_values": (0, 1.0, 0.1)}

    steps = [Recipe("baseline", "baseline", 24, (0, 5, 24), (0, 0.4, 0), cutout=8,
                    gpu_preprocessing=False, v100_time=75, v100_acc=0.941)]

    def step(name: str, title: str, v100_time: float, add: tuple[PassStep, ...] = (), **changes: Any) -> None:
        prev = steps[-1]
        steps.append(replace(prev, name=name, title=title, passes=prev.passes + add,
                             v100_time=v100_time, **changes))

    step("gpu_preprocessing", "GPU preprocessing", 70, gpu_preprocessing=True)
    step("moved_max_pool", "moved max-pool", 64,
         (("pool_before_norm", {}),), epochs=25, lr_knots=(0, 5, 25))
    step("label_smoothing", "label smoothing", 59, (("label_smoothing", {"alpha": 0.2}),), **warmup(23, 0.4))
    step("celu", "CELU", 52, (("celu", {"alpha": 0.075}),), **warmup(20, 0.4))
    step("ghost_bn", "ghost batch norm", 46, (("ghost_bn", {"num_splits": 16}),), **warmup(18, 0.6))
    step("frozen_bn_scale", "frozen BN scales", 43, (("freeze_bn_scale", FROZEN_BN),), **warmup(17, 0.6))
    step("whitening", "input patch whitening", 36, (("whiten_input", {"patch": 3, "eps": 1e-2}),),
         cutout=5, **warmup(14, 1.0))
    step("ema", "EMA", 34, ema=dict(EMA_SETTINGS), **ema_schedule(13))
    step("tta", "test-time augmentation", 26, (("tta_flip", {}),), cutout=0, **ema_schedule(10))
    return steps


STEPS: tuple[Recipe, ...] = tuple(_steps())
RECIPES: dict[str, Recipe] = {r.name: r for r in STEPS}
RECIPES["bag_of_tricks"] = STEPS[-1]
DEFAULT = "bag_of_tricks"


def as_pass(item: str | tuple | list) -> PassStep:
    """A pass written as ``'name'`` or ``(name, params)`` as ``(name, params)``."""
    if isinstance(item, str):
        return item, {}
    name, params = item
    return name, dict(params)


def get_recipe(name: str) -> Recipe:
    """The recipe named ``name``; ValueError listing the known names if none."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})") from None
