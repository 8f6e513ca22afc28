"""What makes the first GPU run right: the whitening sample, ghost BN's layout-keeping forms, the
EMA's fixed tensor lists, the data's dtype, provenance."""

import copy
import dataclasses

import pytest
import torch
from torch import nn

from graphnet import build
from graphnet.data import Dataset
from graphnet.rewrites.ghost_bn import GhostBatchNorm
from graphnet.train import EMA, Options, Trainer, get_recipe, make_setup, provenance
from graphnet.train.environment import data_dtype
from graphnet.train.loop import whitening_sample
from graphnet.zoo import resnet9
from test_train_loop import coloured_images


def test_whitening_sees_every_class_of_a_sorted_data_set():
    images, labels = coloured_images(12_000, 0)
    order = labels.argsort(stable=True)  # sorted by class, as an ImageFolder: the first 10,000 miss 2 classes
    dataset = Dataset(images[order], labels[order], *coloured_images(20, 1), [f"c{i}" for i in range(10)])
    sample = whitening_sample(dataset, 10_000)
    assert len(sample.train_images) == 10_000
    assert torch.bincount(sample.train_labels).tolist() == [1000] * 10
    assert torch.equal(whitening_sample(dataset, 10_000).train_images, sample.train_images)  # seeded
    small = Dataset(images[:50], labels[:50], *coloured_images(20, 1), dataset.classes)
    assert torch.equal(whitening_sample(small, 10_000).train_images, small.train_images)  # all, when fewer


def blocks_to_residues(x: torch.Tensor, k: int) -> torch.Tensor:
    """The batch with block ``j`` of ``N/k`` samples (``'chunks'``' split ``j``) in places
    ``j, j + k, ...`` (``'reshape'``'s split ``j``)."""
    return x.reshape(k, len(x) // k, *x.shape[1:]).transpose(0, 1).reshape(x.shape)


def residues_to_blocks(x: torch.Tensor, k: int) -> torch.Tensor:
    return x.reshape(len(x) // k, k, *x.shape[1:]).transpose(0, 1).reshape(x.shape)


@pytest.mark.parametrize("method", ["view", "chunks"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_ghost_bn_methods_equal_reshape_on_the_same_splits(method, channels_last):
    torch.manual_seed(0)
    k = 4
    reshape = GhostBatchNorm(8, num_splits=k, method="reshape")
    nn.init.uniform_(reshape.weight, 0.5, 1.5)
    nn.init.uniform_(reshape.bias, -0.5, 0.5)
    other = copy.deepcopy(reshape)
    other.method = method
    # the batch reshape sees: chunks' blocks moved to reshape's residue classes
    same_splits = (lambda t: blocks_to_residues(t, k)) if method == "chunks" else (lambda t: t)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for _ in range(3):
        x = (3 * torch.randn(32, 8, 5, 5) + 1).contiguous(memory_format=fmt)
        xr = same_splits(x).contiguous(memory_format=fmt).detach().requires_grad_()
        xo = x.clone().requires_grad_()
        out_r, out_o = reshape(xr), other(xo)
        torch.testing.assert_close(same_splits(out_o), out_r, atol=1e-5, rtol=1e-5)
        assert out_o.is_contiguous(memory_format=fmt)  # the layout is kept
        grad = torch.randn_like(out_o)
        out_r.backward(same_splits(grad))
        out_o.backward(grad)
        torch.testing.assert_close(same_splits(xo.grad), xr.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(other.running_mean, reshape.running_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(other.running_var, reshape.running_var, atol=1e-5, rtol=1e-5)
    for bn in (reshape, other):
        bn.eval()
    x = torch.randn(6, 8, 5, 5)
    torch.testing.assert_close(other(x), reshape(x))
    with pytest.raises(ValueError, match="method must be one of auto, reshape, view, chunks, not 'fast'"):
        other.method = "fast"


@pytest.mark.parametrize("channels_last", [False, True])
def test_ghost_bn_auto_method_is_chunks_for_channels_last_on_the_cpu(channels_last):
    torch.manual_seed(0)
    auto = GhostBatchNorm(8, num_splits=4)
    assert auto.method == "auto"
    by_method = {m: copy.deepcopy(auto) for m in ("reshape", "chunks")}
    for method, bn in by_method.items():
        bn.method = method
    x = torch.randn(32, 8, 5, 5).contiguous(memory_format=torch.channels_last if channels_last else
                                            torch.contiguous_format)
    out = {m: bn(x) for m, bn in by_method.items()}
    chosen, other = ("chunks", "reshape") if channels_last else ("reshape", "chunks")
    assert auto.method_for(x) == chosen and auto.method == "auto"
    assert auto.method_for(torch.randn(32, 5, 5, 8).permute(0, 3, 2, 1)) == "reshape"  # neither layout
    torch.testing.assert_close(auto(x), out[chosen], atol=0, rtol=0)
    assert not torch.allclose(out[other], out[chosen])  # their splits differ, so their outputs do


def test_trainer_sets_the_ghost_bn_method_and_memory_format(tiny_dataset):
    net = build(resnet9.build(width_mult=0.125))
    recipe = get_recipe("tta").with_epochs(1)
    recipe = dataclasses.replace(recipe, batch_size=32)
    graphs = make_setup(net, recipe).graphs
    trainer = Trainer(graphs, recipe, tiny_dataset,
                      Options(device="cpu", memory_format="channels_last", ghost_bn_method="view"))
    ghosts = [m for m in trainer.net.modules() if isinstance(m, GhostBatchNorm)]
    assert ghosts and {m.method for m in ghosts} == {"view"}
    assert trainer.runtime.memory_format == torch.channels_last
    conv = next(m for m in trainer.net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
                and m.weight.requires_grad)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    result = trainer.run(seed=0)
    assert 0 <= result.test_acc <= 1


@pytest.fixture
def tiny_dataset():
    return Dataset(*coloured_images(64, 0), *coloured_images(40, 1), [f"c{i}" for i in range(10)])


def test_ema_binds_fixed_tensor_lists_with_matching_dtypes():
    from graphnet.train.loop import _keep_norms_fp32

    net = _keep_norms_fp32(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))  # Page's fp16
    ema = EMA(net, momentum=0.9, every=1)
    assert len(ema.averaged) == len(ema.current) == 6 and len(ema.copied) == 1
    assert [a.dtype for a in ema.averaged] == [c.dtype for c in ema.current]
    assert {a.dtype for a in ema.averaged} == {torch.float16, torch.float32}
    assert all(c.data_ptr() == t.data_ptr() for c, t in zip(ema.current, [*net.state_dict().values()][:6]))
    before = ema.network[0].weight.clone()
    with torch.no_grad():
        net[0].weight.fill_(1.0)  # in place, as the optimiser
    ema.update()  # the first update's decay is 1/10
    torch.testing.assert_close(ema.network[0].weight, 0.1 * before + 0.9 * torch.ones_like(before))


def test_data_is_kept_in_the_training_dtype():
    assert data_dtype("bf16") == torch.bfloat16 and data_dtype("fp16") == torch.float16
    assert data_dtype("fp32") == torch.float32


def test_provenance_is_plain_data():
    p = provenance("cpu", "fp32", "graphnet train")
    assert p["torch"] == torch.__version__ and type(p["torch"]) is str
    assert set(p) == {"graphnet", "git_commit", "torch", "cuda", "cudnn", "device", "device_name", "precision",
                      "command"}
    assert p["command"] == "graphnet train" and p["device"] == "cpu"


def test_progress_bar_within_an_epoch_only_when_asked_or_a_terminal():
    import io

    from graphnet.train.log import Progress

    stream = io.StringIO()
    bar = Progress("epoch 1/2", 3, stream, enabled=True)
    for _ in range(3):
        bar.update()
    bar.close()
    assert "epoch 1/2" in stream.getvalue() and "/3 [" in stream.getvalue()  # tqdm: label, steps of the epoch
    assert stream.getvalue().endswith("\r")  # erased, so the epoch's row prints on a clean line
    quiet = io.StringIO()  # not a terminal: no bar, so logs stay clean
    bar = Progress("epoch 1/2", 3, quiet)
    bar.update()
    bar.close()
    assert quiet.getvalue() == ""
