"""The fast trainer: data on the device, the recipe's optimizer, EMA or lookahead, TTA, DAWNBench timing.

A :class:`Trainer` is made once per (graphs, recipe, data set, runtime): it compiles the
networks, keeps the images the data initialisers see, and on CUDA (or with ``compile``) warms
up (a discarded run's first steps: :meth:`Trainer._warm_up`), all before any clock starts. Each :meth:`Trainer.run` then re-initialises
the weights from its seed and trains. Its clock covers the preprocessing (moving the data set
to the device, normalising, padding; fitting the data initialisers such as input whitening)
and the training steps, synchronising CUDA before each read. After each epoch the evaluated
network (the EMA's, if any) is tested without TTA, as airbench does; after the last, the eval
graph (with TTA, if it has it) gives the result. Evaluation is timed apart.
"""

from __future__ import annotations

import math
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any, TextIO

import torch
from torch import nn

from ..compile import compile
from ..data import Dataset, DeviceData
from ..data.alternating_flip import AlternatingFlip
from ..data.imagefolder import Source
from ..data.load import data_sizes
from ..data.stream import StreamData
from ..graph import Graph
from .bn_warmup import RunningStatsWarmup
from .ema import EMA
from .environment import Options, Runtime, resolve_runtime
from .errors import TrainError
from .evaluation import autocast, evaluate, loss_and_correct, sync
from .frozen_after import drop_grads, frozen_at
from .graphs import Graphs
from .log import Progress
from .lookahead import Lookahead
from .muon import orthogonalise
from .optim import Optimization, make_optimization
from .recipes import Recipe
from .schedule import PiecewiseLinear

WHITEN_SEED = 0
WARMUP_STEPS = 3
WARMUP_SEED = 2**31 - 1  # the discarded run of the warm-up


class NonFiniteLoss(TrainError):
    """The training loss became NaN or infinite; ``rows`` holds the epochs completed before."""

    def __init__(self, epoch: int, step: int, steps: int, rows: list[dict[str, Any]]):
        self.epoch, self.step, self.rows = epoch, step, rows
        super().__init__(f"non-finite training loss at epoch {epoch}, step {step} of {steps}: stopping "
                         f"(the log keeps the {len(rows)} epoch(s) before)")


def check_data(recipe: Recipe, net: Graph, dataset: Dataset | Source) -> None:
    """TrainError, in one line, if ``recipe`` cannot train ``net`` on ``dataset``: fewer than 2
    classes, no full batch, crop padding or a cutout that does not fit the images, no test
    images, a conv on the input that wants other channels than the images have, or network
    outputs that are not one per class (a network that cannot take the images otherwise is the
    ShapeError of its failing node)."""
    from ..summary import summary

    n, n_test, shape, num_classes = data_sizes(dataset)
    height, width = shape[1:]
    if num_classes < 2:
        raise TrainError(f"the data set has {num_classes} class ({', '.join(dataset.classes)}): a classifier "
                         "needs at least 2")
    if n < recipe.batch_size:
        raise TrainError(f"{n} training images make no batch of {recipe.batch_size}: use a smaller batch size "
                         f"or more data")
    if recipe.pad >= min(height, width):
        raise TrainError(f"crop padding {recipe.pad} does not fit the {height}x{width} images (reflect padding "
                         "needs less than the image size)")
    if recipe.cutout > min(height, width):
        raise TrainError(f"cutout {recipe.cutout} is larger than the {height}x{width} images")
    if n_test == 0:
        raise TrainError("the test set is empty")
    for path in net.find(op="conv", where=lambda node: net.inputs[0] in node.inputs):
        if net[path].params["c_in"] != shape[0]:
            raise TrainError(f"{path} takes {net[path].params['c_in']} channels, but the images have {shape[0]}: "
                             f"build the network for {shape[0]}")
    outputs = summary(net, (1, *shape)).shapes[net.output]
    if outputs != (1, num_classes):
        per_image = "x".join(map(str, outputs[1:])) if outputs else "not a tensor"
        raise TrainError(f"the network's output {net.output} is {per_image} per image, but the data has "
                         f"{num_classes} classes: build it for {num_classes} (--num-classes {num_classes})")


def whitening_sample(dataset: Dataset, n: int) -> Dataset:
    """The training images the data initialisers (input whitening) see: a seeded class-balanced
    sample of ``n`` (all, if fewer), the same for every run. Not the first images: a data set
    sorted by class (an ImageFolder) would give one or two classes."""
    return dataset.subset(train=min(n, len(dataset.train_images)), test=0, seed=WHITEN_SEED)


@dataclass
class RunResult:
    """One run: per-epoch ``rows``, final test accuracy/loss (through the eval graph: the last
    row's ``tta_acc`` if it has TTA, else its ``test_acc``), and times in seconds.

    ``train_time`` is the DAWNBench time (preprocessing ``prep_time`` plus training);
    ``eval_time`` the final evaluation's; ``images_per_s`` training images per second of
    training time (preprocessing excluded).
    """

    seed: int
    rows: list[dict[str, Any]]
    prep_time: float
    train_time: float
    eval_time: float
    test_loss: float
    test_acc: float
    images_per_s: float
    state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)  # evaluated weights, fp32 on CPU


@dataclass
class _Run:
    """What one run's epochs share: its training data and augmentation draws, the optimizer
    and its schedules, and the steps (``steps`` an epoch, ``total_steps`` in all, ``step`` done)."""

    data: DeviceData | StreamData
    generator: torch.Generator
    flips: AlternatingFlip | None
    optimization: Optimization
    schedule: PiecewiseLinear
    bn_warmup: RunningStatsWarmup
    lookahead: Lookahead | None
    steps: int
    total_steps: int
    epochs: int
    step: int = 0


def _keep_norms_fp32(network: nn.Module) -> nn.Module:
    """Page's fp16: every module in half precision except batch norms (and their subclasses)."""
    network.half()
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.float()
    return network


def _own_code(fn: Callable) -> Callable:
    """``fn`` with a code object of its own. torch.compile caches graphs per code object, so
    the closures of one ``def`` (every trainer's train and eval functions) would share one
    cache and its recompile limit of 8: the third trainer in a process (``graphnet ablate
    --compile``) would silently run uncompiled."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


class Trainer:
    """Trains ``graphs`` on ``dataset`` by ``recipe`` (see the module doc). ``dataset`` is a
    decoded Dataset kept on the device, or an indexed Source streamed by DataLoader workers
    (:mod:`graphnet.data.stream`). ``console`` takes the progress bar (default stdout);
    ``runtime`` is :func:`~.environment.resolve_runtime` of ``options`` unless given.

    ``runtime.dist``: this process's place among several (:mod:`.distributed`, started by
    torchrun). Each process trains a DistributedDataParallel copy on its shard with ``B / W``
    of the recipe's global batch ``B`` (gradients sum over the ranks, so the optimiser's rates
    mean what they mean in one process), and augments with its own seed; ghost batch norm
    splits each process's batch into the graph's ``num_splits``. Rank 0 alone keeps the EMA and
    evaluates; every rank returns its figures (training loss and accuracy summed over the ranks).
    """

    def __init__(self, graphs: Graphs, recipe: Recipe, dataset: Dataset | Source, options: Options = Options(),
                 console: TextIO | None = None, runtime: Runtime | None = None):
        self.graphs, self.recipe, self.dataset, self.options = graphs, recipe, dataset, options
        self.console = console or sys.stdout
        self.runtime = runtime = runtime or resolve_runtime(options)
        self.dist, self.device = runtime.dist, runtime.device
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True
        _, num_test, self.image_shape, self.num_classes = data_sizes(dataset)
        self.image_size = self.image_shape[1]
        self.batch_size = self.dist.local_batch(recipe.batch_size)  # this process's share of the batch
        check_data(recipe, graphs.net, dataset)
        self.eval_batch_size = min(recipe.batch_size, num_test)

        self.net = self._compile(graphs.net).to(self.device, memory_format=runtime.memory_format)
        if runtime.precision == "fp16":
            _keep_norms_fp32(self.net)
        self.model = self.dist.wrap(self.net, sync_bn=options.sync_bn)  # what trains (self.net is the module inside)
        self.loss_net = compile(graphs.loss).to(self.device)
        self.ema = EMA(self.net, **recipe.ema) if recipe.ema and self.dist.is_main else None
        self.evaluated = self.ema.network if self.ema else self.net
        self.eval_net = compile(graphs.eval, modules=self.evaluated)
        fns = [loss_and_correct(net, self.loss_net, self.device, runtime.autocast)
               for net in (self.model, self.evaluated, self.eval_net)]
        self.newton_schulz = orthogonalise  # Muon's, compiled with the steps as airbench94_muon.py does
        if options.compile:
            fns = [torch.compile(_own_code(fn)) for fn in fns]
            self.newton_schulz = torch.compile(_own_code(orthogonalise))
        self.train_fn, self.test_fn, self.eval_fn = fns  # test_fn: each epoch, no TTA; eval_fn: the result
        self.streamed = self._stream_data() if isinstance(dataset, Source) else None
        has_init = graphs.net.find(where=lambda n: "init" in n.attrs)
        self.init_images = self._init_images() if has_init else None
        if cuda or options.compile:
            self._warm_up()

    # -- before the clock ----------------------------------------------------------------------

    def _compile(self, graph: Graph) -> nn.Module:
        """``graph`` as a module, its ghost batch norms set to ``options.ghost_bn_method``."""
        from ..rewrites.ghost_bn import GhostBatchNorm

        network = compile(graph)
        if self.options.ghost_bn_method is not None:
            for module in network.modules():
                if isinstance(module, GhostBatchNorm):
                    module.method = self.options.ghost_bn_method
        return network

    def _init_images(self) -> torch.Tensor:
        """The images the data initialisers fit (input whitening): :func:`whitening_sample`'s
        ``recipe.whiten_images``, normalised, unpadded, on the device (the same images on
        every rank, and streamed or not)."""
        n = self.recipe.whiten_images
        if self.streamed is not None:
            return self.streamed.sample_train_images(n, WHITEN_SEED).to(self.device, torch.float32)
        return DeviceData(whitening_sample(self.dataset, n), self.device, pad=0).train_images

    def _stream_data(self) -> StreamData:
        """The source streamed to where augmentation runs (the device, or the CPU for step 0),
        this rank's share of each epoch; its workers live as long as the trainer."""
        gpu, runtime = self.recipe.gpu_preprocessing, self.runtime
        return StreamData(self.dataset, self.device if gpu else "cpu",
                          dtype=runtime.data_dtype if gpu else torch.float32, pad=self._pad(),
                          memory_format=runtime.memory_format if gpu else torch.contiguous_format,
                          workers=self.options.workers, rank=self.dist.rank, world_size=self.dist.world_size)

    def _warm_up(self) -> None:
        """Before any clock, everything a run's first steps do for the first time (cuDNN
        autotuning, torch.compile, first kernel calls): the networks' checked first calls on
        random data, then a discarded run's first :data:`WARMUP_STEPS` steps (fresh weights and
        the data initialisers, so the whitening ``eigh``; the data and its augmentation RNG; the
        train step, the optimizer step, the EMA's lerp), the lookahead's snapshot and lerp, and
        the test and eval calls. Each run starts again from its seed, so the warm-up changes no
        result (tests/test_train_loop.py)."""
        bs, runtime = self.batch_size, self.runtime
        x = torch.randn(bs, *self.image_shape, device=self.device,
                        dtype=runtime.data_dtype).contiguous(memory_format=runtime.memory_format)
        y = torch.randint(self.num_classes, (bs,), device=self.device)
        with torch.no_grad():  # the networks' checked first calls, in eager mode, so that a shape
            with autocast(self.device, runtime.autocast):
                logits = self.net.eval()(x)  # error names its node (torch.compile skips the check)
                self.eval_net.eval()(x)
            self.loss_net(logits.float(), y)
        run, _ = self._start(WARMUP_SEED)
        self._epoch(run, 1, min(WARMUP_STEPS, run.steps), progress=False)
        if run.lookahead:
            for _ in range(2):
                run.lookahead.after_step(run.lookahead.every, run.lookahead.start_epoch)
        del run
        self.eval_net.eval()
        with torch.no_grad():  # one shape: test batches are padded to it
            self.test_fn(x[:self.eval_batch_size], y[:self.eval_batch_size])
            self.eval_fn(x[:self.eval_batch_size], y[:self.eval_batch_size])
        sync(self.device)

    def _reset(self, seed: int) -> float:
        """Fresh weights from ``seed`` (and the data initialisers) in the network and its EMA;
        returns the seconds the data initialisers took (they count as preprocessing)."""
        torch.manual_seed(seed)
        fresh = compile(self.graphs.net).to(self.device)
        sync(self.device)
        start = time.perf_counter()
        if self.init_images is not None:
            from ..rewrites import initialise

            initialise(fresh, self.init_images)
        sync(self.device)
        seconds = time.perf_counter() - start
        state = fresh.state_dict()
        self.net.load_state_dict(state)
        self.dist.broadcast_(self.net)  # rank 0's weights everywhere (it alone keeps the EMA)
        if self.ema:
            self.ema.reset(state)
        return seconds

    # -- the run -------------------------------------------------------------------------------

    def _prepare_data(self, seed: int) -> DeviceData | StreamData:
        """This rank's training data where augmentation runs: the device, or the CPU for step 0
        (timed); streamed data starts the run's order from ``seed``."""
        if self.streamed is not None:
            self.streamed.start(seed)
            return self.streamed
        shard = self.dist.shard_dataset(self.dataset)
        if self.recipe.gpu_preprocessing:
            return DeviceData(shard, self.device, dtype=self.runtime.data_dtype, pad=self._pad(),
                              memory_format=self.runtime.memory_format)
        return DeviceData(shard, "cpu", pad=self._pad())

    def _pad(self) -> int:
        return self.recipe.pad if self.options.augment else 0

    def _augmentation(self, flips: AlternatingFlip | None, epoch: int) -> dict[str, Any]:
        """``train_batches``' augmentation in ``epoch`` (from 1): random crops of the padded
        images, random or alternating flips, the recipe's cutout; none without ``options.augment``."""
        if not self.options.augment:
            return {"crop": self.image_size, "flip": False, "cutout": 0}
        flip = partial(flips, epoch=epoch - 1) if flips else True
        return {"crop": self.image_size, "flip": flip, "cutout": self.recipe.cutout}

    def _to_device(self, batches: Iterator[tuple]) -> Iterator[tuple]:
        for images, labels, *rest in batches:
            images = images.to(self.device, self.runtime.data_dtype, non_blocking=True)
            yield (images.contiguous(memory_format=self.runtime.memory_format),
                   labels.to(self.device, non_blocking=True), *rest)

    def _batches(self, batches: Iterator[tuple], data: DeviceData | StreamData) -> Iterator[tuple]:
        return batches if data.device == self.device else self._to_device(batches)

    def _start(self, seed: int) -> tuple[_Run, float]:
        """Fresh weights, optimizer and training data for a run from ``seed``, and the seconds
        of preprocessing they took."""
        recipe = self.recipe
        init_time = self._reset(seed)
        # for the global batch: gradients sum over ranks
        optimization = make_optimization(self.net, recipe, newton_schulz=self.newton_schulz)
        schedule = PiecewiseLinear(recipe.lr_knots, recipe.lr_values)
        bn_warmup = RunningStatsWarmup(self.net)
        sync(self.device)
        start = time.perf_counter()
        data = self._prepare_data(seed)
        generator = torch.Generator(device=data.device).manual_seed(self.dist.augment_seed(seed))
        flipped = len(data.train) if self.streamed else data.len_train  # the images flip indices point into
        flips = AlternatingFlip(flipped, generator) if recipe.flip == "alternating" else None
        sync(self.device)
        prep_time = init_time + time.perf_counter() - start
        steps = data.num_train_batches(self.batch_size)  # per epoch
        total_steps = math.ceil(recipe.epochs * steps)  # fractional epochs: the last one stops early
        lookahead = Lookahead(self.net, total_steps, **recipe.lookahead) if recipe.lookahead else None
        return _Run(data, generator, flips, optimization, schedule, bn_warmup, lookahead, steps, total_steps,
                    math.ceil(total_steps / steps)), prep_time

    def run(self, seed: int = 0, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
        """Train from fresh weights; ``on_epoch(row)`` after each epoch. Raises NonFiniteLoss."""
        run, prep_time = self._start(seed)
        total_time = prep_time
        rows: list[dict[str, Any]] = []
        for epoch in range(1, run.epochs + 1):
            n = min(run.steps, run.total_steps - run.step)
            losses, correct, train_time = self._epoch(run, epoch, n)
            total_time += train_time
            bad = torch.nonzero(~torch.isfinite(losses)).flatten()
            if len(bad):
                raise NonFiniteLoss(epoch, int(bad[0]) + 1, n, rows)
            rows.append(self._row(run, epoch, losses, correct, train_time, total_time))
            if on_epoch:
                on_epoch(rows[-1])
        del run.data
        train_seconds = sum(r["train_time"] for r in rows)
        last = rows[-1]
        result = "tta" if self.graphs.tta else "test"
        return RunResult(seed, rows, prep_time, total_time, last[f"{result}_time"], last[f"{result}_loss"],
                         last[f"{result}_acc"], run.step * self.recipe.batch_size / train_seconds,
                         self.eval_state())

    def _epoch(self, run: _Run, epoch: int, n: int, progress: bool = True) -> tuple[torch.Tensor, int, float]:
        """Train ``n`` steps of ``epoch`` (from 1): each step's loss summed over the ranks (on
        the CPU), the correct predictions of all ranks, and the epoch's seconds; ``progress``
        False shows no bar (the warm-up)."""
        bar = Progress(f"epoch {epoch}/{run.epochs}", n, self.console,
                       self.options.progress if self.dist.is_main and progress else False)
        sync(self.device)
        start = time.perf_counter()
        frozen = frozen_at(self.net, epoch - 1).values()
        self.net.train()
        losses = torch.zeros(n, device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        batches = run.data.train_batches(self.batch_size, run.generator, **self._augmentation(run.flips, epoch))
        for i, (images, labels) in enumerate(self._batches(islice(batches, n), run.data)):
            run.step += 1
            run.bn_warmup.before(run.step)
            loss, right = self.train_fn(images, labels)
            loss = loss.sum()
            run.optimization.zero_grad()
            loss.backward()
            drop_grads(frozen)
            run.bn_warmup.after(run.step)  # after backward, which checks the stats are as the forward left them
            at = run.optimization.progress(run.step, run.steps)  # in epochs
            run.optimization.schedule(run.schedule(at), at)
            run.optimization.step()
            if self.ema:
                self.ema.update()
            if run.lookahead:
                run.lookahead.after_step(run.step, epoch - 1)
            losses[i] = loss.detach()
            correct += right.sum()
            bar.update()
        if run.lookahead:
            run.lookahead.end_epoch()
        self.dist.sum_(losses, correct)
        losses = losses.cpu()  # synchronises
        seconds = time.perf_counter() - start
        bar.close()
        return losses, correct.item(), seconds

    def _row(self, run: _Run, epoch: int, losses: torch.Tensor, correct: int, train_time: float,
             total_time: float) -> dict[str, Any]:
        """The epoch's row of the log: its lr, training figures, the test set's without TTA and,
        after the last epoch, with it (when the eval graph has TTA)."""
        seen = len(losses) * self.recipe.batch_size  # by all ranks
        row = {"epoch": epoch, "lr": run.schedule(run.step / run.steps), "train_time": train_time,
               "train_loss": losses.sum().item() / seen, "train_acc": correct / seen,
               **self._test(self.test_fn, run.data, "test"), "total_time": total_time}
        if epoch == run.epochs and self.graphs.tta:
            row.update(self._test(self.eval_fn, run.data, "tta"))
        return row

    def _test(self, fn: Callable, data: DeviceData | StreamData, prefix: str) -> dict[str, float]:
        """``{prefix_loss, prefix_acc, prefix_time}`` of ``fn`` on the test set: evaluated by
        rank 0 (which alone keeps the EMA), its figures shared with every rank."""
        figures = (0.0, 0.0, 0.0)
        if self.dist.is_main:
            self.evaluated.eval()
            self.eval_net.eval()
            figures = evaluate(fn, self._batches(data.test_batches(self.eval_batch_size), data), self.device)
        loss, acc, seconds = self.dist.from_main(figures)
        return {f"{prefix}_time": seconds, f"{prefix}_loss": loss, f"{prefix}_acc": acc}

    def eval_state(self) -> dict[str, torch.Tensor]:
        """The evaluated weights (the EMA's, if any) as fp32 CPU tensors."""
        return {k: v.to("cpu", torch.float32 if v.is_floating_point() else v.dtype, copy=True)
                for k, v in self.evaluated.state_dict().items()}
