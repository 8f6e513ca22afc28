"""Training FLOPs of the recipes' networks: Page's final, airbench94 and airbench94_muon."""

import graphnet
from graphnet.train.flops import forward_flops, images_seen, training_flops
from graphnet.zoo import airbench94


def test_airbench94_forward_flops_worked_out_by_hand():
    macs = {  # output positions × output channels × (input channels × kernel area)
        "whiten": 31 * 31 * 24 * (3 * 4),
        "block1/conv1": 31 * 31 * 64 * (24 * 9),
        "block1/conv2": 15 * 15 * 64 * (64 * 9),
        "block2/conv1": 15 * 15 * 256 * (64 * 9),
        "block2/conv2": 7 * 7 * 256 * (256 * 9),
        "block3/conv1": 7 * 7 * 256 * (256 * 9),
        "block3/conv2": 3 * 3 * 256 * (256 * 9),
        "linear": 256 * 10,
    }
    assert sum(macs.values()) == 118_147_360
    assert forward_flops(graphnet.build(airbench94.net)) == 2 * 118_147_360  # a multiply-add is 2 FLOPs


def test_images_seen_counts_whole_batches_when_given_a_batch_size():
    assert images_seen(10) == 500_000
    assert images_seen(9.9, batch_size=1024) == 476 * 1024  # airbench94: ceil(48 · 9.9) steps
    assert images_seen(8, batch_size=2000) == 400_000  # airbench94_muon: 200 steps


def test_recipe_flops_meet_the_targets():
    import bag_of_tricks
    page = training_flops(graphnet.build(bag_of_tricks.net), epochs=10).total
    assert abs(page / 1e15 - 1.14) < 0.005
    net = graphnet.build(airbench94.net)
    assert training_flops(net, 9.9).total <= 0.37e15
    assert training_flops(net, 9.9, batch_size=1024).total <= 0.37e15
    assert training_flops(net, 8, batch_size=2000).total <= 0.30e15  # airbench94_muon: the same network, 8 epochs
