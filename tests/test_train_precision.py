"""Precision and memory format on the CPU: bf16 under autocast, the auto choices, fp32 TTA means."""

import pytest
import torch

from graphnet.rewrites.airbench import weighted_views_fn
from graphnet.rewrites.tta import mean_halves_fn
from graphnet.train import Options, TrainError, Trainer, environment, make_setup, resolve_runtime
from graphnet.train.environment import native_bf16  # the real one (conftest pins fp32)
from graphnet.train.runner import describe_runtime
from test_train_loop import coloured_dataset, small, tiny_net  # noqa: F401 (fixture)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_the_cpu_is_bf16_where_it_is_native(monkeypatch, native):
    monkeypatch.setattr(environment, "native_bf16", lambda: native)
    runtime = resolve_runtime(Options(device="cpu"))
    assert (runtime.precision, runtime.autocast, runtime.data_dtype) == \
        (("bf16", torch.bfloat16, torch.bfloat16) if native else ("fp32", None, torch.float32))
    runtime = resolve_runtime(Options(device="cpu", precision="fp32"))
    assert (runtime.precision, runtime.autocast) == ("fp32", None)


def test_native_bf16_reads_the_cpu(monkeypatch):
    capabilities = {"amx_bf16": False, "avx512_bf16": False}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    assert not native_bf16()
    for flag in capabilities:
        monkeypatch.setitem(capabilities, flag, True)
        assert native_bf16()
        monkeypatch.setitem(capabilities, flag, False)


def test_auto_layout_is_channels_last_in_every_precision():  # benchmarks/README.md, cpu_speed.py
    for precision in ("fp32", "bf16"):
        assert resolve_runtime(Options(device="cpu", precision=precision)).memory_format == torch.channels_last
    for memory_format, method in (("auto", "auto (chunks)"), ("contiguous", "auto (reshape)")):
        options = Options(device="cpu", memory_format=memory_format)
        assert describe_runtime(resolve_runtime(options), options)["ghost_bn_method"] == method  # the header's
    runtime = resolve_runtime(Options(device="cpu", precision="bf16", memory_format="contiguous"))
    assert (runtime.precision, runtime.memory_format, runtime.autocast) == ("bf16", torch.contiguous_format,
                                                                            torch.bfloat16)


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
    for result in results.values():  # both learn: the 100 test images are too few for a steady accuracy
        first, last = result.rows[0]["train_loss"], result.rows[-1]["train_loss"]
        assert last < 0.75 * first
    assert abs(results["bf16"].rows[-1]["train_loss"] - results["fp32"].rows[-1]["train_loss"]) < 0.25
