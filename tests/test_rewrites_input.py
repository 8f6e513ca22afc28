"""Input patch whitening with its data initialiser, and flip test-time augmentation."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphnet
from graphnet import SpecError, build, compile, load_spec
from graphnet.rewrites import NoMatchError, RewriteError, initialise, param_groups
from graphnet.rewrites.ghost_bn import ghost_bn
from graphnet.rewrites.tta import tta_flip
from graphnet.rewrites.whiten import whiten_input, whitening

SPECS = Path(__file__).resolve().parents[1] / "specs"
EPS = 1e-2


def resnet9(width_mult=0.125):
    return build(load_spec(SPECS / "resnet9.py", width_mult=width_mult))


def correlated_images(n=64, size=16):
    """Smooth images whose channels mix: neighbouring pixels and channels are correlated."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(n, 3, size + 2, size + 2, generator=g)
    blurred = F.avg_pool2d(noise, 3, stride=1)
    mix = torch.tensor([[1.0, 0.5, 0.2], [0.5, 1.0, 0.5], [0.2, 0.5, 1.0]])
    return 4 * torch.einsum("dc,nchw->ndhw", mix, blurred) + 0.2 * torch.randn(n, 3, size, size, generator=g)


def patch_moments(images):
    """Second moments of the 3x3 patches (c, kh, kw order), built independently of the initialiser."""
    p = images.double().unfold(2, 3, 1).unfold(3, 3, 1)  # n, c, h', w', 3, 3
    p = p.permute(0, 2, 3, 1, 4, 5).reshape(-1, 27)
    return p.T @ p / p.shape[0]


# -- whitening -----------------------------------------------------------------------------

def test_whitening_filters_whiten_the_valid_patches():
    images = correlated_images()
    conv = nn.Conv2d(3, 27, 3, padding=1, bias=False)
    with torch.no_grad():
        whitening(conv, images, eps=EPS, chunk=10)
    lam = torch.linalg.eigvalsh(patch_moments(images)).flip(0)
    assert lam[0] / lam[-1] > 100  # correlated: far from white
    y = conv(images)[:, :, 1:-1, 1:-1].double()  # the positions whose patch lies inside the image
    y = y.permute(0, 2, 3, 1).reshape(-1, 27)
    torch.testing.assert_close(y.T @ y / y.shape[0], torch.diag(lam / (lam + EPS)), atol=2e-5, rtol=1e-4)
    big = lam > 100 * EPS
    assert big.sum() >= 3 and torch.all((lam / (lam + EPS))[big] > 0.99)


def test_whitening_needs_one_filter_per_patch_dimension():
    with pytest.raises(ValueError, match="needs c_in·kh·kw = 27 filters, not 16"):
        whitening(nn.Conv2d(3, 16, 3, bias=False), correlated_images(4))


def test_whiten_input_puts_a_frozen_whitening_conv_before_a_1x1_conv():
    g = resnet9()
    out = whiten_input(g)
    assert out.order[:2] == ("prep/whiten", "prep/conv")
    w = out["prep/whiten"]
    assert (w.op, dict(w.params), w.inputs) == ("conv", {"c_in": 3, "c_out": 27, "kernel_size": 3}, ("input",))
    assert dict(w.attrs) == {"frozen": ["weight"], "init": {"name": "whitening", "params": {"eps": EPS}}}
    c = out["prep/conv"]
    assert (dict(c.params), c.inputs) == ({"c_in": 27, "c_out": 8, "kernel_size": 1}, ("prep/whiten",))
    assert all(out[p] == g[p] for p in g if p != "prep/conv")
    assert dict(whiten_input(g, patch=5)["prep/whiten"].params) == {"c_in": 3, "c_out": 75, "kernel_size": 5}
    with pytest.raises(NoMatchError, match="that is not a 'whitening' conv; already applied \\(see 'prep/whiten'\\)"):
        whiten_input(out)
    with pytest.raises(RewriteError, match="param patch=2 wants int >= 1 and odd"):
        whiten_input(g, patch=2)


def test_initialise_fills_the_whitening_weights_from_one_partial_forward():
    images = correlated_images(16, 32)
    net = compile(ghost_bn(whiten_input(resnet9()), num_splits=2))
    stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    ran = []
    net.get_submodule("linear").register_forward_pre_hook(lambda *_: ran.append(1))
    assert graphnet.initialise(net, images) is net
    expected = nn.Conv2d(3, 27, 3, bias=False)
    with torch.no_grad():
        whitening(expected, images, eps=EPS)
    whiten = net.get_submodule("prep.whiten")
    torch.testing.assert_close(whiten.weight, expected.weight)
    assert not whiten.weight.requires_grad and net.training and not ran
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in stats.items())
    assert all(p is not whiten.weight for g in param_groups(net) for p in g["params"])
    assert net(images).shape == (16, 10)  # the checked first forward still runs


def test_initialise_rejects_an_unknown_initialiser():
    g = resnet9()
    net = compile(g.replace("prep/conv", attrs={"init": {"name": "nope"}}))
    with pytest.raises(SpecError, match="prep/conv: unknown initialiser 'nope'"):
        initialise(net, torch.zeros(2, 3, 32, 32))


# -- flip test-time augmentation -------------------------------------------------------------

def test_tta_flip_structure():
    g = resnet9()
    out = tta_flip(g)
    assert out.order[:3] == ("tta_flip", "tta_batch", "prep/conv")
    assert (out["tta_flip"].op, out["tta_flip"].inputs) == ("flip_lr", ("input",))
    assert (out["tta_batch"].op, dict(out["tta_batch"].params), out["tta_batch"].inputs) == (
        "concat", {"dim": 0}, ("input", "tta_flip"))
    assert out["prep/conv"].inputs == ("tta_batch",)
    assert out.output == "tta_mean" and out["tta_mean"].inputs == ("logits",)
    assert all(out[p] == g[p] for p in g if p != "prep/conv")
    with pytest.raises(NoMatchError, match="already applied \\(see 'tta_flip'\\)"):
        tta_flip(out)


def test_tta_flip_averages_the_two_views_and_shares_weights():
    torch.manual_seed(0)
    g = ghost_bn(resnet9(), num_splits=2)
    train_net = compile(g)
    train_net(torch.randn(8, 3, 32, 32) + 0.5)  # running stats move away from their init
    eval_net = compile(tta_flip(g), modules=train_net).eval()
    assert eval_net.get_parameter("layer1.conv.weight") is train_net.get_parameter("layer1.conv.weight")
    assert eval_net.get_buffer("layer1.bn.running_mean") is train_net.get_buffer("layer1.bn.running_mean")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = eval_net(x)
        torch.testing.assert_close(out, eval_net(x.flip(-1)), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out, (train_net(x) + train_net(x.flip(-1))) / 2, atol=1e-5, rtol=1e-5)
    assert [len(g["params"]) for g in param_groups(eval_net)] == [len(list(train_net.parameters()))]
