"""``timm:NAME`` and timm networks through ``from_module``: random weights, offline, the module's function kept."""

import sys

import pytest
import torch

import graphnet
from graphnet.spec_source import load_spec
from graphnet.trace import max_difference

timm = pytest.importorskip("timm")

# model -> input size: three or more of each family (resnet, efficientnet, convnext, vit), small inputs
MODELS = {
    "resnet18": 32, "resnet10t": 32, "resnet14t": 32,
    "tinynet_e": 32, "mobilenetv3_small_050": 32,
    "convnext_atto": 32, "convnext_zepto_rms": 32, "convnextv2_atto": 32,
    "vit_tiny_patch16_224": 16, "deit_tiny_patch16_224": 16,
}


@pytest.mark.parametrize("name", MODELS)
def test_timm_model_computes_the_same(name):
    size = MODELS[name]
    torch.manual_seed(0)
    module = timm.create_model(name, pretrained=False, **({"img_size": size} if "patch16" in name else {}))
    x = torch.randn(2, 3, size, size)
    graph = graphnet.from_module(module, example_input=x)
    net = graphnet.compile(graph)
    assert set(net.state_dict()) == set(module.state_dict())
    net.load_state_dict(module.state_dict())
    assert max_difference(module, net, x)[0] <= 1e-5  # eval and train mode (batch statistics, dropout alike)
    if name.startswith("resnet"):  # timm's resnets are all graphnet's own ops: their specs go to JSON
        assert {n.op for n in graph.nodes} <= {"conv", "batch_norm", "relu", "max_pool", "avg_pool", "add", "adaptive_avg_pool",
                                               "flatten", "linear", "identity"}
        assert graphnet.build(graphnet.from_json(graphnet.to_json(graph.to_spec()))) == graph


def test_load_spec_takes_timm_names(monkeypatch):
    spec = load_spec("timm:resnet10t", num_classes=10)
    assert spec["fc"] == ("linear", {"c_in": 512, "c_out": 10})
    with pytest.raises(graphnet.SpecError, match="timm has no model 'resnet10x'; did you mean resnet10t"):
        load_spec("timm:resnet10x")
    monkeypatch.setitem(sys.modules, "timm", None)  # as where the extra is not installed
    with pytest.raises(graphnet.SpecError, match=r"timm:resnet10t needs timm: pip install 'graphnet\[timm\]'"):
        load_spec("timm:resnet10t")
