"""specs/bag_of_tricks.py: the final network as the ResNet-9 baseline rewritten by the recipe."""

import importlib.util
from pathlib import Path

import torch

from graphnet import build, compile, from_json, initialise, load_spec, rewrite, to_json
from graphnet.losses import LOSS_INPUTS, cross_entropy
from graphnet.rewrites import param_groups, split_passes

SPECS = Path(__file__).resolve().parents[1] / "specs"


def bag_of_tricks():
    spec = importlib.util.spec_from_file_location("bag_of_tricks", SPECS / "bag_of_tricks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parameter_count_by_hand():
    convs = {"layer1": (64, 128), "res1": (128, 128), "res2": (128, 128), "layer2": (128, 256),
             "layer3": (256, 512), "res3": (512, 512), "res4": (512, 512)}
    conv_params = sum(9 * c_in * c_out for c_in, c_out in convs.values())  # every 3x3 conv but prep's
    bn_channels = 64 + 3 * 128 + 256 + 3 * 512  # the 8 norms: a weight (frozen, still a param) and a bias each
    whitening = 27 * 3 * 9  # frozen
    prep_1x1 = 27 * 64
    linear = 512 * 10
    trainable = conv_params + prep_1x1 + bn_channels + linear  # the BN biases train, their weights do not
    total = trainable + whitening + bn_channels
    assert (total, trainable) == (6_573_849, 6_570_880)
    assert total == 6_573_120 - 3 * 64 * 9 + whitening + prep_1x1  # the baseline's count, prep conv swapped
    net = compile(build(bag_of_tricks().build()))
    assert sum(p.numel() for p in net.parameters()) == total
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == trainable
    assert sum(p.numel() for g in param_groups(net) for p in g["params"]) == trainable


def test_spec_is_the_baseline_rewritten_by_the_net_passes():
    module = bag_of_tricks()
    assert [name for name, _ in module.PASSES] == [
        "pool_before_norm", "label_smoothing", "celu", "ghost_bn", "freeze_bn_scale", "whiten_input", "tta_flip"]
    split = split_passes(module.PASSES)
    assert [n for n, _ in split["loss"]] == ["label_smoothing"] and [n for n, _ in split["eval"]] == ["tta_flip"]
    spec = module.build(width_mult=0.25)
    baseline = load_spec(SPECS / "resnet9.py", width_mult=0.25)
    assert build(spec) == rewrite(baseline, split["net"])
    assert module.net == module.build()
    assert from_json(to_json(spec)) == spec
    g = build(spec)
    assert g.order[:4] == ("prep/whiten", "prep/conv", "prep/bn", "prep/relu")
    assert len(g.find(op="ghost_batch_norm")) == 8 and not g.find(op=("batch_norm", "relu"))
    assert {g[p].params["alpha"] for p in g.find(op="celu")} == {0.075 * 4}
    assert all(g[f"{layer}/pool"].inputs == (f"{layer}/conv",) for layer in ("layer1", "layer2", "layer3"))


def test_recipe_trains_and_evaluates_end_to_end():
    module = bag_of_tricks()
    split = split_passes(module.PASSES)
    torch.manual_seed(0)
    net = compile(build(module.build(width_mult=0.125)))
    loss = compile(rewrite(build(cross_entropy(), inputs=LOSS_INPUTS), split["loss"]))
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    initialise(net, x)
    loss(net(x), y).sum().backward()
    assert all(p.grad is not None for g in param_groups(net) for p in g["params"])
    eval_net = compile(rewrite(net.spec_graph, split["eval"]), modules=net).eval()
    with torch.no_grad():
        assert eval_net(x[:5]).shape == (5, 10)
