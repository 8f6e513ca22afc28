"""Precision and memory format on the CPU: bf16 under autocast, the auto choices, fp32 TTA means."""

import pytest
import torch

from graphnet.rewrites.airbench import weighted_views_fn
from graphnet.rewrites.tta import mean_halves_fn
from graphnet.train import Options, TrainError, Trainer, make_setup, resolve_runtime
from graphnet.train.environment import native_bf16
from test_train_loop import coloured_dataset, small, tiny_net  # noqa: F401 (fixture)


@pytest.mark.parametrize("amx, avx512_bf16, expected", [
    (True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")])
def test_auto_precision_follows_what_torch_reports_of_the_cpu(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert native_bf16() == (expected == "bf16")
    runtime = resolve_runtime(Options(device="cpu"))
    assert runtime.precision == expected
    assert runtime.autocast == (torch.bfloat16 if expected == "bf16" else None)


def test_auto_memory_format_is_channels_last():
    assert resolve_runtime(Options(device="cpu")).memory_format == torch.channels_last
    assert resolve_runtime(Options(device="cpu", memory_format="contiguous")).memory_format == torch.contiguous_format


def test_fp16_stays_on_cuda():
    with pytest.raises(TrainError, match="^precision fp16 needs CUDA; on cpu use bf16 or fp32$"):
        resolve_runtime(Options(device="cpu", precision="fp16"))


def test_tta_means_are_fp32():
    x = torch.randn(12, 10).bfloat16()
    for fn in (mean_halves_fn, weighted_views_fn):
        assert fn(x).dtype == torch.float32
    torch.testing.assert_close(mean_halves_fn(x), (x[:6].float() + x[6:].float()) / 2)


def test_bf16_trains_on_the_cpu_as_fp32_does(tiny_net):  # noqa: F811
    """The final recipe (ghost BN, whitening, EMA, flip TTA) learns in bf16 on the CPU: the
    network computes in bf16 under autocast, the weights and the loss stay fp32."""
    recipe = small("tta", epochs=8)  # as test_final_recipe_learns: 80 steps
    setup = make_setup(tiny_net, recipe)
    results = {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(setup.graphs, recipe, coloured_dataset(), Options(device="cpu", precision=precision))
        results[precision] = trainer.run(seed=0)
        assert all(p.dtype == torch.float32 for p in trainer.net.parameters())
    dtypes = []
    hook = trainer.net.register_forward_hook(lambda module, inputs, out: dtypes.append(out.dtype))
    loss, _ = trainer.train_fn(torch.randn(32, 3, 32, 32).contiguous(memory_format=torch.channels_last),
                               torch.zeros(32, dtype=torch.long))
    hook.remove()
    assert dtypes == [torch.bfloat16] and loss.dtype == torch.float32
    assert results["bf16"].test_acc > 0.6 and results["fp32"].test_acc > 0.6  # as test_final_recipe_learns
    assert abs(results["bf16"].rows[-1]["train_loss"] - results["fp32"].rows[-1]["train_loss"]) < 0.15
