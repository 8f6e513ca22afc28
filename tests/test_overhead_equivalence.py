"""graphnet's compiled ResNet-9 computes exactly what the hand-written module does."""

import sys
from pathlib import Path

import pytest
import torch

import graphnet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from handwritten import ResNet9  # noqa: E402

TOL = {"atol": 1e-6, "rtol": 0}


@pytest.fixture
def pair(resnet9_spec):
    torch.manual_seed(0)
    compiled = graphnet.compile(graphnet.build(resnet9_spec))
    hand = ResNet9()
    assert list(hand.state_dict()) == list(compiled.state_dict())  # same names, so strict loading checks shapes
    hand.load_state_dict(compiled.state_dict())
    return compiled, hand


def batch(n=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def forward_backward(model, x, y):
    out = model(x)
    torch.nn.functional.cross_entropy(out, y).backward()
    return out.detach(), {name: p.grad for name, p in model.named_parameters()}


def test_train_mode_outputs_grads_and_running_stats(pair):
    compiled, hand = pair
    x, y = batch()
    out_c, grads_c = forward_backward(compiled.train(), x, y)
    out_h, grads_h = forward_backward(hand.train(), x, y)
    torch.testing.assert_close(out_c, out_h, **TOL)
    assert grads_c.keys() == grads_h.keys()
    for name in grads_c:
        torch.testing.assert_close(grads_c[name], grads_h[name], **TOL, msg=lambda m: f"{name}: {m}")
    buffers_h = dict(hand.named_buffers())
    for name, buf in compiled.named_buffers():  # BN running mean/var and batch counts after one step
        torch.testing.assert_close(buf, buffers_h[name], **TOL, msg=lambda m: f"{name}: {m}")


def test_eval_mode_outputs(pair):
    compiled, hand = pair
    x, y = batch()
    forward_backward(compiled.train(), x, y)  # move the running stats off their initial values
    forward_backward(hand.train(), x, y)
    with torch.no_grad():
        torch.testing.assert_close(compiled.eval()(x), hand.eval()(x), **TOL)


def test_benchmark_script_runs(capsys):
    import overhead
    overhead.main(["--batch", "2", "--rounds", "2", "--repeats", "1"])
    assert "median ratio graphnet / hand-written" in capsys.readouterr().out
