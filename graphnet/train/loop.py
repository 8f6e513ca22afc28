"""The fast trainer: data on the device, the recipe's optimizer, EMA or lookahead, TTA, DAWNBench timing.

A :class:`Trainer` is made once per (graphs, recipe, data set, options): it compiles the
networks, keeps the whitening images, and on CUDA (or with ``compile``) warms up on random
data, all before any clock starts. Each :meth:`Trainer.run` then re-initialises the weights
from its seed and trains. Its clock covers the preprocessing (moving the data set to the
device, normalising, padding; fitting the data initialisers such as input whitening) and the
training steps, synchronising CUDA before each read. After each epoch the evaluated network
(the EMA's, if any) is tested without TTA, as airbench does; after the last, the eval graph
(with TTA, if it has it) gives the result. Evaluation is timed apart.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from itertools import islice
from dataclasses import dataclass, field
from typing import Any, TextIO

import torch
from torch import nn

from ..compile import compile
from ..data import Dataset, DeviceData
from ..data.alternating_flip import AlternatingFlip
from ..data.stream import Source, StreamData
from ..graph import Graph, build
from ..losses import LOSS_INPUTS, cross_entropy
from .bn_warmup import RunningStatsWarmup
from .distributed import Dist
from .ema import EMA
from .frozen_after import apply_frozen_after, timed_params
from .log import Progress
from .lookahead import Lookahead
from .optim import make_optimization
from .recipes import Recipe
from .schedule import PiecewiseLinear

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
WHITEN_SEED = 0
WARMUP_STEPS = 3


class TrainError(Exception):
    """A run cannot start or cannot go on; the message says why."""


class NonFiniteLoss(TrainError):
    """The training loss became NaN or infinite; ``rows`` holds the epochs completed before."""

    def __init__(self, epoch: int, step: int, steps: int, rows: list[dict[str, Any]]):
        self.epoch, self.step, self.rows = epoch, step, rows
        super().__init__(f"non-finite training loss at epoch {epoch}, step {step} of {steps}: stopping "
                         f"(the log keeps the {len(rows)} epoch(s) before)")


@dataclass(frozen=True)
class Graphs:
    """What a run trains and evaluates: the network, its loss graph and its eval graph."""

    net: Graph
    loss: Graph
    eval: Graph


def make_graphs(net: Graph, passes: Iterable = ()) -> Graphs:
    """Apply each pass to the graph it applies to: the net, the cross-entropy loss graph, or
    the eval graph (made from the rewritten net)."""
    from ..rewrites import rewrite, split_passes

    split = split_passes(passes)
    net = rewrite(net, split["net"])
    loss = rewrite(build(cross_entropy(), inputs=LOSS_INPUTS), split["loss"])
    return Graphs(net, loss, rewrite(net, split["eval"]))


@dataclass(frozen=True)
class Options:
    """How to run, apart from the recipe. ``precision`` 'auto' is bf16 on CUDA, fp32 on CPU;
    ``progress`` None shows the step counter only when ``stream`` is a terminal."""

    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    progress: bool | None = None
    memory_format: str = "auto"  # auto: channels_last on CUDA, contiguous elsewhere
    ghost_bn_method: str | None = None  # GhostBatchNorm.METHODS; None keeps the modules' default
    sync_bn: bool = False  # several processes: plain batch norms over the global batch (distributed.py)
    augment: bool = True  # False: no translation, flip or cutout (for exact comparisons of runs)
    workers: int = 2  # DataLoader worker processes of the streaming path


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available, else cpu; TrainError if cuda is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise TrainError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {name!r} asked for, but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise TrainError(f"device {name!r} asked for, but there are {torch.cuda.device_count()} CUDA devices")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """fp32 | bf16 (autocast) | fp16 (Page: fp16 weights, batch norms in fp32); 'auto' -> bf16 on CUDA."""
    if precision not in PRECISIONS:
        raise TrainError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if device.type != "cuda" and precision != "fp32":
        raise TrainError(f"precision {precision} needs CUDA; on {device.type} training runs in fp32")
    return precision


def resolve_memory_format(name: str, device: torch.device) -> torch.memory_format:
    """'auto' -> channels_last on CUDA (faster convolutions), contiguous elsewhere."""
    if name not in MEMORY_FORMATS:
        raise TrainError(f"memory format must be one of {', '.join(MEMORY_FORMATS)}, not {name!r}")
    if name == "auto":
        name = "channels_last" if device.type == "cuda" else "contiguous"
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


def data_dtype(precision: str) -> torch.dtype:
    """The dtype the data set is kept in on the device: 16 bits for bf16 and fp16 runs (half the
    memory and bandwidth, as Page and airbench), fp32 otherwise."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def check_batch_size(graph: Graph, batch_size: int, processes: int = 1) -> None:
    """TrainError if a ghost batch norm of ``graph`` cannot split a training batch of
    ``batch_size``: with several ``processes``, each one's equal share of it."""
    if batch_size % processes:
        raise TrainError(f"batch size {batch_size} does not split evenly over {processes} processes: "
                         f"use a multiple of {processes}")
    local = batch_size // processes
    share = f" (each of the {processes} processes takes {local})" if processes > 1 else ""
    for path in graph.find(op="ghost_batch_norm"):
        splits = graph[path].params.get("num_splits", 16)
        if local % splits:
            raise TrainError(f"batch size {batch_size}{share} does not split into the {splits} ghost batches of "
                             f"{path} (ghost_bn num_splits={splits}): use a multiple of {splits * processes}")


def data_sizes(dataset: Dataset | Source) -> tuple[int, int, tuple[int, int, int], int]:
    """``(train images, test images, C×H×W, classes)`` of a decoded data set or a streamed source."""
    if isinstance(dataset, Source):
        from ..data.stream import image_shape

        return len(dataset.files["train"]), len(dataset.files["test"]), image_shape(dataset), len(dataset.classes)
    n, height, width, channels = dataset.train_images.shape
    return n, len(dataset.test_images), (channels, height, width), len(dataset.classes)


def check_data(recipe: Recipe, dataset: Dataset | Source) -> None:
    """TrainError if ``recipe`` cannot train on ``dataset``: no full batch, a cutout larger than
    the images, or no test images."""
    n, n_test, (_, height, width), _ = data_sizes(dataset)
    if n < recipe.batch_size:
        raise TrainError(f"{n} training images make no batch of {recipe.batch_size}: use a smaller batch size "
                         f"or more data")
    if recipe.cutout > min(height, width):
        raise TrainError(f"cutout {recipe.cutout} is larger than the {height}x{width} images")
    if n_test == 0:
        raise TrainError("the test set is empty")


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _keep_norms_fp32(network: nn.Module) -> nn.Module:
    """Page's fp16: every module in half precision except batch norms (and their subclasses)."""
    network.half()
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.float()
    return network


def loss_and_correct(network: nn.Module, loss_net: nn.Module, autocast: Callable[[], Any]):
    """``f(images, labels) -> (loss, correct)``, per sample (N floats, N bools; no sync)."""
    def f(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast():
            logits = network(images)
        logits = logits.float()
        return loss_net(logits, labels), logits.argmax(1) == labels

    return f


def _own_code(fn: Callable) -> Callable:
    """``fn`` with a code object of its own. torch.compile caches graphs per code object, so
    the closures of one ``def`` (every trainer's train and eval functions) would share one
    cache and its recompile limit of 8: the third trainer in a process (``graphnet ablate
    --compile``) would silently run uncompiled."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


@torch.no_grad()
def evaluate(fn: Callable, batches: Iterable[tuple[torch.Tensor, torch.Tensor, int]],
             device: torch.device) -> tuple[float, float, float]:
    """(mean loss, accuracy, seconds) of ``fn`` (see :func:`loss_and_correct`) over ``batches``
    of ``(images, labels, count)``: only the first ``count`` samples of a batch count (the rest
    pad it to the batch size, so every call has one shape)."""
    _sync(device)
    start = time.perf_counter()
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    n = 0
    for images, labels, count in batches:
        batch_loss, batch_correct = fn(images, labels)
        loss += batch_loss[:count].sum()
        correct += batch_correct[:count].sum()
        n += count
    _sync(device)
    seconds = time.perf_counter() - start
    if n == 0:
        raise TrainError("the test set is empty")
    return loss.item() / n, correct.item() / n, seconds


class Trainer:
    """Trains ``graphs`` on ``dataset`` by ``recipe`` (see the module doc). ``dataset`` is a
    decoded Dataset kept on the device, or an indexed Source streamed by DataLoader workers
    (:mod:`graphnet.data.stream`).

    ``dist``: this process's place among several (:mod:`.distributed`, started by torchrun).
    Each process trains a DistributedDataParallel copy on its shard with ``B / W`` of the
    recipe's global batch ``B`` (gradients sum over the ranks, so the optimiser's rates mean
    what they mean in one process), and augments with its own seed; ghost batch norm splits each
    process's batch into the graph's ``num_splits``. Rank 0 alone keeps the EMA and evaluates;
    every rank returns its figures (training loss and accuracy summed over the ranks).
    """

    def __init__(self, graphs: Graphs, recipe: Recipe, dataset: Dataset | Source, options: Options = Options(),
                 stream: TextIO | None = None, dist: Dist = Dist()):
        self.graphs, self.recipe, self.dataset, self.options, self.dist = graphs, recipe, dataset, options, dist
        self.stream = stream or sys.stdout
        self.device = dist.device if dist.distributed else resolve_device(options.device)
        self.precision = resolve_precision(options.precision, self.device)
        self.memory_format = resolve_memory_format(options.memory_format, self.device)
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True
        self.dtype = torch.float16 if self.precision == "fp16" else torch.float32  # the weights'
        self.data_dtype = data_dtype(self.precision)
        bf16 = self.precision == "bf16"
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
        _, num_test, self.image_shape, self.num_classes = data_sizes(dataset)
        self.image_size = self.image_shape[1]
        check_batch_size(graphs.net, recipe.batch_size, dist.world_size)
        self.batch_size = dist.local_batch(recipe.batch_size)  # this process's share of the batch
        check_data(recipe, dataset)
        self.eval_batch_size = min(recipe.batch_size, num_test)

        self.net = self._compile(graphs.net).to(self.device, memory_format=self.memory_format)
        if self.precision == "fp16":
            _keep_norms_fp32(self.net)
        # what trains (self.net is the module inside); params frozen mid-run are unused to DDP
        self.model = dist.wrap(self.net, sync_bn=options.sync_bn, find_unused=bool(timed_params(self.net)))
        self.loss_net = compile(graphs.loss).to(self.device)
        self.ema = EMA(self.net, **recipe.ema) if recipe.ema and dist.is_main else None
        self.evaluated = self.ema.network if self.ema else self.net
        self.eval_net = compile(graphs.eval, modules=self.evaluated)
        self.tta = graphs.eval != graphs.net
        fns = [loss_and_correct(net, self.loss_net, self.autocast)
               for net in (self.model, self.evaluated, self.eval_net)]
        if options.compile:
            fns = [torch.compile(_own_code(fn)) for fn in fns]
        self.train_fn, self.test_fn, self.eval_fn = fns  # test_fn: each epoch, no TTA; eval_fn: the result
        self.streamed = self._stream_data() if isinstance(dataset, Source) else None
        self.whiten_images = self._whiten_images() if graphs.net.find(where=lambda n: "init" in n.attrs) else None
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

    def _whiten_images(self) -> torch.Tensor:
        """:func:`whitening_sample`'s images, normalised, unpadded, on the device (the same
        images on every rank, and streamed or not)."""
        n = self.recipe.whiten_images
        if self.streamed is not None:
            return self.streamed.sample_train_images(n, WHITEN_SEED).to(self.device, torch.float32)
        return DeviceData(whitening_sample(self.dataset, n), self.device, pad=0).train_images

    def _stream_data(self) -> StreamData:
        """The source streamed to where augmentation runs (the device, or the CPU for step 0),
        this rank's share of each epoch; its workers live as long as the trainer."""
        gpu = self.recipe.gpu_preprocessing
        return StreamData(self.dataset, self.device if gpu else "cpu",
                          dtype=self.data_dtype if gpu else torch.float32, pad=self._pad(),
                          channels_last=gpu and self.memory_format == torch.channels_last,
                          workers=self.options.workers, rank=self.dist.rank, world_size=self.dist.world_size)

    def _warm_up(self) -> None:
        """Run the train and eval shapes on random data (cuDNN autotuning, torch.compile)."""
        bs = self.batch_size
        x = torch.randn(bs, *self.image_shape, device=self.device,
                        dtype=self.data_dtype).contiguous(memory_format=self.memory_format)
        y = torch.randint(self.num_classes, (bs,), device=self.device)
        with torch.no_grad():  # the networks' checked first calls, in eager mode, so that a
            with self.autocast():  # shape error names its node (torch.compile skips the check)
                logits = self.net.eval()(x)
                self.eval_net.eval()(x)
            self.loss_net(logits.float(), y)
        self.net.train()
        for _ in range(WARMUP_STEPS):
            loss, _ = self.train_fn(x, y)
            loss.sum().backward()
        self.net.zero_grad(set_to_none=True)
        self.eval_net.eval()
        with torch.no_grad():  # one shape: test batches are padded to it
            self.test_fn(x[:self.eval_batch_size], y[:self.eval_batch_size])
            self.eval_fn(x[:self.eval_batch_size], y[:self.eval_batch_size])
        _sync(self.device)

    def _reset(self, seed: int) -> float:
        """Fresh weights from ``seed`` (and the data initialisers) in the network and its EMA;
        returns the seconds the data initialisers took (they count as preprocessing)."""
        torch.manual_seed(seed)
        fresh = compile(self.graphs.net).to(self.device)
        _sync(self.device)
        start = time.perf_counter()
        if self.whiten_images is not None:
            from ..rewrites import initialise

            initialise(fresh, self.whiten_images)
        _sync(self.device)
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
            return DeviceData(shard, self.device, dtype=self.data_dtype, pad=self._pad(),
                              channels_last=self.memory_format == torch.channels_last)
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
            images = images.to(self.device, self.data_dtype, non_blocking=True)
            yield images.contiguous(memory_format=self.memory_format), labels.to(self.device, non_blocking=True), *rest

    def _batches(self, batches: Iterator[tuple], data: DeviceData) -> Iterator[tuple]:
        return batches if data.device == self.device else self._to_device(batches)

    def run(self, seed: int = 0, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
        """Train from fresh weights; ``on_epoch(row)`` after each epoch. Raises NonFiniteLoss."""
        recipe, device = self.recipe, self.device
        init_time = self._reset(seed)
        optimization = make_optimization(self.net, recipe)  # for the global batch: gradients sum over ranks
        schedule = PiecewiseLinear(recipe.lr_knots, recipe.lr_values)
        bn_warmup = RunningStatsWarmup(self.net)
        bs = self.batch_size  # this process's; recipe.batch_size is the global batch

        _sync(device)
        start = time.perf_counter()
        data = self._prepare_data(seed)
        generator = torch.Generator(device=data.device).manual_seed(self.dist.augment_seed(seed))
        flipped = len(data.train) if self.streamed else data.len_train  # the images flip indices point into
        flips = AlternatingFlip(flipped, generator) if recipe.flip == "alternating" else None
        _sync(device)
        prep_time = total_time = init_time + time.perf_counter() - start
        steps = data.num_train_batches(bs)  # per epoch
        total_steps = math.ceil(recipe.epochs * steps)  # fractional epochs: the last one stops early
        epochs = math.ceil(total_steps / steps)
        lookahead = Lookahead(total_steps, **recipe.lookahead) if recipe.lookahead else None
        rows: list[dict[str, Any]] = []
        step = 0
        for epoch in range(1, epochs + 1):
            n = min(steps, total_steps - step)
            progress = Progress(f"epoch {epoch}/{epochs}", n, self.stream,
                                self.options.progress if self.dist.is_main else False)
            _sync(device)
            start = time.perf_counter()
            apply_frozen_after(self.net, epoch - 1)
            self.net.train()
            losses = torch.zeros(n, device=device)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            batches = data.train_batches(bs, generator, **self._augmentation(flips, epoch))
            for i, (images, labels) in enumerate(self._batches(islice(batches, n), data)):
                step += 1
                bn_warmup.before(step)
                loss, right = self.train_fn(images, labels)
                loss = loss.sum()
                optimization.zero_grad()
                loss.backward()
                bn_warmup.after(step)  # after backward, which checks the stats are as the forward left them
                optimization.schedule(schedule(step / steps), step / steps)
                optimization.step()
                if self.ema:
                    self.ema.update()
                if lookahead:
                    lookahead.after_step(self.net, step, epoch - 1)
                losses[i] = loss.detach()
                correct += right.sum()
                progress.update()
            if lookahead:
                lookahead.end_epoch(self.net)
            self.dist.sum_(losses, correct)
            losses = losses.cpu()  # synchronises
            train_time = time.perf_counter() - start
            total_time += train_time
            progress.close()
            bad = torch.nonzero(~torch.isfinite(losses)).flatten()
            if len(bad):
                raise NonFiniteLoss(epoch, int(bad[0]) + 1, n, rows)
            seen = n * recipe.batch_size  # by all ranks
            row = {"epoch": epoch, "lr": schedule(step / steps), "train_time": train_time,
                   "train_loss": losses.sum().item() / seen, "train_acc": correct.item() / seen,
                   **self._test(self.test_fn, data, "test"), "total_time": total_time}
            if epoch == epochs and self.tta:
                row.update(self._test(self.eval_fn, data, "tta"))
            rows.append(row)
            if on_epoch:
                on_epoch(row)
        del data
        train_seconds = sum(r["train_time"] for r in rows)
        last = rows[-1]
        result = "tta" if self.tta else "test"
        return RunResult(seed, rows, prep_time, total_time, last[f"{result}_time"], last[f"{result}_loss"],
                         last[f"{result}_acc"], step * recipe.batch_size / train_seconds, self.eval_state())

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
