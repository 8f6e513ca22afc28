"""The trainer's parts: the lr schedule, Page's SGD, parameter groups and weight decay, EMA."""

import copy

import pytest
import torch
from torch import nn

from graphnet import build, compile
from graphnet.train import EMA, NesterovSGD, PiecewiseLinear, get_recipe, make_graphs, make_optimizer, set_lr


def test_piecewise_linear_knots():
    f = PiecewiseLinear([0, 2, 8], [0, 1.0, 0.1])
    assert [f(t) for t in (-1, 0, 1, 2, 5, 8, 9)] == pytest.approx([0, 0, 0.5, 1.0, 0.55, 0.1, 0.1])
    with pytest.raises(ValueError):
        PiecewiseLinear([0, 2, 1], [0, 1, 0])


def page_step(w, g, v, lr, wd, m):
    """cifar10-fast's nesterov_update, written out."""
    dw = -lr * (g + wd * w)
    v = m * v + dw
    return w + dw + m * v, v


def test_nesterov_sgd_is_pages_update():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5))
    opt = NesterovSGD([w], momentum=0.9, weight_decay=0.25)
    ref_w, ref_v = w.detach().clone(), torch.zeros(5)
    for lr in (0.1, 0.3, 0.05):  # a changing lr: Page's velocity keeps each step's lr
        g = torch.randn(5)
        w.grad = g.clone()
        opt.param_groups[0]["lr"] = lr
        opt.step()
        ref_w, ref_v = page_step(ref_w, g, ref_v, lr, 0.25, 0.9)
        torch.testing.assert_close(w.detach(), ref_w)


def test_equals_torch_sgd_at_constant_lr_only():
    def run(lrs, make):
        torch.manual_seed(0)
        w = nn.Parameter(torch.randn(4))
        opt = make([w])
        for lr in lrs:
            w.grad = torch.sin(w.detach() * 3)  # a gradient that depends on w
            opt.param_groups[0]["lr"] = lr
            opt.step()
        return w.detach()

    def torch_sgd(params):
        return torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)

    def page(params):
        return NesterovSGD(params, momentum=0.9, weight_decay=0.01)

    constant, changing = [0.1] * 6, [0.1, 0.2, 0.3, 0.2, 0.1, 0.05]
    torch.testing.assert_close(run(constant, page), run(constant, torch_sgd))
    assert not torch.allclose(run(changing, page), run(changing, torch_sgd))


def test_param_groups_and_weight_decay_scaling(resnet9_spec):
    recipe = get_recipe("frozen_bn_scale")
    net = compile(make_graphs(build(resnet9_spec), recipe.passes).net)
    opt = make_optimizer(net, recipe)
    by_mult = {g["lr_mult"]: g for g in opt.param_groups}
    assert set(by_mult) == {1.0, 64.0}
    assert by_mult[1.0]["weight_decay"] == pytest.approx(5e-4 * 512)
    assert by_mult[64.0]["weight_decay"] == pytest.approx(5e-4 * 512 / 64)
    bn = net.get_submodule("layer1.bn")
    assert any(p is bn.bias for p in by_mult[64.0]["params"])
    grouped = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(bn.weight) not in grouped and not bn.weight.requires_grad  # frozen: not trained
    assert id(net.get_submodule("layer1.conv").weight) in {id(p) for p in by_mult[1.0]["params"]}
    set_lr(opt, 0.4, 512)
    assert by_mult[1.0]["lr"] == pytest.approx(0.4 / 512) and by_mult[64.0]["lr"] == pytest.approx(0.4 * 64 / 512)


def test_summed_loss_with_scaled_rates_is_a_per_sample_step():
    """lr = value/B and wd = 5e-4*B on the summed loss take the mean-loss step of rate value."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.randn(8)
    w = nn.Parameter(torch.randn(3))
    opt = NesterovSGD([w], momentum=0.0, weight_decay=5e-4 * 8)
    set_lr(opt, 0.4, 8)
    start = w.detach().clone()
    mean_grad = torch.autograd.grad(((x @ w - y) ** 2).mean(), w)[0]
    ((x @ w - y) ** 2).sum().backward()
    opt.step()
    torch.testing.assert_close(w.detach(), start - 0.4 * (mean_grad + 5e-4 * start))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.bn = nn.BatchNorm1d(2)


def test_ema_updates_every_k_steps_with_warm_up():
    net = Tiny()
    with torch.no_grad():
        net.lin.weight.fill_(0.0)
    ema = EMA(net, momentum=0.9, every=2)
    for step in range(5):
        with torch.no_grad():
            net.lin.weight.fill_(float(step + 1))
            net.bn.running_mean.fill_(float(10 * (step + 1)))
            net.bn.num_batches_tracked.fill_(step + 1)
        ema.update()
    # updates at calls 0, 2, 4 on values 1, 3, 5 with decays 1/10, 2/11, 3/12 (all below 0.9**2)
    expect = 0.0
    for value, decay in ((1.0, 1 / 10), (3.0, 2 / 11), (5.0, 3 / 12)):
        expect = decay * expect + (1 - decay) * value
    torch.testing.assert_close(ema.network.lin.weight, torch.full((2, 2), expect))
    torch.testing.assert_close(ema.network.bn.running_mean, torch.full((2,), 10 * expect))
    assert ema.network.bn.num_batches_tracked.item() == 5  # not averaged: copied
    assert not any(p.requires_grad for p in ema.network.parameters())


def test_ema_decay_warms_up_to_pages_rho():
    ema = EMA(Tiny(), momentum=0.99, every=5)
    decays = []
    for _ in range(1000):
        decays.append(ema.decay())
        ema.updates += 1
    assert decays[0] == pytest.approx(0.1)
    assert all(a <= b for a, b in zip(decays, decays[1:]))
    assert decays[-1] == pytest.approx(0.99 ** 5)
    assert decays.index(ema.rho) < 180  # Page's rho well before the final recipe's ~195 updates


def test_running_stats_warm_up_averages_the_first_batches_then_is_pages():
    from graphnet.train.bn_warmup import RunningStatsWarmup

    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3, momentum=0.1)
    warmup = RunningStatsWarmup(bn)
    assert warmup.steps == 10
    batch_means = []
    for step in range(1, 13):
        x = torch.randn(8, 3, 4, 4) + step  # a different mean each step
        batch_means.append(x.mean(dim=(0, 2, 3)))
        before = bn.running_mean.clone()
        warmup.before(step)
        bn(x)
        warmup.after(step)
        if step <= 10:  # the plain mean of the batch statistics so far
            torch.testing.assert_close(bn.running_mean, torch.stack(batch_means).mean(0))
        else:  # Page's update, untouched
            torch.testing.assert_close(bn.running_mean, 0.9 * before + 0.1 * batch_means[-1])
