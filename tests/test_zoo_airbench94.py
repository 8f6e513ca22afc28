"""The airbench94 network from the zoo: structure, layer details and parameter count."""

import torch

import graphnet
from graphnet.zoo import airbench94


def test_airbench94_parameter_count_worked_out_by_hand():
    whiten = 24 * 3 * 2 * 2 + 24  # 2×2 filters on 3 channels, with bias: 312

    def block(c_in, c_out):  # two 3×3 convs without bias, two BNs with weight and bias
        return c_out * c_in * 9 + 2 * c_out + c_out * c_out * 9 + 2 * c_out

    assert block(24, 64) == 13_824 + 128 + 36_864 + 128 == 50_944
    assert block(64, 256) == 147_456 + 512 + 589_824 + 512 == 738_304
    assert block(256, 256) == 589_824 + 512 + 589_824 + 512 == 1_180_672
    linear = 256 * 10  # no bias
    total = whiten + block(24, 64) + block(64, 256) + block(256, 256) + linear
    assert total == 1_972_792  # the paper's "1.97 million parameters"
    s = graphnet.summary(graphnet.build(airbench94.net), (1, 3, 32, 32))
    assert s.total_params == total
    net = graphnet.compile(graphnet.build(airbench94.net))
    frozen = 24 * 12 + 2 * (64 + 256 + 256)  # the whitening weights and the BN scales
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == total - frozen


def test_airbench94_structure_and_shapes():
    g = graphnet.build(airbench94.net)
    assert [g[p].op for p in g.order[:2]] == ["conv", "gelu"]
    assert [g[p].op for p in g.find(pattern="block2/*")] == [
        "conv", "max_pool", "batch_norm", "gelu", "conv", "batch_norm", "gelu"]
    assert [g[p].op for p in g.order[-4:]] == ["adaptive_max_pool", "flatten", "linear", "mul"]
    assert dict(g["pool"].params) == {"output_size": 1}  # airbench's max_pool(3) on 32x32 (test_data_any)
    assert dict(g["linear"].params) == {"c_in": 256, "c_out": 10, "bias": False}
    assert abs(g["logits"].params["weight"] - 1 / 9) < 1e-15
    shapes = graphnet.summary(g, (2, 3, 32, 32)).shapes
    assert [shapes[p] for p in ("whiten", "block1/pool", "block2/pool", "block3/pool", "pool", "logits")] == [
        (2, 24, 31, 31), (2, 64, 15, 15), (2, 256, 7, 7), (2, 256, 3, 3), (2, 256, 1, 1), (2, 10)]


def test_airbench94_layer_details_follow_airbench():
    net = graphnet.compile(graphnet.build(airbench94.net))
    whiten = net.get_submodule("whiten")
    assert (whiten.kernel_size, whiten.padding, whiten.bias is not None) == ((2, 2), (0, 0), True)
    conv = net.get_submodule("block2.conv2")
    assert (conv.kernel_size, conv.padding, conv.bias) == ((3, 3), (1, 1), None)
    bn = net.get_submodule("block3.norm2")  # airbench: BatchNorm(eps=1e-12, momentum=1 - 0.6), weight frozen
    assert (bn.eps, bn.momentum, bn.weight.requires_grad) == (1e-12, 0.4, False)
    assert torch.equal(bn.weight, torch.ones(256))


def test_airbench94_width_mult_scales_the_blocks_only():
    g = graphnet.build(airbench94.build(width_mult=0.5, num_classes=100))
    assert g["whiten"].params["c_out"] == 24
    assert [g[f"block{i}/conv2"].params["c_out"] for i in (1, 2, 3)] == [32, 128, 128]
    assert dict(g["linear"].params) == {"c_in": 128, "c_out": 100, "bias": False}


def test_airbench94_muon_divides_by_the_width_and_starts_the_head_at_unit_std():
    g = graphnet.build(airbench94.build_muon())
    assert g["logits"].params["weight"] == 1 / 256
    assert dict(g["linear"].attrs) == {"init": {"name": "unit_std", "params": {}}}
    assert g["block1/norm1"].attrs["lr_mult"] == {"bias": 1.0}
    net = graphnet.compile(g)
    graphnet.initialise(net, torch.randn(4, 3, 32, 32))
    assert abs(net.get_parameter("linear.weight").std().item() - 1) < 1e-5
    assert [n.path for n in g.nodes] == [n.path for n in graphnet.build(airbench94.net).nodes]
