"""Airbench's lookahead and the frozen_after hint, against direct implementations."""

import copy

import pytest
import torch
from torch import nn

import graphnet
from graphnet.train.frozen_after import drop_grads, frozen_at, timed_params
from graphnet.train.lookahead import Lookahead
from graphnet.zoo.airbench94 import build


def tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))


def airbench_run(net, steps_per_epoch, epochs, total, start_epochs, perturb):
    """airbench94.py's training-loop lookahead logic, written out directly; ``perturb`` stands in for a step."""
    ema, current = None, 0
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            perturb(net, current)
            current += 1
            if epoch >= start_epochs and current % 5 == 0:
                if ema is None:
                    ema = {k: v.clone() for k, v in net.state_dict().items()}
                else:
                    rho = 0.95 ** 5 * (current / total) ** 3
                    for e, p in zip(ema.values(), net.state_dict().values()):
                        if p.dtype in (torch.half, torch.float):
                            e.lerp_(p, 1 - rho)
                            p.copy_(e)
            if current >= total:
                break
        if ema is not None:
            for e, p in zip(ema.values(), net.state_dict().values()):
                if p.dtype in (torch.half, torch.float):
                    p.copy_(e)
    return net


def perturb(net, step):
    g = torch.Generator().manual_seed(step)
    with torch.no_grad():
        for v in net.state_dict().values():
            if v.is_floating_point():
                v.add_(torch.randn(v.shape, generator=g))
            else:
                v.add_(1)


def test_lookahead_matches_airbench_step_for_step():
    steps_per_epoch, epochs, total = 7, 4, 26  # the last epoch stops early, as with 9.9 epochs
    expected = airbench_run(tiny_net(), steps_per_epoch, epochs, total, 1, perturb)
    net, current = tiny_net(), 0
    look = Lookahead(net, total, start_epoch=1)
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            perturb(net, current)
            current += 1
            look.after_step(current, epoch)
            if current >= total:
                break
        look.end_epoch()
    for (k, v), w in zip(net.state_dict().items(), expected.state_dict().values()):
        torch.testing.assert_close(v, w, msg=k)
    plain = tiny_net()
    for step in range(total):
        perturb(plain, step)
    assert not torch.allclose(net[0].weight, plain[0].weight)  # the lookahead did change the run
    assert look.decay(total) == 0.95 ** 5 and look.decay(total // 2) == 0.95 ** 5 / 8


def test_lookahead_does_nothing_before_its_first_snapshot():
    net = tiny_net()
    before = copy.deepcopy(net.state_dict())
    look = Lookahead(net, 100, start_epoch=3)
    for step in range(1, 11):
        look.after_step(step, epoch=2)
    look.end_epoch()
    assert look.ema is None and all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_frozen_after_freezes_the_whitening_bias_from_its_epoch_on():
    net = graphnet.compile(graphnet.build(build(width_mult=0.125)))
    timed = timed_params(net)
    assert list(timed) == ["whiten.bias"] and timed["whiten.bias"] == (net.get_parameter("whiten.bias"), 3)
    bias = net.get_parameter("whiten.bias")
    assert frozen_at(net, 2.99) == {} and frozen_at(net, 3) == {"whiten.bias": bias}
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    drop_grads(frozen_at(net, 3).values())
    assert bias.grad is None and bias.requires_grad  # the graph is unchanged: only the gradient goes
    assert net.get_parameter("block1.conv1.weight").grad is not None
    assert not net.get_parameter("whiten.weight").requires_grad  # frozen from the start, untouched


def test_lookahead_binds_the_networks_tensors_once(monkeypatch):
    net = tiny_net()
    look = Lookahead(net, 10, every=1, start_epoch=0)
    monkeypatch.setattr(net, "state_dict", lambda *a, **k: pytest.fail("state_dict read after construction"))
    weight = net[0].weight
    start = weight.detach().clone()
    look.after_step(1, 0)  # the snapshot
    with torch.no_grad():
        weight.add_(1.0)
    look.after_step(10, 0)  # decay 0.95: the average takes 5% of the step
    torch.testing.assert_close(weight.detach(), start + 0.05)
    with torch.no_grad():
        weight.add_(1.0)
    look.end_epoch()
    torch.testing.assert_close(weight.detach(), start + 0.05)
