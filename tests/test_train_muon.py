"""Muon: the Newton–Schulz iteration against SVD and torch.optim.Muon, and airbench's step."""

import pytest
import torch
from torch import nn

from graphnet.train.muon import Muon, orthogonalise, split_filters


def matrix(rows, cols, seed=0):
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", [(8, 24), (24, 8), (16, 16)])
def test_orthogonalise_keeps_the_singular_vectors_and_brings_the_values_near_one(shape):
    g = matrix(*shape)
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    o = orthogonalise(g, steps=5, dtype=torch.float32)
    inner = u.T @ o @ vh.T  # diagonal if o = U S' Vᵀ
    off = inner - torch.diag(torch.diagonal(inner))
    assert off.abs().max() < 1e-4
    assert torch.all((torch.diagonal(inner) > 0.6) & (torch.diagonal(inner) < 1.25))


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch has no Muon")
def test_orthogonalise_matches_torch_muon_update():
    g = matrix(16, 48)
    p = nn.Parameter(torch.zeros(16, 48))
    p.grad = g.clone()
    torch.optim.Muon([p], lr=1.0, weight_decay=0.0, momentum=0.0, nesterov=False, ns_steps=3).step()
    theirs = -p.detach()  # computed in bf16: the differences below are its rounding
    for dtype, tolerance in ((torch.bfloat16, 3e-2), (torch.float32, 1e-2)):
        ours = orthogonalise(g, steps=3, dtype=dtype).float()
        assert (ours - theirs).norm() / theirs.norm() < tolerance


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch has no Muon")
def test_muon_without_weight_rescaling_steps_like_torch_muon_on_a_matrix():
    ours, theirs = nn.Parameter(matrix(16, 48, 1)), nn.Parameter(matrix(16, 48, 1))
    a = Muon([ours], lr=0.1, momentum=0.6, normalise_weights=False)
    b = torch.optim.Muon([theirs], lr=0.1, weight_decay=0.0, momentum=0.6, nesterov=True, ns_steps=3)
    for seed in (2, 3, 4):
        ours.grad, theirs.grad = matrix(16, 48, seed), matrix(16, 48, seed)
        a.step()
        b.step()
    torch.testing.assert_close(ours.detach(), theirs.detach(), atol=5e-3, rtol=0)


def test_muon_step_is_airbench_on_a_conv_filter():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(8, 4, 3, 3))
    start = w.detach().clone()
    opt = Muon([w], lr=0.24, momentum=0.6)
    grads = [torch.randn(8, 4, 3, 3) for _ in range(2)]
    buf, expected = torch.zeros_like(start), start.clone()
    for grad in grads:  # airbench94_muon.py's Muon.step, written out
        buf = 0.6 * buf + grad
        g = grad + 0.6 * buf
        expected = expected * (len(expected) ** 0.5 / expected.norm())
        expected = expected - 0.24 * orthogonalise(g.reshape(8, -1)).float().view(g.shape)
        w.grad = grad
        opt.step()
    torch.testing.assert_close(w.detach(), expected)


def test_split_filters_takes_the_4d_params():
    conv, bias, head = (nn.Parameter(torch.zeros(shape)) for shape in ((4, 3, 3, 3), (4,), (2, 4)))
    filters, rest = split_filters([{"params": [conv, head], "lr_mult": 1.0}, {"params": [bias], "lr_mult": 64.0}])
    assert filters == [conv]
    assert [(g["params"], g["lr_mult"]) for g in rest] == [([head], 1.0), ([bias], 64.0)]
