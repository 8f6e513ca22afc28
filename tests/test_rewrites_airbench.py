"""Airbench's passes: ± whitening, Dirac init, BN settings, 6-view TTA; checked against direct code."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphnet
from graphnet import build, compile, load_spec
from graphnet.rewrites import NoMatchError, RewriteError, param_groups
from graphnet.rewrites.airbench import (bn_settings, dirac, dirac_init, translate_views_fn, tta_translate,
                                        weighted_views_fn, whiten_input_pm, whitening_pm)
from graphnet.rewrites.ghost_bn import ghost_bn
from graphnet.rewrites.tta import tta_flip
from graphnet.zoo.airbench94 import architecture

SPECS = Path(__file__).resolve().parents[1] / "specs"


def small_architecture():
    return build(architecture(width_mult=0.125))


def correlated_images(n=32, size=16):
    """Smooth images whose channels mix, so their patches are far from white."""
    g = torch.Generator().manual_seed(0)
    blurred = F.avg_pool2d(torch.randn(n, 3, size + 2, size + 2, generator=g), 3, stride=1)
    mix = torch.tensor([[1.0, 0.5, 0.2], [0.5, 1.0, 0.5], [0.2, 0.5, 1.0]])
    return 4 * torch.einsum("dc,nchw->ndhw", mix, blurred) + 0.2 * torch.randn(n, 3, size, size, generator=g)


def airbench_whitening_filters(images, eps):
    """airbench94.py's init_whitening_conv for 2×2 patches, written out directly."""
    patches = images.double().unfold(2, 2, 1).unfold(3, 2, 1)  # n, c, h', w', 2, 2
    flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)  # one row per patch, (c, kh, kw) order
    lam, vec = torch.linalg.eigh(flat.T @ flat / len(flat))
    scaled = (vec.T / torch.sqrt(lam + eps)[:, None]).flip(0)  # largest eigenvalue first
    return torch.cat([scaled, -scaled]).reshape(24, 3, 2, 2)


# -- ± whitening -----------------------------------------------------------------------------

def test_whitening_pm_gives_airbench_filters_and_a_zero_bias():
    images = correlated_images()
    conv = nn.Conv2d(3, 24, 2, padding=0, bias=True)
    with torch.no_grad():
        whitening_pm(conv, images, eps=5e-4)
    expected = airbench_whitening_filters(images, 5e-4).float()
    ours = conv.weight.reshape(24, 12)
    ref = expected.reshape(24, 12)
    torch.testing.assert_close(ours[12:], -ours[:12])
    signs = torch.sign((ours[:12] * ref[:12]).sum(1))  # an eigenvector's sign is arbitrary
    torch.testing.assert_close(ours[:12] * signs[:, None], ref[:12], rtol=1e-4, atol=1e-4)
    assert torch.equal(conv.bias, torch.zeros(24))
    # sign-free: the filters' Gram matrix is 2·(Σ + eps)^-1 over patch space
    torch.testing.assert_close(ours.T @ ours, ref.T @ ref, rtol=1e-4, atol=1e-3)


def test_whitening_pm_needs_twice_the_patch_dimensions():
    with pytest.raises(ValueError, match="needs 2·c_in·kh·kw = 24 filters, not 12"):
        whitening_pm(nn.Conv2d(3, 12, 2), correlated_images(4))


def test_whiten_input_pm_marks_the_airbench_whitening_conv():
    g = small_architecture()
    out = whiten_input_pm(g, eps=5e-4, bias_epochs=3)
    w = out["whiten"]
    assert dict(w.params) == {"c_in": 3, "c_out": 24, "kernel_size": 2, "padding": 0, "bias": True}
    assert dict(w.attrs) == {"frozen": ["weight"], "init": {"name": "whitening_pm", "params": {"eps": 5e-4}},
                             "frozen_after": {"bias": 3}}
    assert all(out[p] == g[p] for p in g if p != "whiten")
    with pytest.raises(NoMatchError, match="already applied \\(see 'whiten'\\)"):
        whiten_input_pm(out)


def test_whiten_input_pm_replaces_pages_whitening_and_rewidens_its_1x1_conv():
    import bag_of_tricks
    g = build(bag_of_tricks.build(width_mult=0.125))
    out = whiten_input_pm(g)
    assert dict(out["prep/whiten"].params) == {"c_in": 3, "c_out": 24, "kernel_size": 2, "padding": 0,
                                               "bias": True}
    assert out["prep/whiten"].attrs["init"]["name"] == "whitening_pm"
    assert dict(out["prep/conv"].params) == {"c_in": 24, "c_out": 8, "kernel_size": 1}
    assert all(out[p] == g[p] for p in g if p not in ("prep/whiten", "prep/conv"))


def test_whiten_input_pm_refuses_a_conv_whose_consumer_cannot_take_the_new_width():
    g = build(load_spec(SPECS / "resnet9.py", width_mult=0.125))
    with pytest.raises(RewriteError, match="'prep/conv', has 8 channels, not 24, and feeds 'prep/bn'"):
        whiten_input_pm(g)


def test_initialise_runs_the_pm_whitening_and_dirac_initialisers():
    images = correlated_images(8, 32)
    net = compile(dirac_init(whiten_input_pm(small_architecture())))
    graphnet.initialise(net, images)
    whiten = net.get_submodule("whiten")
    torch.testing.assert_close(whiten.weight.reshape(24, 12)[12:], -whiten.weight.reshape(24, 12)[:12])
    assert not whiten.weight.requires_grad and whiten.bias.requires_grad
    w = net.get_submodule("block1.conv1").weight  # 24 -> 8 at width 1/8: every filter is an identity
    assert torch.equal(w, nn.init.dirac_(torch.empty_like(w)))


def test_initialise_forwards_only_as_far_as_the_last_initialiser_that_reads_its_input():
    net = compile(dirac_init(whiten_input_pm(small_architecture())))
    ran = []
    for path in ("whiten", "block1.conv1", "block3.conv2"):
        net.get_submodule(path).register_forward_hook(lambda m, i, o, path=path: ran.append(path))
    graphnet.initialise(net, correlated_images(8, 32))
    assert ran == []  # the whitening initialiser stops the forward before its conv; dirac reads nothing
    w = net.get_submodule("block3.conv2").weight
    assert torch.equal(w[: w.shape[1]], nn.init.dirac_(torch.empty_like(w[: w.shape[1]])))


# -- Dirac initialisation ------------------------------------------------------------------------

@pytest.mark.parametrize("c_in, c_out", [(4, 8), (8, 8), (8, 4)])
def test_dirac_passes_the_first_channels_through(c_in, c_out):
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    before = conv.weight.detach().clone()
    with torch.no_grad():
        dirac(conv)
    x = torch.randn(2, c_in, 6, 6)
    k = min(c_in, c_out)
    torch.testing.assert_close(conv(x)[:, :k], x[:, :k])
    assert torch.equal(conv.weight[c_in:], before[c_in:])  # the other filters keep their random init


def test_dirac_init_marks_the_shape_keeping_convs_without_an_initialiser():
    g = whiten_input_pm(small_architecture())
    out = dirac_init(g)
    marked = out.find(op="conv", where=lambda n: n.attrs.get("init", {}).get("name") == "dirac")
    assert marked == [f"block{i}/conv{j}" for i in (1, 2, 3) for j in (1, 2)]
    assert out["whiten"] == g["whiten"]
    with pytest.raises(NoMatchError, match="already applied \\(see 'block1/conv1', 'block1/conv2', "
                                           "'block2/conv1' and 3 more\\)"):
        dirac_init(out)


# -- BN settings -----------------------------------------------------------------------------

def test_bn_settings_sets_params_and_hints():
    g = small_architecture()
    out = bn_settings(g, momentum=0.4, eps=1e-12, bias_lr_mult=64.0)
    norms = out.find(op="batch_norm")
    assert len(norms) == 6
    for path in norms:
        n = out[path]
        assert (n.params["momentum"], n.params["eps"], n.params["weight_init"]) == (0.4, 1e-12, 1.0)
        assert dict(n.attrs) == {"frozen": ["weight"], "lr_mult": {"bias": 64.0}, "wd_mult": {"bias": 1.0}}
    net = compile(out)
    bn = net.get_submodule("block2.norm1")
    assert (bn.momentum, bn.eps, bn.weight.requires_grad, bn.bias.requires_grad) == (0.4, 1e-12, False, True)
    groups = {g["lr_mult"]: len(g["params"]) for g in param_groups(net)}
    assert groups == {1.0: 9, 64.0: 6}  # 7 convs + whitening bias + linear; 6 BN biases
    with pytest.raises(NoMatchError, match="already applied"):
        bn_settings(out, momentum=0.4, eps=1e-12, bias_lr_mult=64.0)
    assert bn_settings(out, momentum=0.5) != out


def test_bn_settings_without_freezing_and_on_ghost_bn():
    out = bn_settings(ghost_bn(small_architecture(), num_splits=2), frozen_weight=False)
    n = out["block1/norm1"]
    assert n.op == "ghost_batch_norm" and "weight_init" not in n.params
    assert dict(n.attrs) == {"lr_mult": {"bias": 64.0}, "wd_mult": {"bias": 1.0}}
    with pytest.raises(RewriteError, match=r"param momentum=0 wants a finite float in \(0, 1\]"):
        bn_settings(small_architecture(), momentum=0)


# -- 6-view TTA ------------------------------------------------------------------------------

def test_translate_views_moves_the_image_by_one_pixel_each_way():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    views = translate_views_fn(x)
    same, down_right, up_left = views[:2], views[2:4], views[4:]
    assert torch.equal(same, x)
    assert torch.equal(down_right[..., 1:, 1:], x[..., :-1, :-1])
    assert torch.equal(up_left[..., :-1, :-1], x[..., 1:, 1:])
    assert torch.equal(down_right[..., 0, 1:], x[..., 1, :-1])  # reflect padding: row -1 is row 1


def test_weighted_views_is_the_weighted_sum_of_the_batch_chunks():
    x = torch.randn(6, 4)
    torch.testing.assert_close(weighted_views_fn(x), 0.5 * x[:2] + 0.25 * x[2:4] + 0.25 * x[4:])


def airbench_tta(net, x):
    """airbench94.py's infer_mirror_translate, written out directly."""
    def mirror(v):
        return 0.5 * net(v) + 0.5 * net(v.flip(-1))
    padded = F.pad(x, (1,) * 4, mode="reflect")
    translated = 0.5 * mirror(padded[:, :, 0:32, 0:32]) + 0.5 * mirror(padded[:, :, 2:34, 2:34])
    return 0.5 * mirror(x) + 0.5 * translated


def test_tta_translate_equals_airbench_six_view_inference():
    torch.manual_seed(0)
    g = small_architecture()
    train_net = compile(g)
    train_net(torch.randn(8, 3, 32, 32) + 0.5)  # running stats move away from their init
    train_net.eval()
    eval_graph = tta_translate(g)
    eval_net = compile(eval_graph, modules=train_net).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(eval_net(x), airbench_tta(train_net, x), atol=1e-5, rtol=1e-5)
    # on a graph that has Page's flip TTA already, the result is the same graph
    assert tta_translate(tta_flip(g)) == eval_graph
    assert eval_graph.output == "tta_translate_mean"
    assert eval_graph["tta_flip"].inputs == ("tta_translate",)
    with pytest.raises(NoMatchError, match="already applied \\(see 'tta_translate'\\)"):
        tta_translate(eval_graph)


# -- registration, order, explain --------------------------------------------------------------

def test_airbench_passes_are_registered_and_tta_translate_comes_after_tta_flip():
    from graphnet.rewrites import FAMILIES, PASSES, rewrite
    assert FAMILIES["airbench94 (Keller Jordan, 2024)"] == ("whiten_input_pm", "dirac_init", "bn_settings",
                                                             "tta_translate")
    assert PASSES["tta_translate"].after == ("tta_flip",) and PASSES["tta_translate"].applies_to == "eval"
    g = small_architecture()
    with pytest.raises(RewriteError, match="'tta_translate': must come after 'tta_flip'"):
        rewrite(g, ["tta_translate", "tta_flip"])
    assert rewrite(g, ["tta_flip", "tta_translate"]) == rewrite(g, ["tta_translate"])


def test_dirac_init_and_bn_settings_are_rules_that_explain_their_misses():
    g = build(load_spec(SPECS / "resnet9.py", width_mult=0.125))
    g = g.replace("prep/conv", params={**g["prep/conv"].params, "stride": 2})
    assert graphnet.explain(g, "dirac_init")[0].reason == "fails the pattern's test (shape_keeping)"
    vgg = build({"conv": ("conv", {"c_in": 3, "c_out": 8, "kernel_size": 2}), "relu": ("relu", {})})
    with pytest.raises(NoMatchError, match="dirac_init': found no 'conv' node; nearest: conv: fails the pattern's "
                                           "test \\(shape_keeping\\)"):
        dirac_init(vgg)
    with pytest.raises(NoMatchError, match="'bn_settings': found no batch_norm\\|ghost_batch_norm node"):
        bn_settings(vgg)


def test_tricks_lists_a_users_pass_apart_from_the_shipped_families(capsys):
    from graphnet.rewrites import PASSES, register_pass
    from test_rewrites import tricks_command

    @register_pass("test_user_pass")
    def user(graph):
        """Nothing.\n\nA test."""
        return graph
    try:
        assert tricks_command() == 0
        out = capsys.readouterr().out
        assert out.index(" airbench94 (Keller Jordan, 2024):") < out.index(" registered by your code:") < \
            out.index("test_user_pass()")
    finally:
        del PASSES["test_user_pass"]
