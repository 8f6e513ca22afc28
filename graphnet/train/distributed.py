"""Data-parallel training on several processes, started by ``torchrun``.

``torchrun`` (``torch.distributed.run``) starts one process per device and tells each its
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`from_env` reads them into a :class:`Dist`
(each process on ``cuda:<LOCAL_RANK>`` on CUDA), the one object the trainer asks about ranks,
and :func:`process_group` joins the process group for it (NCCL on CUDA, gloo on the CPU).
Without ``torchrun`` (no ``WORLD_SIZE``, or 1) nothing is started and every method is a no-op.

The global batch. The trainer sums the loss over its batch, and every optimiser
(:func:`~graphnet.train.optim.make_optimization`) is built for the recipe's batch size:
the global batch ``B``. With ``W`` ranks each takes ``b = B / W`` of it
(:func:`local_batch`), and the ranks' gradients are all-reduced by *sum*
(DistributedDataParallel's default is the mean), so each rank steps on ``sum_B grad``, as
one process does: per-sample rates (Page's SGD), rates per 1,024 examples (airbench's) and
weight decay scaled by the batch all mean the same on any number of ranks.

Batch norm statistics are per rank (batches of ``b``), as Page's ghost batch norm intends;
``wrap(network, sync_bn=True)`` makes the plain batch norms compute them over the global
batch instead. Ghost batch norm normalises sub-batches on purpose, so syncing it is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..data import Dataset
from .errors import DistributedError, TrainError

PLAIN_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
SHARD_SEED = 0  # the training split's shards are the same for every run's seed
RANK_SEED_STRIDE = 1 << 32  # rank r's augmentation seed is seed + r * stride (rank 0: seed itself)


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world_size``, ``local_rank`` on its
    machine, and its ``device``. ``Dist()`` is the single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that evaluates, keeps the EMA, logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    # -- the network -----------------------------------------------------------------------

    def wrap(self, network: nn.Module, sync_bn: bool = False) -> nn.Module:
        """``network`` (already on :attr:`device`) in DistributedDataParallel, after
        :func:`sync_batch_norm` if ``sync_bn`` (which raises DistributedError on ghost batch
        norm, in one process too). One process: ``network`` itself. Every trainable parameter
        takes a gradient in every step (a param frozen mid-run has its gradient dropped after
        backward: :mod:`.frozen_after`), so DDP need not look for unused ones.

        Buffers are not broadcast (``broadcast_buffers=False``): each rank keeps its own batch
        norm statistics, and rank 0's are the ones evaluated and saved.
        """
        if sync_bn:
            network = sync_batch_norm(network)
        if not self.distributed:
            return network
        ids = [self.device.index] if self.device.type == "cuda" else None
        # newer torch renames broadcast_buffers; its successor also syncs buffers at init, which
        # changes nothing here (ranks start from rank 0's state: see broadcast_)
        new = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        ddp = DistributedDataParallel(network, device_ids=ids,
                                      **{"forward_sync_buffers" if new else "broadcast_buffers": False})
        ddp.register_comm_hook(None, _sum_gradients)
        return ddp

    def broadcast_(self, module: nn.Module) -> nn.Module:
        """Give every rank rank 0's parameters and buffers (after initialising, which may
        differ across ranks when it depends on data). Returns ``module``."""
        if self.distributed:
            with torch.no_grad():
                for tensor in unwrap(module).state_dict().values():
                    tdist.broadcast(tensor, src=0)
        return module

    # -- batches and seeds -----------------------------------------------------------------

    def local_batch(self, batch_size: int) -> int:
        """This rank's share of the global batch: :func:`local_batch`."""
        return local_batch(batch_size, self.world_size)

    def augment_seed(self, seed: int) -> int:
        """This rank's seed for data order and augmentation: ``seed + rank * 2**32``, so every
        rank draws a different stream, rank 0 the one-process stream, and runs with seeds below
        2**32 never share one. Weights use ``seed`` itself, the same on every rank."""
        return seed + self.rank * RANK_SEED_STRIDE

    def shard(self, labels: torch.Tensor, seed: int) -> torch.Tensor:
        """This rank's indices into a training set with ``labels``: see :func:`shard_indices`."""
        return shard_indices(labels, self.rank, self.world_size, seed)

    def shard_dataset(self, dataset: Dataset, seed: int = SHARD_SEED) -> Dataset:
        """``dataset`` with this rank's shard of the training split (:meth:`shard`) and the
        whole test split; one process: ``dataset`` itself."""
        if not self.distributed:
            return dataset
        index = self.shard(dataset.train_labels, seed)
        return dataclasses.replace(dataset, train_images=dataset.train_images[index],
                                   train_labels=dataset.train_labels[index])

    # -- collectives -----------------------------------------------------------------------

    def sum_(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Sum each tensor over the ranks, in place (per-epoch loss and correct counts)."""
        if self.distributed:
            for tensor in tensors:
                tdist.all_reduce(tensor, op=tdist.ReduceOp.SUM)
        return tensors

    def from_main(self, values: Sequence[float]) -> tuple[float, ...]:
        """Rank 0's ``values`` on every rank (the others pass any of the same length): figures
        only rank 0 computes, such as its evaluation."""
        if not self.distributed:
            return tuple(values)
        shared = torch.tensor(values, dtype=torch.float64, device=self.device)
        tdist.broadcast(shared, src=0)
        return tuple(shared.tolist())

    def barrier(self) -> None:
        if self.distributed:
            if self.device.type == "cuda":
                tdist.barrier(device_ids=[self.device.index])
            else:
                tdist.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """The body runs on rank 0, then on the other ranks (it decodes and caches a data set
        once, the others read the cache)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()


def local_batch(batch_size: int, world_size: int) -> int:
    """Each rank's share ``b = B / W`` of the global batch ``B`` (module doc); DistributedError
    if ``B`` does not split evenly."""
    if batch_size % world_size:
        raise DistributedError(f"batch size {batch_size} does not split evenly over {world_size} "
                               f"processes: use a multiple of {world_size}")
    return batch_size // world_size


def _sum_gradients(group, bucket):  # no annotations: DDP checks them against the real classes
    """DistributedDataParallel's comm hook: all-reduce a ``GradBucket`` of gradients by sum
    (module doc) in ``group`` (None: all ranks); returns the reduction's future."""
    work = tdist.all_reduce(bucket.buffer(), group=group or tdist.group.WORLD, async_op=True)
    return work.get_future().then(lambda done: done.value()[0])


def unwrap(network: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel (else ``network``): for the optimiser's
    parameter groups, the EMA, evaluation and saving, whose state_dict keys must not carry
    DDP's ``module.`` prefix."""
    return network.module if isinstance(network, DistributedDataParallel) else network


def shard_indices(labels: torch.Tensor, rank: int, world_size: int, seed: int) -> torch.Tensor:
    """Rank ``rank``'s sorted indices of a seeded random split of ``len(labels)`` samples into
    ``world_size`` shards of ``len(labels) // world_size`` each (every rank the same number of
    batches, as DDP needs; at most ``world_size - 1`` samples left out).

    Class-balanced: each class is shuffled, the classes are laid end to end in a random order
    and dealt round-robin, so each shard holds each class's share to within one sample. Every
    rank must pass the same ``seed``.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    generator = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    classes = torch.unique(labels)
    members = [torch.nonzero(labels == c).flatten() for c in classes]
    order = torch.randperm(len(classes), generator=generator).tolist()
    dealt = [members[c][torch.randperm(len(members[c]), generator=generator)] for c in order]
    dealt = torch.cat(dealt) if dealt else torch.zeros(0, dtype=torch.int64)
    per_rank = len(labels) // world_size
    return dealt[rank::world_size][:per_rank].sort().values


# -- the process group -------------------------------------------------------------------------

def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer") from None


def from_env(device: str = "auto") -> Dist:
    """This process's :class:`Dist` from torchrun's environment, without joining the group.

    ``device``: 'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:N' (TrainError if
    it is none of them or is not here); on CUDA a rank runs on ``cuda:<LOCAL_RANK>``, one
    process on ``device`` as given.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    target = _device(device)
    if world_size == 1:
        return Dist(device=target)
    if target.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise DistributedError(f"local rank {local_rank} has no GPU: this machine has {count} "
                                   f"(start at most {count} processes per machine)")
        target = torch.device("cuda", local_rank)
    return Dist(rank, world_size, local_rank, target)


def _device(name: str) -> torch.device:
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


@contextlib.contextmanager
def process_group(dist: Dist, timeout: timedelta | None = None) -> Iterator[Dist]:
    """Join torchrun's process group as ``dist`` (:func:`from_env`) for the body, which gets
    ``dist``, and leave it after; ``timeout`` bounds each collective (default torch's: 10 min
    NCCL, 30 min gloo).

    NCCL on CUDA (after ``torch.cuda.set_device(local_rank)``), gloo on the CPU; the rendezvous
    is torchrun's (``MASTER_ADDR``, ``MASTER_PORT``). One process: starts nothing.
    """
    if not dist.distributed:
        yield dist
        return
    if tdist.is_initialized():
        raise DistributedError("a process group is already running in this process")
    if dist.device.type == "cuda":
        torch.cuda.set_device(dist.device)
    tdist.init_process_group("nccl" if dist.device.type == "cuda" else "gloo", init_method="env://",
                             rank=dist.rank, world_size=dist.world_size,
                             **({} if timeout is None else {"timeout": timeout}))
    try:
        yield dist
    finally:
        tdist.destroy_process_group()


# -- synchronised batch norm -------------------------------------------------------------------

class _SumOverRanks(torch.autograd.Function):
    """A tensor summed over the ranks; its gradient is the ranks' gradients summed (each rank's
    loss depends on every rank's input through the sum)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        tdist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _SumOverRanks.apply(grad)


def _sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    return _SumOverRanks.apply(tensor)


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch (all ranks), on the CPU (gloo),
    where torch's SyncBatchNorm refuses to run: the batch mean and variance are summed over
    the ranks with a differentiable all-reduce (two
    passes: the mean, then the squared deviations). Out of training, or in one process, plain
    batch norm. Same parameters and buffers as BatchNorm, so state_dicts load either way."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or not tdist.is_initialized() or tdist.get_world_size() == 1:
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        local = input.numel() // input.shape[1]
        count = _sum_over_ranks(torch.tensor([float(local)]))
        mean = _sum_over_ranks(input.sum(dims)) / count
        centred = input - mean.view(shape)
        var = _sum_over_ranks(centred.square().sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean, factor)
                self.running_var.lerp_(var * count / (count - 1), factor)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def sync_batch_norm(network: nn.Module) -> nn.Module:
    """``network`` with each plain batch norm (1d/2d/3d) replaced, in place, by one sharing its
    parameters and buffers that normalises over the global batch: torch's SyncBatchNorm on
    CUDA, :class:`CpuSyncBatchNorm` on the CPU (torch's refuses CPU tensors there, and DDP
    refuses it in a CPU module). Any other batch norm subclass
    (graphnet's GhostBatchNorm: its ghost batches are per-rank sub-batches on purpose, and its
    per-split statistics have no synced form) raises DistributedError naming it."""
    synced_kinds = (*PLAIN_NORMS, nn.SyncBatchNorm, CpuSyncBatchNorm)
    for name, module in list(network.named_modules()):
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and type(module) not in synced_kinds:
            raise DistributedError(f"cannot sync batch norm {name or 'network'} ({type(module).__name__}): only "
                                   "plain batch norms sync; drop the ghost_bn pass or the sync option")
    for name, module in list(network.named_modules()):
        if type(module) in PLAIN_NORMS:
            cuda = any(t.is_cuda for t in [*module.parameters(), *module.buffers()])
            kind = nn.SyncBatchNorm if cuda else CpuSyncBatchNorm
            synced = kind(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats)
            for key in ("weight", "bias"):
                setattr(synced, key, getattr(module, key))
            for key in ("running_mean", "running_var", "num_batches_tracked"):
                synced.register_buffer(key, getattr(module, key))
            synced.train(module.training)
            if not name:
                return synced
            parent, _, child = name.rpartition(".")
            network.get_submodule(parent).add_module(child, synced)
    return network
