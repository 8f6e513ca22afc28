"""Trainer recipes: the cumulative steps of Page's "How to train your ResNet 8: Bag of tricks",
then those from Page's final recipe to Keller Jordan's airbench94 (cifar10-airbench).

A :class:`Recipe` is plain data: the network, epochs, batch size, the optimizer and a
piecewise-linear learning rate, augmentation, weight decay, the rewrite passes to apply, EMA
or lookahead, and the published time and accuracy of the step. ``STEPS`` lists Page's steps
in the post's order, ``AIRBENCH_STEPS`` the replay from Page's final recipe to airbench94
(docs/airbench.md); each adds one trick to the one before. ``REPLAYS`` names both for
``graphnet ablate``. Page's last step (``tta``) is the default, also named ``bag_of_tricks``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

OPTIMIZERS = ("page", "decoupled", "muon")
FLIPS = ("random", "alternating")
PassStep = tuple[str, dict[str, Any]]  # a recipe step: a rewrite pass name and its params


@dataclass(frozen=True)
class Recipe:
    """A declarative trainer configuration (see the module doc).

    ``network`` is the spec (``module:builder``) the passes rewrite when no SPEC is given.
    ``epochs`` may be fractional: a run takes ``ceil(epochs · steps per epoch)`` steps.
    ``lr_knots`` are epochs and ``lr_values`` the schedule there (linear in between, the last
    value held after the last knot). With ``optimizer`` 'page' the values are Page's per-sample
    rates: a step uses ``value / batch_size`` on the summed loss, and weight decay
    ``weight_decay * batch_size``, with Nesterov ``momentum``. With 'decoupled' or 'muon' they
    multiply the base rates that ``optimizer_params`` give, which also hold their momentum and
    weight decay (``weight_decay`` and ``momentum`` are Page's optimizer's; see ``graphnet.train.optim``). ``passes`` run in order, each on
    the graph its registry entry applies to (net, loss or eval). ``gpu_preprocessing`` False
    augments on the CPU and moves each batch to the device. ``pad``: translation by random
    crops of the reflect-padded images; ``flip``: random or alternating (airbench).
    ``ema``: None or ``{'momentum': m, 'every': k}`` (decay ``m**k`` every k steps);
    ``lookahead``: None or ``graphnet.train.lookahead.Lookahead``'s settings.
    ``whiten_images``: how many (class-balanced) training images the input whitening sees.
    """

    name: str
    title: str
    epochs: float
    lr_knots: tuple[float, ...]
    lr_values: tuple[float, ...]
    cutout: int
    passes: tuple[PassStep, ...] = ()
    gpu_preprocessing: bool = True
    ema: dict[str, float] | None = None
    batch_size: int = 512
    weight_decay: float = 5e-4
    momentum: float = 0.9
    network: str = "graphnet.zoo.resnet9:build"
    optimizer: str = "page"
    optimizer_params: dict[str, float] = field(default_factory=dict)
    pad: int = 4
    flip: str = "random"
    lookahead: dict[str, float] | None = None
    whiten_images: int = 10_000
    published_time: float | None = None  # seconds, as published
    published_acc: float | None = None  # mean final test accuracy, as published
    published_on: str | None = None  # the device of the published figures

    def __post_init__(self):
        if len(self.lr_knots) != len(self.lr_values) or len(self.lr_knots) < 2:
            raise ValueError(f"recipe {self.name}: lr_knots and lr_values need the same length (>= 2)")
        if list(self.lr_knots) != sorted(self.lr_knots):
            raise ValueError(f"recipe {self.name}: lr_knots must increase")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"recipe {self.name}: optimizer must be one of {', '.join(OPTIMIZERS)}, "
                             f"not {self.optimizer!r}")
        if self.flip not in FLIPS:
            raise ValueError(f"recipe {self.name}: flip must be one of {', '.join(FLIPS)}, not {self.flip!r}")

    def with_epochs(self, epochs: float) -> Recipe:
        """This recipe for ``epochs`` epochs, its lr knots scaled in proportion."""
        if epochs <= 0:
            raise ValueError(f"epochs must be more than 0, not {epochs}")
        scale = epochs / self.epochs
        return replace(self, epochs=epochs, lr_knots=tuple(k * scale for k in self.lr_knots))

    def scaled(self, factor: float) -> Recipe:
        """This recipe for ``epochs * factor`` epochs: whole epochs (at least 1) if its epochs
        are whole, else to two decimals (at least 0.01)."""
        epochs = self.epochs * factor
        whole = float(self.epochs).is_integer()
        return self.with_epochs(max(1, round(epochs)) if whole else max(0.01, round(epochs, 2)))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers) for JSON and checkpoints."""
        d = asdict(self)
        d["passes"] = [[name, dict(params)] for name, params in self.passes]
        d["lr_knots"], d["lr_values"] = list(self.lr_knots), list(self.lr_values)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        """The recipe ``to_dict`` gave."""
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
                    gpu_preprocessing=False, published_time=75, published_acc=0.941, published_on="V100")]

    def step(name: str, title: str, published_time: float, add: tuple[PassStep, ...] = (), **changes: Any) -> None:
        prev = steps[-1]
        steps.append(replace(prev, name=name, title=title, passes=prev.passes + add,
                             published_time=published_time, **changes))

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

AIRBENCH_NET = "graphnet.zoo.airbench94:architecture"  # the bare network; the steps add its layer details
# airbench94.py's hyperparameters: lr and weight decay per 1,024 examples, Nesterov momentum
DECOUPLED = {"lr": 11.5, "momentum": 0.85, "weight_decay": 0.0153}
# from epoch 3, every 5 steps: decay 0.95**5 * (step / steps)**3; weights reset to the average each epoch
LOOKAHEAD = {"every": 5, "decay_base": 0.95, "decay_pow": 3.0, "start_epoch": 3}
# airbench94_muon.py: Muon for the conv filters, Nesterov SGD (momentum 0.85) for the rest
MUON = {"filter_lr": 0.24, "filter_momentum": 0.6, "ns_steps": 3, "bias_lr": 0.053, "head_lr": 0.67,
        "momentum": 0.85, "weight_decay": 2e-6}


def _airbench_steps() -> list[Recipe]:
    """Page's final recipe, then one of airbench94's tricks a step (docs/airbench.md)."""
    from ..zoo.airbench94 import PASSES

    whiten, dirac, bn = (tuple([p]) for p in PASSES)
    page = STEPS[-1]
    steps = [replace(page, name="bag_of_tricks", title="Page's final recipe")]

    def step(name: str, title: str, add: tuple[PassStep, ...] = (), **changes: Any) -> None:
        prev = steps[-1]
        passes = changes.pop("passes", prev.passes) + add
        steps.append(replace(prev, **{"published_time": None, "published_acc": None, "published_on": None,
                                      **changes}, name=name, title=title, passes=passes))

    step("airbench_net", "airbench94's network", network=AIRBENCH_NET,
         passes=(("label_smoothing", {"alpha": 0.2}), ("tta_flip", {})))
    step("whiten_pm", "± 2×2 patch whitening", whiten, whiten_images=5000)
    step("dirac", "identity init", dirac)
    step("bn_settings", "airbench's batch norms", bn)
    step("decoupled", "decoupled Nesterov SGD, batch 1,024", batch_size=1024, optimizer="decoupled",
         optimizer_params=dict(DECOUPLED), lr_knots=(0, 0.23 * 10, 10), lr_values=(0.2, 1.0, 0.07))
    step("translate", "±2 px translation", pad=2)
    step("alternating_flip", "alternating flip", flip="alternating")
    step("lookahead", "lookahead (for the EMA)", ema=None, lookahead=dict(LOOKAHEAD))
    step("tta_translate", "6-view TTA", (("tta_translate", {"shift": 1}),))
    step("airbench94", "airbench94: 9.9 epochs", epochs=9.9, lr_knots=(0, 0.23 * 9.9, 9.9),
         published_time=3.83, published_acc=0.9401, published_on="A100")
    step("airbench94_muon", "airbench94_muon: Muon, batch 2,000, 8 epochs",
         network="graphnet.zoo.airbench94:build_muon", passes=(("label_smoothing", {"alpha": 0.2}),
                                                              ("tta_flip", {}), ("tta_translate", {"shift": 1})),
         batch_size=2000, epochs=8, optimizer="muon", optimizer_params=dict(MUON), lookahead=None,
         lr_knots=(0, 8), lr_values=(1.0, 0.0), published_time=2.59, published_acc=0.9401, published_on="A100")
    return steps


AIRBENCH_STEPS: tuple[Recipe, ...] = tuple(_airbench_steps())
REPLAYS: dict[str, tuple[Recipe, ...]] = {"bag_of_tricks": STEPS, "airbench94": AIRBENCH_STEPS}
RECIPES: dict[str, Recipe] = {r.name: r for r in STEPS + AIRBENCH_STEPS[1:]}
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
