"""Trimming a recipe to a target accuracy: the fewest epochs at which the mean test accuracy
over K seeds reaches it (Page's method: every row of his table is a time at equal accuracy).

Epochs are searched on a grid of ``resolution`` (a quarter epoch by default) up to
``max_epochs``; a run of ``e`` epochs is the recipe's schedule rescaled (``Recipe.with_epochs``).
A :class:`Search` brackets the answer from a first guess (:data:`FIRST_GUESS` of the recipe's
epochs: doubling up from below costs at most about twice the answer's runs, a guess far above
the answer costs its whole length), doubling up until a trial reaches the target, then bisects between the largest grid point known to fail
and the smallest known to reach it, until they are one grid step apart. Every trial is kept
and reused: accuracy is taken to grow with the epochs, so no point is tried twice and a trial
above the smallest that reached the target is never run. A search proposes ``width``
candidates at once, splitting its interval into ``width + 1`` parts, so that an engine with
several slots (:mod:`.engine`) runs one bisection level in parallel.

:func:`run_searches` drives several searches (the steps of an ablation) together, each round's
trials of all of them in one batch of the engine; :func:`train_trial` is one run of a trial.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .errors import TrainError

FIRST_GUESS = 0.25  # the first trial's epochs, as a fraction of the recipe's


@dataclass(frozen=True)
class SeedRun:
    """One run of a trial: its seed, final test accuracy, train time (s) and per-epoch rows."""

    seed: int
    test_acc: float
    train_time: float
    rows: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Trial:
    """The runs of one number of epochs, one per seed."""

    epochs: float
    runs: tuple[SeedRun, ...]

    def stats(self, field: str) -> tuple[float, float]:
        """The mean and std over the seeds of a :class:`SeedRun` field (``test_acc``, ``train_time``)."""
        values = [getattr(r, field) for r in self.runs]
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    acc_mean = property(lambda self: self.stats("test_acc")[0])
    acc_std = property(lambda self: self.stats("test_acc")[1])
    time_mean = property(lambda self: self.stats("train_time")[0])
    time_std = property(lambda self: self.stats("train_time")[1])

    def reached(self, target: float) -> bool:
        return self.acc_mean >= target

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: epochs, seeds, accuracies, times, their means and stds."""
        return {"epochs": self.epochs, "seeds": [r.seed for r in self.runs],
                "test_acc": [r.test_acc for r in self.runs], "train_time": [r.train_time for r in self.runs],
                "acc_mean": self.acc_mean, "acc_std": self.acc_std, "time_mean": self.time_mean,
                "time_std": self.time_std}


def epochs_text(epochs: float) -> str:
    """``7.25``, ``8``: epochs as ``--epochs`` takes them."""
    return f"{epochs:g}"


class Search:
    """One trim: the grid, the trials so far and what to try next (see the module doc).

    ``start`` is the first guess (rounded to the grid, within it); ``max_epochs`` the most
    epochs tried. :meth:`propose` gives the epochs to try next ([] when done), :meth:`record`
    takes a finished trial; :attr:`answer` is the smallest trial that reached ``target``, and
    :meth:`check` raises a one-line TrainError when the budget cannot reach it."""

    def __init__(self, target: float, start: float, max_epochs: float, resolution: float = 0.25):
        if not 0 < resolution <= max_epochs:
            raise TrainError(f"the resolution ({resolution:g} epochs) must be more than 0 and at most the "
                             f"most epochs ({max_epochs:g})")
        self.target, self.resolution = target, resolution
        self.top = math.floor(max_epochs / resolution + 1e-9)  # the grid: 1 .. top steps of resolution
        self.first = min(max(1, round(start / resolution)), self.top)
        self.trials: dict[int, Trial] = {}  # by grid index

    def epochs(self, index: int) -> float:
        """The epochs of grid point ``index``: whole epochs as an int."""
        value = round(index * self.resolution, 9)
        return int(value) if value.is_integer() else value

    @property
    def high(self) -> int | None:
        """The smallest grid point whose trial reached the target (None: none yet)."""
        return min((i for i, t in self.trials.items() if t.reached(self.target)), default=None)

    @property
    def low(self) -> int:
        """The largest grid point below :attr:`high` whose trial fell short (0: none)."""
        high = self.high
        return max((i for i, t in self.trials.items() if not t.reached(self.target)
                    and (high is None or i < high)), default=0)

    @property
    def done(self) -> bool:
        high = self.high
        return (high is not None and high - self.low <= 1) or (high is None and self.low == self.top)

    def propose(self, width: int = 1) -> list[float]:
        """Up to ``width`` new epochs to try: first the guess (with ``width`` > 1 also its half,
        its double, ...), then doubling up from the largest failure while nothing reached the
        target, then splitting the interval between :attr:`low` and :attr:`high`."""
        if self.done:
            return []
        high, low = self.high, self.low
        if not self.trials:  # the guess, then halved and doubled in turn
            points = [max(1, min(round(self.first * 2.0 ** k), self.top))
                      for k in sorted(range(-width, width + 1), key=lambda k: (abs(k), k))]
        elif high is None:
            points = [min(low * 2 ** k, self.top) for k in range(1, width + 1)]
        else:
            points = [low + round((high - low) * k / (width + 1)) for k in range(1, width + 1)]
        new = [i for i in dict.fromkeys(points) if i not in self.trials and 0 < i and (high is None or i < high)]
        return [self.epochs(i) for i in new[:width]]

    def record(self, trial: Trial) -> None:
        self.trials[round(trial.epochs / self.resolution)] = trial

    @property
    def answer(self) -> Trial | None:
        high = self.high
        return None if high is None else self.trials[high]

    @property
    def below(self) -> Trial | None:
        """The trial one grid step below the answer, when there is one (none at the first step)."""
        high = self.high
        return None if high is None else self.trials.get(high - 1)

    def check(self) -> None:
        """TrainError when the search ended without reaching the target: the best mean accuracy seen."""
        if self.answer is None and self.done:
            best = max(self.trials.values(), key=lambda t: t.acc_mean)
            raise TrainError(f"target {self.target:g} not reached within {epochs_text(self.epochs(self.top))} "
                             f"epochs: the best mean test accuracy was {best.acc_mean:.4f} ± {best.acc_std:.4f} at "
                             f"{epochs_text(best.epochs)} epochs ({len(self.trials)} trials); raise --max-epochs "
                             f"or lower --target")

    def to_dict(self) -> dict[str, Any]:
        """The trials in the order they ran, and the answer (None if the target was not reached)."""
        answer, below = self.answer, self.below
        return {"target": self.target, "resolution": self.resolution, "max_epochs": self.epochs(self.top),
                "trials": [t.to_dict() for t in self.trials.values()],
                "answer": None if answer is None else answer.to_dict(),
                "below": None if below is None else below.to_dict()}


Job = tuple[Hashable, float, int]  # (search key, epochs, seed): one run


def run_searches(searches: Mapping[Hashable, Search], seeds: tuple[int, ...],
                 run_jobs: Callable[[list[Job]], list[SeedRun]], slots: int = 1,
                 on_trial: Callable[[Hashable, Trial], None] | None = None) -> None:
    """Drive ``searches`` to their ends, round by round: each proposes its next epochs (as many
    as the ``slots`` allow, shared among the searches still going, one at least), every
    (epochs, seed) of all of them goes to ``run_jobs`` in one batch, and each finished trial is
    recorded and passed to ``on_trial(key, trial)``."""
    while True:
        going = [key for key, s in searches.items() if not s.done]
        if not going:
            break
        width = max(1, slots // (len(seeds) * len(going)))
        proposed = {key: searches[key].propose(width) for key in going}
        jobs = [(key, epochs, seed) for key, points in proposed.items() for epochs in points for seed in seeds]
        results = iter(run_jobs(jobs))
        for key, points in proposed.items():
            for epochs in points:
                trial = Trial(epochs, tuple(next(results) for _ in seeds))
                searches[key].record(trial)
                if on_trial:
                    on_trial(key, trial)


@dataclass(frozen=True)
class TrialData:
    """What every run of a batch shares (an engine ships it once): the setups by search key,
    the data set, and the run options."""

    setups: Mapping[Hashable, Any]  # runner.Setup by key
    dataset: Any  # a decoded Dataset or a Source to stream
    options: Any  # environment.Options


def train_trial(shared: TrialData, job: Job) -> SeedRun:
    """Train one run of a trial: the key's setup for ``epochs`` from ``seed``, quietly."""
    from .loop import Trainer

    key, epochs, seed = job
    setup = shared.setups[key]
    options = replace(shared.options, progress=False)
    result = Trainer(setup.graphs, setup.recipe.with_epochs(epochs), shared.dataset, options, io.StringIO()).run(seed)
    return SeedRun(seed, result.test_acc, result.train_time, tuple(result.rows))
