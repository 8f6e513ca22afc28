"""Ghost batch norm, frozen BN scales and the parameter groups read from node attrs."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphnet import build, compile, load_spec
from graphnet.rewrites import GhostBatchNorm, NoMatchError, param_groups
from graphnet.rewrites.activations import celu
from graphnet.rewrites.freeze_bn import freeze_bn_scale
from graphnet.rewrites.ghost_bn import ghost_bn

SPECS = Path(__file__).resolve().parents[1] / "specs"


def resnet9(width_mult=0.125):
    return build(load_spec(SPECS / "resnet9.py", width_mult=width_mult))


# -- ghost batch norm ----------------------------------------------------------------------

@pytest.mark.parametrize("channels_last", [False, True])  # the default method: reshape, chunks
@pytest.mark.parametrize("k", [1, 4])
def test_ghost_batch_norm_equals_plain_batch_norm_on_each_split(k, channels_last):
    torch.manual_seed(0)
    ghost = GhostBatchNorm(3, num_splits=k, momentum=0.3)
    nn.init.normal_(ghost.weight), nn.init.normal_(ghost.bias)
    plain = nn.BatchNorm2d(3, momentum=0.3)
    plain.load_state_dict({n: t for n, t in ghost.state_dict().items() if n in ("weight", "bias")}, strict=False)
    splits = [copy.deepcopy(plain) for _ in range(k)]
    for _ in range(2):  # two steps, so the running stats accumulate
        x = torch.randn(4 * k, 3, 5, 5) * 2 + 1
        out = ghost(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
        for j, bn in enumerate(splits):  # split j: samples j, j + k, ... (reshape) or block j of 4 (chunks)
            split = slice(4 * j, 4 * j + 4) if channels_last else slice(j, None, k)
            torch.testing.assert_close(out[split], bn(x[split]))
    for j, bn in enumerate(splits):
        torch.testing.assert_close(ghost.running_mean.view(k, 3)[j], bn.running_mean)
        torch.testing.assert_close(ghost.running_var.view(k, 3)[j], bn.running_var)
    ghost.eval()
    x = torch.randn(5, 3, 5, 5)  # any batch size in eval
    mean = torch.stack([bn.running_mean for bn in splits]).mean(0)
    var = torch.stack([bn.running_var for bn in splits]).mean(0)
    torch.testing.assert_close(ghost(x), F.batch_norm(x, mean, var, ghost.weight, ghost.bias, False, 0.0, ghost.eps))


def test_ghost_batch_norm_needs_a_batch_that_splits_evenly():
    with pytest.raises(ValueError, match="a batch of 10 does not split into 4 equal ghost batches"):
        GhostBatchNorm(3, num_splits=4)(torch.randn(10, 3, 2, 2))


@pytest.mark.parametrize("method", GhostBatchNorm.METHODS[1:])
def test_ghost_batch_norm_takes_channels_last_input(method):
    ghost = GhostBatchNorm(3, num_splits=2, method=method)
    x = torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(copy.deepcopy(ghost)(x.to(memory_format=torch.channels_last)), ghost(x))


def test_ghost_bn_pass_replaces_every_batch_norm():
    g = resnet9()
    norms = g.find(op="batch_norm")
    out = ghost_bn(g, num_splits=4)
    assert out.find(op="ghost_batch_norm") == norms and not out.find(op="batch_norm")
    assert all(dict(out[p].params) == {**g[p].params, "num_splits": 4} for p in norms)
    assert all(out[p] == g[p] for p in g if p not in norms)
    net = compile(out)
    assert isinstance(net.get_submodule("layer1.bn"), GhostBatchNorm)
    assert net(torch.randn(8, 3, 32, 32)).shape == (8, 10)
    with pytest.raises(NoMatchError, match="found no 'batch_norm' node; already applied \\(see 'prep/bn'"):
        ghost_bn(out)


# -- frozen BN scales and parameter groups ---------------------------------------------------

def test_freeze_bn_scale_fixes_scales_and_sets_hints():
    g = ghost_bn(celu(resnet9()))
    out = freeze_bn_scale(g)
    norms = g.find(op="ghost_batch_norm")
    for p in norms:
        assert dict(out[p].params) == {**g[p].params, "weight_init": 1.0}
        assert dict(out[p].attrs) == {"frozen": ["weight"], "lr_mult": {"bias": 64.0}, "wd_mult": {"bias": 1 / 64}}
    assert all(out[p].params["alpha"] == pytest.approx(0.3) for p in out.find(op="celu"))
    assert out["logits"].params["weight"] == 1 / 16
    changed = {*norms, *out.find(op="celu"), "logits"}
    assert all(out[p] == g[p] for p in g if p not in changed)
    with pytest.raises(NoMatchError, match="with a trainable scale; already applied"):
        freeze_bn_scale(out)


def test_freeze_bn_scale_keeps_other_attrs_and_takes_plain_batch_norm():
    g = resnet9()
    g = g.replace("prep/bn", attrs={"frozen": ["bias"], "lr_mult": {"weight": 2.0}})
    out = freeze_bn_scale(g, weight=0.5, final_scale=None)
    assert dict(out["prep/bn"].attrs) == {"frozen": ["bias", "weight"], "lr_mult": {"weight": 2.0, "bias": 64.0},
                                          "wd_mult": {"bias": 1 / 64}}
    assert out["logits"] == g["logits"]
    bn = compile(out).get_submodule("layer1.bn")
    assert not bn.weight.requires_grad and torch.all(bn.weight == 0.5) and bn.bias.requires_grad


def test_param_groups_follow_the_hints_and_leave_out_frozen_params():
    net = compile(freeze_bn_scale(ghost_bn(celu(resnet9()))))
    groups = param_groups(net)
    assert [(g["lr_mult"], g["wd_mult"]) for g in groups] == [(1.0, 1.0), (64.0, 1 / 64)]
    names = {id(p): n for n, p in net.named_parameters()}
    default, biases = ([names[id(p)] for p in g["params"]] for g in groups)
    assert default == [n for n in names.values() if n.endswith("conv.weight")] + ["linear.weight"]
    assert biases == [n for n in names.values() if n.endswith("bn.bias")]
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in net.parameters())
    plain = compile(resnet9())
    assert [(g["lr_mult"], g["wd_mult"], len(g["params"])) for g in param_groups(plain)] == [
        (1.0, 1.0, len(list(plain.parameters())))]
