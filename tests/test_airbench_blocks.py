"""Airbench's building blocks in one short training run, wired by hand as the trainer will wire them."""

import math

import torch
import torch.nn.functional as F

import graphnet
from graphnet.data.alternating_flip import AlternatingFlip
from graphnet.data.augment import random_crop
from graphnet.rewrites import param_groups
from graphnet.rewrites.airbench import tta_translate
from graphnet.train.decoupled import Decoupled, set_schedule
from graphnet.train.frozen_after import drop_grads, frozen_at
from graphnet.train.lookahead import Lookahead
from graphnet.train.muon import Muon, split_filters
from graphnet.train.schedule import PiecewiseLinear
from graphnet.zoo import airbench94


def data(n=64):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_airbench_blocks_train_and_evaluate_together():
    torch.manual_seed(0)
    images, labels = data()
    graph = graphnet.build(airbench94.build(width_mult=0.125))
    net = graphnet.compile(graph)
    graphnet.initialise(net, images)
    hyp = Decoupled(batch_size=16)
    opt = hyp.sgd(param_groups(net))
    epochs, per_epoch = 4, len(images) // hyp.batch_size
    total = math.ceil(epochs * per_epoch)
    # airbench94's lr: 0.2, 1 at 23% of the steps, 0.07 at the end
    schedule = PiecewiseLinear((0, int(0.23 * total), total), (0.2, 1.0, 0.07))
    look = Lookahead(net, total, start_epoch=1)
    flips, gen = AlternatingFlip(len(images), torch.Generator().manual_seed(1)), torch.Generator().manual_seed(2)
    padded = F.pad(images, (2,) * 4, mode="reflect")
    step, whiten_bias = 0, net.get_parameter("whiten.bias")
    for epoch in range(epochs):
        frozen = frozen_at(net, epoch).values()
        bias_before = whiten_bias.detach().clone()
        order = torch.randperm(len(images), generator=gen)
        for b in range(per_epoch):
            index = order[b * hyp.batch_size:(b + 1) * hyp.batch_size]
            x = flips(random_crop(padded[index], 32, gen), index, epoch)
            loss = F.cross_entropy(net(x), labels[index], label_smoothing=0.2, reduction="sum")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            drop_grads(frozen)
            set_schedule(opt, schedule(step))
            opt.step()
            step += 1
            look.after_step(step, epoch)
        look.end_epoch()
        assert torch.equal(whiten_bias, bias_before) == (epoch >= 3)  # frozen_after: 3 epochs
    assert not net.get_parameter("whiten.weight").requires_grad
    net.eval()
    tta = graphnet.compile(tta_translate(graph), modules=net).eval()
    with torch.no_grad():
        out = tta(images[:8])
    assert out.shape == (8, 10) and torch.isfinite(out).all()


def test_muon_and_sgd_split_the_network():
    images, labels = data(16)
    net = graphnet.compile(graphnet.build(airbench94.build_muon(width_mult=0.125)))
    graphnet.initialise(net, images)
    filters, rest = split_filters(param_groups(net))
    assert len(filters) == 6  # the 3×3 convs; the whitening filters are frozen
    opts = [Muon(filters), Decoupled().sgd(rest)]
    before = [p.detach().clone() for p in filters]
    F.cross_entropy(net(images), labels, reduction="sum").backward()
    for opt in opts:
        opt.step()
    assert all(not torch.equal(p, q) for p, q in zip(filters, before))
