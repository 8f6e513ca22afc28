"""Data-parallel building blocks: shards, seeds, SyncBatchNorm, and a 2-rank gloo run that
takes the one-process steps and writes a checkpoint that loads without DDP's prefix."""

import dataclasses
import socket
from datetime import timedelta

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from graphnet import build
from graphnet.compile import compile
from graphnet.rewrites import GhostBatchNorm
from graphnet.train import get_recipe, make_optimizer, set_lr
from graphnet.train.distributed import (CpuSyncBatchNorm, Dist, DistributedError, from_env, process_group,
                                        shard_indices, sync_batch_norm, unwrap)

GLOBAL_BATCH, STEPS, LR = 8, 3, 0.4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_graph():
    import resnet9
    return build(resnet9.build(width_mult=0.125))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=generator), torch.arange(GLOBAL_BATCH) % 4


def train_steps(dist: Dist, graph, sync_bn: bool) -> nn.Module:
    """STEPS steps of Page's SGD on this rank's shard of one global batch (the whole data),
    with the optimiser built for the global batch (gradients sum over ranks: the module doc)."""
    torch.manual_seed(0)
    net = dist.broadcast_(compile(graph))
    model = dist.wrap(net, sync_bn=sync_bn)
    images, labels = data()
    index = dist.shard(labels, seed=0)
    images, labels = images[index], labels[index]
    recipe = dataclasses.replace(get_recipe("baseline"), batch_size=GLOBAL_BATCH)
    optimizer = make_optimizer(unwrap(model), recipe)
    for _ in range(STEPS):
        loss = F.cross_entropy(model(images), labels, reduction="sum")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        set_lr(optimizer, LR, GLOBAL_BATCH)
        optimizer.step()
    return unwrap(model)


def _worker(rank: int, world: int, port: int, folder: str, graph) -> None:
    import os

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    with process_group(from_env("cpu"), timeout=timedelta(seconds=60)) as dist:
        net = train_steps(dist, graph, sync_bn=True)
        total, = dist.sum_(torch.tensor([float(rank + 1)]))
        if dist.is_main:
            torch.save(net.state_dict(), f"{folder}/checkpoint.pt")
        dist.barrier()
        torch.save({"state": net.state_dict(), "sum": total, "seed": dist.augment_seed(5),
                    "wrapped": list(dist.wrap(compile(graph)).state_dict())
                    }, f"{folder}/rank{rank}.pt")


def test_two_gloo_ranks_take_the_one_process_steps_and_save_loadable_weights(tmp_path):
    graph = tiny_graph()
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path), graph), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    reference = train_steps(Dist(), graph, sync_bn=True).state_dict()
    initial = compile(graph).state_dict()
    for name, value in reference.items():  # parameters and synced BN statistics alike
        for rank in ranks:
            torch.testing.assert_close(rank["state"][name], value, atol=1e-4, rtol=1e-4, msg=name)
    assert any(not torch.equal(initial[k], reference[k]) for k in reference if k.endswith("weight"))
    assert [r["sum"].item() for r in ranks] == [3.0, 3.0]
    assert ranks[0]["seed"] == 5 and ranks[1]["seed"] == 5 + 2**32
    assert all(k.startswith("module.") for k in ranks[0]["wrapped"])  # what unwrap keeps out
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    fresh = compile(graph)
    fresh.load_state_dict(saved)  # strict: no DDP prefix, BN keys as a plain network's
    assert sorted(saved) == sorted(initial)


def test_shards_are_disjoint_equal_class_balanced_and_seeded():
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([30, 25, 20, 18, 10])])
    shards = [shard_indices(labels, r, 3, seed=0) for r in range(3)]
    assert [len(s) for s in shards] == [len(labels) // 3] * 3
    assert len(torch.cat(shards).unique()) == 3 * (len(labels) // 3)
    counts = torch.stack([torch.bincount(labels[s], minlength=5) for s in shards])
    assert (counts.max(0).values - counts.min(0).values).max() <= 1
    assert torch.equal(shards[1], shard_indices(labels, 1, 3, seed=0))
    assert not torch.equal(shards[1], shard_indices(labels, 1, 3, seed=1))


def test_one_process_is_a_no_op(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with process_group(from_env("cpu")) as dist:
        assert dist == Dist() and dist.is_main and not torch.distributed.is_initialized()
        net = nn.Linear(2, 2)
        assert dist.wrap(net) is net and dist.broadcast_(net) is net
        t = torch.ones(2)
        dist.sum_(t)
        assert t.tolist() == [1.0, 1.0]
        assert dist.local_batch(512) == 512 and dist.augment_seed(7) == 7
        assert torch.equal(dist.shard(torch.arange(10) % 2, seed=0), torch.arange(10))


def test_environment_errors_are_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(DistributedError, match="WORLD_SIZE='two' is not an integer"):
        from_env("cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert from_env("cpu") == Dist(1, 2, 0, torch.device("cpu"))
    with pytest.raises(DistributedError, match="does not split evenly over 2 processes"):
        Dist(0, 2).local_batch(7)


def test_sync_batch_norm_keeps_keys_and_one_process_output():
    torch.manual_seed(0)
    net = compile(tiny_graph())
    keys, x = list(net.state_dict()), torch.randn(4, 3, 32, 32)
    expected = net(x)
    synced = sync_batch_norm(net)
    norms = [m for m in synced.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(type(m) is CpuSyncBatchNorm for m in norms)
    assert list(synced.state_dict()) == keys
    torch.testing.assert_close(synced(x), expected)


def test_sync_batch_norm_refuses_ghost_batch_norm():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), GhostBatchNorm(4, num_splits=2))
    with pytest.raises(DistributedError, match=r"cannot sync batch norm 1 \(GhostBatchNorm\)"):
        Dist().wrap(net, sync_bn=True)

